//! `tessera catalog check`: validate a catalog before a run, every problem with where it is.

use std::path::PathBuf;
use std::process::ExitCode;
use tessera::catalog;

/// Catalog tools.
#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Check a catalog (JSON Lines, CSV or a directory): every malformed entry, duplicate id,
    /// unsupported or missing asset and unknown asset kind, with its line or folder. Exit 1 if
    /// there is any.
    Check {
        /// The catalog.
        catalog: PathBuf,
        /// Print problems as JSON Lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: CatalogCommand) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::Check { catalog, json } => {
            let loaded = catalog::load(&catalog)?;
            for problem in &loaded.problems {
                if json {
                    println!("{}", serde_json::to_string(problem)?);
                } else {
                    let kind = serde_json::to_value(problem.kind)?;
                    println!(
                        "{}, {}: [{}] {}",
                        catalog.display(),
                        problem.at,
                        kind.as_str().unwrap_or_default(),
                        problem.message
                    );
                }
            }
            let dropped = loaded
                .problems
                .iter()
                .filter(|p| p.kind.drops_title())
                .count();
            eprintln!(
                "{}: {} titles usable, {} problems ({dropped} entries unusable)",
                catalog.display(),
                loaded.titles.len(),
                loaded.problems.len()
            );
            Ok(if loaded.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
