//! Subcommands. Flags are parsed by clap (every flag also reads an environment variable), then
//! each command builds the real objects from them.

mod bench;
mod bench_grpc;
mod bench_media;
mod bench_store;
mod catalog_cmd;
pub mod config_file;
mod demo;
mod embed;
mod export;
mod ingest;
mod ingest_metrics;
mod ingest_report;
mod ingest_select;
mod ingest_watch;
mod load;
mod plugin;
mod plugin_template;
mod report;
mod serve;
mod sid;
mod store_cmd;
mod tags;
mod zero_shot;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tessera::runtime::SandboxLimits;
use tessera_models::DeviceChoice;
use tessera_models::hub::HubOptions;
use tessera_models::manifest;

/// Tessera: tag a catalog with sandboxed plugins and serve entity representations to rankers.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Args {
    /// Settings from a TOML file: keys are flag names, at the top level or under the command's
    /// table (`[serve]`); flags and environment variables take precedence over it.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest the example catalog with the built-in plugin, print a summary, then serve gRPC.
    Demo(demo::DemoArgs),
    /// Run the plugins over a catalog and store the results.
    Ingest(Box<ingest::IngestArgs>),
    /// A static HTML page for people: posters, tags, nearest titles and a 2-D map of the catalog.
    Report(report::ReportArgs),
    /// Export every stored title (vectors, semantic ID, tags) for training: JSON Lines or Parquet.
    Export(export::ExportArgs),
    /// Tag governance: set or unset a title's tag, show tags with provenance, diff two runs.
    #[command(subcommand)]
    Tags(tags::TagsCommand),
    /// Catalog tools: check a catalog before a run.
    #[command(subcommand)]
    Catalog(catalog_cmd::CatalogCommand),
    /// Serve a store over gRPC.
    Serve(serve::ServeArgs),
    /// Print the embedding of a text, an image or an audio file.
    Embed(embed::EmbedArgs),
    /// Score an image or a text against a taxonomy of tags with a CLIP model (zero-shot).
    ZeroShot(zero_shot::ZeroShotArgs),
    /// The store: what it holds, and migrating it between the embedded backend and a Qdrant
    /// server.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Semantic IDs: train the codebook, report its quality, look titles up by ID or prefix.
    #[command(subcommand)]
    Sid(sid::SidCommand),
    /// Model utilities.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Plugin-author tools.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Measure plugin-call overhead and embedding throughput.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// List the named models (one TOML manifest each) and whether each is in the local Hugging
    /// Face cache with the pinned sha256 of every file.
    List {
        /// Manifest directory.
        #[arg(long, env = "TESSERA_MANIFESTS", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifests"))]
        manifests: PathBuf,
    },
    /// Put a named model into the Hugging Face cache (downloading unless HF_HUB_OFFLINE is set)
    /// and verify every file's sha256 against its manifest.
    Pull {
        /// Model name (see `tessera models list`).
        name: String,
        /// Manifest directory.
        #[arg(long, env = "TESSERA_MANIFESTS", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifests"))]
        manifests: PathBuf,
    },
    /// Write a deterministic tiny random-weight CLIP vision encoder in Hugging Face format.
    TinyClip {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Write the full model (text tower, tokenizer and logit scale too), for zero-shot.
        #[arg(long)]
        with_text: bool,
    },
    /// Write a deterministic tiny random-weight SigLIP (text and vision) in Hugging Face format.
    TinySiglip {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 13)]
        seed: u64,
    },
    /// Write a deterministic tiny random-weight Whisper encoder in Hugging Face format.
    TinyWhisper {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 11)]
        seed: u64,
    },
    /// Write a deterministic tiny random-weight BERT in Hugging Face format (for tests and offline
    /// demos; its embeddings carry no meaning).
    Tiny {
        /// Output directory.
        #[arg(long, env = "TESSERA_TINY_OUT")]
        out: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// Flags shared by commands that run plugins.
#[derive(Debug, clap::Args, Clone)]
pub struct SandboxArgs {
    /// Wall-clock deadline of one plugin call, in milliseconds.
    #[arg(long, env = "TESSERA_PLUGIN_DEADLINE_MS", default_value_t = 2000)]
    plugin_deadline_ms: u64,
    /// Fuel (an instruction budget) of one plugin call; unlimited when not given (the deadline
    /// still applies). A manifest's `[limits] fuel` overrides it.
    #[arg(long, env = "TESSERA_PLUGIN_FUEL")]
    plugin_fuel: Option<u64>,
    /// Memory cap of one plugin instance, in MiB.
    #[arg(long, env = "TESSERA_PLUGIN_MEMORY_MIB", default_value_t = 256)]
    plugin_memory_mib: usize,
    /// Where models run: auto, cpu, cuda, cuda:N, metal, metal:N.
    #[arg(long, env = "TESSERA_DEVICE", default_value = "auto")]
    device: DeviceChoice,
    /// More models plugins may call, as NAME=DIR or NAME=MODEL (a manifest name), e.g.
    /// `--model clip=/models/clip-vit-base-patch32 --model whisper=whisper-base`.
    #[arg(long = "model", env = "TESSERA_MODELS", value_delimiter = ',')]
    models: Vec<tessera::text_model::ExtraModel>,
    /// Model manifests, for NAME=MODEL.
    #[arg(long, env = "TESSERA_MANIFESTS", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifests"))]
    manifests: std::path::PathBuf,
    /// Titles analysed at once; their model calls merge into batches. Default: twice the cores.
    #[arg(long, env = "TESSERA_CONCURRENCY")]
    concurrency: Option<usize>,
}

impl SandboxArgs {
    /// Titles in flight: the flag, else twice the cores (model calls block on batches, so more
    /// titles than cores keep the models busy), at most 64.
    fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get() * 2)
                .min(64)
        })
    }

    fn limits(&self) -> SandboxLimits {
        SandboxLimits {
            deadline: Duration::from_millis(self.plugin_deadline_ms),
            memory: self.plugin_memory_mib << 20,
            fuel: self.plugin_fuel.filter(|&f| f > 0),
            ..SandboxLimits::default()
        }
    }
}

