//! `tessera plugin …`: tools for plugin authors.

use super::plugin_template as template;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
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
    /// Create a plugin crate that builds as it is: a tagger that tags and embeds the synopsis.
    New {
        /// Crate and plugin name (lowercase letters, digits and `-`).
        name: String,
        /// Where to create the crate's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The plugin SDK to depend on (by path).
        #[arg(long, env = "TESSERA_PLUGIN_SDK", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk"))]
        sdk: PathBuf,
    },
    /// Build a plugin crate for wasm32-wasip2 (release) and check the component it produced.
    Build {
        /// The crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
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
        PluginCommand::New { name, dir, sdk } => new(&name, &dir, &sdk),
        PluginCommand::Build { dir } => build(&dir),
    }
}

fn new(name: &str, parent: &Path, sdk: &Path) -> anyhow::Result<ExitCode> {
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "plugin name {name:?}: use lowercase letters, digits and '-', starting with a letter"
        );
    }
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the plugin SDK at {} (set --sdk)", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!("{} is not the plugin SDK (no Cargo.toml)", sdk.display());
    }
    let root = parent.join(name);
    if root.exists() {
        bail!(
            "{} already exists; choose another name or --dir",
            root.display()
        );
    }
    let fill = |text: &str| {
        text.replace("{name}", name)
            .replace("{file}", &name.replace('-', "_"))
            .replace("{sdk}", &sdk.display().to_string())
    };
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("creating {}", root.display()))?;
    for (file, text) in [
        ("Cargo.toml", template::CARGO_TOML),
        ("src/lib.rs", template::LIB_RS),
        ("README.md", template::README),
        (".gitignore", template::GITIGNORE),
    ] {
        let path = root.join(file);
        std::fs::write(&path, fill(text)).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created plugin {name} in {}", root.display());
    println!("next: tessera plugin build {}", root.display());
    Ok(ExitCode::SUCCESS)
}

fn build(dir: &Path) -> anyhow::Result<ExitCode> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!("{} has no Cargo.toml; is it a plugin crate?", dir.display());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo (is it on PATH?)")?;
    if !output.status.success() {
        bail!(
            "cargo build of {} failed ({}); if it says the wasm32-wasip2 target is missing:              rustup target add wasm32-wasip2",
            dir.display(),
            output.status
        );
    }
    // Cargo's JSON messages name every artifact; the plugin is the cdylib's .wasm.
    let wasm = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| m["filenames"].as_array().cloned())
        .flatten()
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .with_context(|| format!("cargo built {} but produced no .wasm", dir.display()))?;
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let summary = inspect(&wasm.display().to_string(), &bytes)?;
    if !summary.tagger {
        bail!(
            "{} does not export describe and analyze: call export_plugin! in src/lib.rs",
            wasm.display()
        );
    }
    println!("{}", wasm.display());
    eprintln!(
        "built a tagger for tessera:plugin {} ({} bytes)",
        summary.contract_versions.join(", "),
        summary.bytes
    );
    Ok(ExitCode::SUCCESS)
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
