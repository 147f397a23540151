//! `tessera plugin …`: tools for plugin authors.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use tessera::runtime::inspect::{ComponentSummary, inspect};

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Print a component's imports and exports, the contract version it targets, and whether it
    /// is a `tagger` plugin — without running it.
    Inspect {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Inspect { file, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let summary = inspect(&file.display().to_string(), &bytes)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_text(&file, &summary);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_text(file: &std::path::Path, s: &ComponentSummary) {
    println!("{} ({} bytes)", file.display(), s.bytes);
    let versions = if s.contract_versions.is_empty() {
        "none (imports nothing from tessera:plugin)".to_string()
    } else {
        s.contract_versions.join(", ")
    };
    println!("contract: tessera:plugin {versions}");
    println!(
        "world: {}",
        if s.tagger {
            "tagger (exports describe and analyze)"
        } else {
            "not a tagger (describe/analyze missing)"
        }
    );
    for (title, items) in [("imports", &s.imports), ("exports", &s.exports)] {
        println!("{title}:");
        for item in items {
            if item.functions.is_empty() {
                println!("  {} {}", item.kind, item.name);
            } else if item.kind == "func" {
                println!("  func {}({})", item.name, item.functions.join(", "));
            } else {
                println!(
                    "  {} {}: {}",
                    item.kind,
                    item.name,
                    item.functions.join(", ")
                );
            }
        }
    }
}