fn models_list(manifests: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cache = HubOptions::from_env().cache;
    for model in manifest::load_dir(manifests)? {
        let files: Vec<&str> = model.files.keys().map(String::as_str).collect();
        let offline = HubOptions {
            cache: cache.clone(),
            allow_download: false,
            endpoint: None,
        };
        let status = match tessera_models::hub::fetch_files(&model.hub_model(), &files, &offline) {
            Err(_) => "not in cache".to_string(),
            Ok(dir) => match manifest::verify(&model, &dir) {
                Ok(()) => format!("verified at {}", dir.display()),
                Err(e) => format!("CORRUPT: {e}"),
            },
        };
        println!(
            "{:<24} {:<6} {:>5}d  {}@{}  {status}",
            model.name,
            format!("{:?}", model.modality).to_lowercase(),
            model.dimension,
            model.repo,
            model.revision
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the parsed command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(config) = &args.config {
        tracing::info!(config = %config.display(), "settings from a config file (flags and environment first)");
    }
    match args.command {
        Command::Demo(a) => demo::run(a),
        Command::Ingest(a) => ingest::run(*a),
        Command::Catalog(c) => catalog_cmd::run(c),
        Command::Tags(c) => tags::run(c),
        Command::Export(a) => export::run(a),
        Command::Report(a) => report::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Embed(a) => embed::run(a),
        Command::ZeroShot(a) => zero_shot::run(a),
        Command::Bench(c) => bench::run(c),
        Command::Sid(c) => sid::run(c),
        Command::Store(c) => store_cmd::run(c),
        Command::Plugin(c) => plugin::run(c),
        Command::Models(ModelsCommand::List { manifests }) => models_list(&manifests),
        Command::Models(ModelsCommand::Pull { name, manifests }) => {
            let all = manifest::load_dir(&manifests)?;
            let Some(model) = all.iter().find(|m| m.name == name) else {
                let known: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
                anyhow::bail!(
                    "no model named {name:?} in {}; known: {}",
                    manifests.display(),
                    known.join(", ")
                );
            };
            let dir = manifest::pull(model, &HubOptions::from_env())?;
            println!("{} verified at {}", model.name, dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Models(ModelsCommand::TinyClip {
            out,
            seed,
            with_text,
        }) => {
            let spec = tessera_models::tiny::TinyClipSpec {
                seed,
                ..Default::default()
            };
            let what = if with_text {
                tessera_models::tiny::write_tiny_clip(&out, &spec)?;
                "CLIP (text and vision)"
            } else {
                tessera_models::tiny::write_tiny_clip_vision(&out, &spec)?;
                "CLIP vision encoder"
            };
            println!(
                "wrote a tiny random-weight {what} to {} (its embeddings carry no meaning)",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Models(ModelsCommand::TinySiglip { out, seed }) => {
            let spec = tessera_models::tiny::TinySiglipSpec {
                seed,
                ..Default::default()
            };
            tessera_models::tiny::write_tiny_siglip(&out, &spec)?;
            println!(
                "wrote a tiny random-weight SigLIP to {} (its embeddings carry no meaning)",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Models(ModelsCommand::TinyWhisper { out, seed }) => {
            let spec = tessera_models::tiny::TinyWhisperSpec {
                seed,
                ..Default::default()
            };
            tessera_models::tiny::write_tiny_whisper(&out, &spec)?;
            println!(
                "wrote a tiny random-weight Whisper encoder to {} (its embeddings carry no meaning)",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Models(ModelsCommand::Tiny { out, seed }) => {
            let spec = tessera_models::tiny::TinyBertSpec {
                seed,
                ..Default::default()
            };
            tessera_models::tiny::write_tiny_bert(&out, &spec)?;
            println!(
                "wrote a tiny random-weight BERT to {} (its embeddings carry no meaning)",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `name=value (0.93)`, or `name (0.93)` for a tag without a value.
fn tag_label(t: &tessera_indexes::Tag) -> String {
    match &t.value {
        Some(v) => format!("{}={v} ({:.2})", t.name, t.confidence),
        None => format!("{} ({:.2})", t.name, t.confidence),
    }
}
