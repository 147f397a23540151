//! `tessera zero-shot`: score an image or a text against a taxonomy with a CLIP checkpoint.

use anyhow::bail;
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_models::preprocess::image::{ImageLimits, read_image};
use tessera_models::zero_shot::{Taxonomy, ZeroShot};
use tessera_models::{
    ClipTextEncoder, ClipVisionEncoder, DeviceChoice, ImageEmbedder, TextEmbedder, select_device,
};

/// Flags of `tessera zero-shot`.
#[derive(Debug, clap::Args)]
pub struct ZeroShotArgs {
    /// A full CLIP model directory (text and vision towers).
    #[arg(long, env = "TESSERA_CLIP_MODEL")]
    model: PathBuf,
    /// Taxonomy TOML: `templates = [...]` and `[[tag]]` entries with `name`, `label`, `prompts`.
    #[arg(long)]
    taxonomy: PathBuf,
    /// An image file to score.
    #[arg(long, conflicts_with = "text", required_unless_present = "text")]
    image: Option<PathBuf>,
    /// A text to score.
    #[arg(long)]
    text: Option<String>,
    /// Where the model runs: auto, cpu, cuda, cuda:N, metal, metal:N.
    #[arg(long, env = "TESSERA_DEVICE", default_value = "auto")]
    device: DeviceChoice,
}

/// Prints `[{"tag", "score", "cosine"}, …]`, best first.
pub fn run(args: ZeroShotArgs) -> anyhow::Result<ExitCode> {
    let device = select_device(args.device)?;
    let taxonomy = Taxonomy::read(&args.taxonomy)?;
    let text = ClipTextEncoder::load(&args.model, "clip", &device)?;
    if text.is_placeholder() {
        eprintln!(
            "warning: {} is a tiny random-weight model; its scores carry no meaning",
            args.model.display()
        );
    }
    let zero_shot = ZeroShot::new(&text, &taxonomy, text.logit_scale())?;
    let query = match (&args.image, &args.text) {
        (Some(path), _) => {
            let vision = ClipVisionEncoder::load(&args.model, "clip", &device)?;
            let image = read_image(path, &ImageLimits::default())?;
            vision.embed(&[image])?.remove(0)
        }
        (None, Some(t)) => text.embed(&[t])?.remove(0),
        (None, None) => bail!("give --image or --text"),
    };
    let mut scores = zero_shot.score(&query)?;
    scores.sort_by(|a, b| b.score.total_cmp(&a.score));
    println!("{}", serde_json::to_string(&scores)?);
    Ok(ExitCode::SUCCESS)
}
