//! `tessera embed`: one embedding, printed.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_models::hub::HubOptions;
use tessera_models::loader::{self, LoadedModel};
use tessera_models::preprocess::audio::{AudioLimits, read_audio};
use tessera_models::preprocess::image::{ImageLimits, read_image};
use tessera_models::{DeviceChoice, select_device};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Modality {
    Text,
    Image,
    Audio,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// A JSON array of floats.
    Json,
    /// One float per line (with `--windows`, one window per line, floats separated by spaces).
    Text,
}

/// Flags of `tessera embed`.
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// Model directory (Hugging Face layout), or a model name from the manifests
    /// (`NAME` or `NAME@REVISION`, fetched from the Hugging Face cache and verified). The
    /// architecture comes from its config.json.
    #[arg(long, env = "TESSERA_MODEL")]
    model: String,
    /// Manifest directory for model names.
    #[arg(long, env = "TESSERA_MANIFESTS", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifests"))]
    manifests: PathBuf,
    /// What the input is.
    #[arg(long, value_enum, default_value = "text")]
    modality: Modality,
    /// The text to embed (text models).
    #[arg(long, conflicts_with = "input", required_unless_present = "input")]
    text: Option<String>,
    /// Read the input from this file (text, an image file for image models, an audio file for
    /// audio models).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Audio: print one vector per window (a JSON array of arrays) instead of the pooled one.
    #[arg(long)]
    windows: bool,
    /// Audio: refuse files longer than this many seconds.
    #[arg(long, default_value_t = AudioLimits::default().max_seconds)]
    max_seconds: f64,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Where the model runs: auto, cpu, cuda, cuda:N, metal, metal:N.
    #[arg(long, env = "TESSERA_DEVICE", default_value = "auto")]
    device: DeviceChoice,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<ExitCode> {
    if args.windows && !matches!(args.modality, Modality::Audio) {
        bail!("--windows applies to --modality audio only");
    }
    let device = select_device(args.device)?;
    let (dir, name) = loader::resolve(&args.model, &args.manifests, &HubOptions::from_env())?;
    let model: LoadedModel = loader::load_dir(&dir, &name, &device)?;
    let missing = |what: &str| {
        anyhow::anyhow!(
            "model {} ({}) has no {what} encoder; use --modality {}",
            args.model,
            dir.display(),
            offered(&model)
        )
    };
    let vectors: Vec<Vec<f32>> = match args.modality {
        Modality::Text => {
            let text = match (&args.text, &args.input) {
                (Some(text), _) => text.clone(),
                (None, Some(path)) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading --input {}", path.display()))?,
                (None, None) => bail!("give --text or --input"),
            };
            let encoder = model.text.as_ref().ok_or_else(|| missing("text"))?;
            warn_placeholder(encoder.is_placeholder(), &dir);
            encoder.embed(&[&text])?
        }
        Modality::Image => {
            let Some(path) = &args.input else {
                bail!("--modality image needs --input FILE")
            };
            let encoder = model.image.as_ref().ok_or_else(|| missing("image"))?;
            warn_placeholder(encoder.is_placeholder(), &dir);
            let image = read_image(path, &ImageLimits::default())?;
            encoder.embed(&[image])?
        }
        Modality::Audio => {
            let Some(path) = &args.input else {
                bail!("--modality audio needs --input FILE")
            };
            let encoder = model.audio.as_ref().ok_or_else(|| missing("audio"))?;
            warn_placeholder(encoder.is_placeholder(), &dir);
            let limits = AudioLimits {
                max_seconds: args.max_seconds,
                ..AudioLimits::default()
            };
            let audio = read_audio(path, encoder.sample_rate(), &limits)?;
            let embedding = encoder
                .embed(&[&audio.samples])?
                .pop()
                .context("the model returned no embedding")?;
            if args.windows {
                embedding.windows
            } else {
                vec![embedding.pooled]
            }
        }
    };
    if args.windows {
        match args.format {
            Format::Json => println!("{}", serde_json::to_string(&vectors)?),
            Format::Text => vectors.iter().for_each(|v| {
                println!(
                    "{}",
                    v.iter().map(f32::to_string).collect::<Vec<_>>().join(" ")
                )
            }),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let vector = vectors
        .into_iter()
        .next()
        .context("the model returned no vector")?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&vector)?),
        Format::Text => vector.iter().for_each(|x| println!("{x}")),
    }
    Ok(ExitCode::SUCCESS)
}

/// The modalities a loaded model serves, for error messages.
fn offered(model: &LoadedModel) -> String {
    [
        (model.text.is_some(), "text"),
        (model.image.is_some(), "image"),
        (model.audio.is_some(), "audio"),
    ]
    .iter()
    .filter(|(has, _)| *has)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(" or ")
}

fn warn_placeholder(placeholder: bool, dir: &std::path::Path) {
    if placeholder {
        eprintln!(
            "warning: {} is a tiny random-weight model; its embeddings carry no meaning",
            dir.display()
        );
    }
}
