//! Subcommands. Flags are parsed by clap (every flag also reads an environment variable), then
//! each command builds the real objects from them.

mod bench;
mod demo;
mod embed;
mod ingest;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tessera::runtime::SandboxLimits;
use tessera_models::DeviceChoice;

/// Tessera: tag a catalog with sandboxed plugins and serve entity representations to rankers.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest the example catalog with the built-in plugin, print a summary, then serve gRPC.
    Demo(demo::DemoArgs),
    /// Run the plugins over a catalog and store the results.
    Ingest(ingest::IngestArgs),
    /// Serve a store over gRPC.
    Serve(serve::ServeArgs),
    /// Print the embedding of a text.
    Embed(embed::EmbedArgs),
    /// Model utilities.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Measure plugin-call overhead and embedding throughput.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Write a deterministic tiny random-weight CLIP vision encoder in Hugging Face format.
    TinyClip {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 7)]
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
    /// Memory cap of one plugin instance, in MiB.
    #[arg(long, env = "TESSERA_PLUGIN_MEMORY_MIB", default_value_t = 256)]
    plugin_memory_mib: usize,
    /// Where models run: auto, cpu, cuda, cuda:N.
    #[arg(long, env = "TESSERA_DEVICE", default_value = "auto")]
    device: DeviceChoice,
}

impl SandboxArgs {
    fn limits(&self) -> SandboxLimits {
        SandboxLimits {
            deadline: Duration::from_millis(self.plugin_deadline_ms),
            memory: self.plugin_memory_mib << 20,
            ..SandboxLimits::default()
        }
    }
}

/// Runs the parsed command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Demo(a) => demo::run(a),
        Command::Ingest(a) => ingest::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Bench(c) => bench::run(c),
        Command::Models(ModelsCommand::TinyClip { out, seed }) => {
            let spec = tessera_models::tiny::TinyClipSpec {
                seed,
                ..Default::default()
            };
            tessera_models::tiny::write_tiny_clip_vision(&out, &spec)?;
            println!(
                "wrote a tiny random-weight CLIP vision encoder to {} (its embeddings carry no meaning)",
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
