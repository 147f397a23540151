//! `tessera zero-shot`: score an image or a text against a taxonomy with a CLIP checkpoint.

use anyhow::bail;
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_models::hub::HubOptions;
use tessera_models::loader;
use tessera_models::preprocess::image::{ImageLimits, read_image};
use tessera_models::zero_shot::{Taxonomy, ZeroShot};
use tessera_models::{DeviceChoice, select_device};

/// Flags of `tessera zero-shot`.
#[derive(Debug, clap::Args)]
pub struct ZeroShotArgs {
    /// A full CLIP or SigLIP model (text and vision towers): a directory or a manifest name.
    #[arg(long, env = "TESSERA_ZERO_SHOT_MODEL")]
    model: String,
    /// Manifest directory for model names.
    #[arg(long, env = "TESSERA_MANIFESTS", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifests"))]
    manifests: PathBuf,
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

/// Prints `[{"tag", "score", "cosine"}, …]`, best first. CLIP's scores sum to 1 over the
/// taxonomy; SigLIP's are independent per tag.
pub fn run(args: ZeroShotArgs) -> anyhow::Result<ExitCode> {
    let device = select_device(args.device)?;
    let taxonomy = Taxonomy::read(&args.taxonomy)?;
    let (dir, name) = loader::resolve(&args.model, &args.manifests, &HubOptions::from_env())?;
    let model = loader::load_dir(&dir, &name, &device)?;
    let (Some(text), Some(scoring)) = (&model.text, model.scoring) else {
        bail!(
            "model {} ({}) is not a CLIP or SigLIP model with a text tower",
            args.model,
            dir.display()
        );
    };
    if text.is_placeholder() {
        eprintln!(
            "warning: {} is a tiny random-weight model; its scores carry no meaning",
            dir.display()
        );
    }
    let zero_shot = ZeroShot::new(text.as_ref(), &taxonomy, scoring)?;
    let query = match (&args.image, &args.text) {
        (Some(path), _) => {
            let Some(vision) = &model.image else {
                bail!("model {} has no image tower", args.model);
            };
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
