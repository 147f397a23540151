//! `tessera embed`: one embedding, printed.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_models::{DeviceChoice, SentenceEncoder, TextEmbedder, select_device};

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
    /// One float per line.
    Text,
}

/// Flags of `tessera embed`.
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// Model directory (Hugging Face layout).
    #[arg(long, env = "TESSERA_MODEL")]
    model: PathBuf,
    /// What the input is.
    #[arg(long, value_enum, default_value = "text")]
    modality: Modality,
    /// The text to embed.
    #[arg(long, conflicts_with = "input", required_unless_present = "input")]
    text: Option<String>,
    /// Read the input from this file.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Where the model runs: auto, cpu, cuda, cuda:N.
    #[arg(long, env = "TESSERA_DEVICE", default_value = "auto")]
    device: DeviceChoice,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<ExitCode> {
    if !matches!(args.modality, Modality::Text) {
        bail!(
            "--modality {:?}: only text models are supported by this build",
            args.modality
        );
    }
    let text = match (&args.text, &args.input) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading --input {}", path.display()))?,
        (None, None) => bail!("give --text or --input"),
    };
    let device = select_device(args.device)?;
    let name = args
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let encoder = SentenceEncoder::load(&args.model, &name, &device)?;
    if encoder.is_placeholder() {
        eprintln!(
            "warning: {} is a tiny random-weight model; its embeddings carry no meaning",
            args.model.display()
        );
    }
    let vector = encoder
        .embed(&[&text])?
        .pop()
        .context("the model returned no vector")?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&vector)?),
        Format::Text => vector.iter().for_each(|x| println!("{x}")),
    }
    Ok(ExitCode::SUCCESS)
}
