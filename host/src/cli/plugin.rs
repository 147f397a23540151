//! `tessera plugin …`: tools for plugin authors.

use super::plugin_template as template;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;
use tessera::mock_model::MockText;
use tessera::runtime::inspect::{ComponentSummary, LARGE_STACK, inspect};
use tessera::runtime::{PluginHost, SandboxLimits};
use tessera::text_model;
use tessera_models::{DeviceChoice, Registry};

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
    /// Run a plugin on a catalog's titles and print what it produced, with timings. Exit 1 when
    /// any title failed.
    Test {
        /// The component (`.wasm`) or its manifest (`.toml`).
        file: PathBuf,
        /// Titles to run it on (JSON Lines, as `tessera ingest` reads).
        #[arg(long)]
        catalog: PathBuf,
        /// Answer model calls with a deterministic mock (vectors depend only on the text), so a
        /// plugin's own tests never change with the model.
        #[arg(long, conflicts_with = "text_model")]
        mock_models: bool,
        /// Text model directory; default: all-MiniLM-L6-v2 from the HF cache, else a tiny model.
        #[arg(long)]
        text_model: Option<PathBuf>,
        /// One JSON object per title instead of text.
        #[arg(long)]
        json: bool,
        /// More models the plugin may call, as NAME=DIR or NAME=MODEL (e.g. clip=DIR for
        /// zero-shot); with --mock-models too.
        #[arg(long = "model", value_delimiter = ',')]
        models: Vec<text_model::ExtraModel>,
        /// Model manifests, for NAME=MODEL.
        #[arg(long, env = "TESSERA_MANIFESTS", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifests"))]
        manifests: PathBuf,
    },
    /// Print a manifest for a component (name, version, contract, sha256, allowed models) for an
    /// operator to review and keep beside it as `NAME.toml`.
    Manifest {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Models the plugin may call.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
    },
    /// Switch a plugin off for every `tessera ingest` into a data directory; a running
    /// `tessera ingest --watch` stops starting it within its poll interval (calls in flight
    /// finish). It stays loaded, so the store's vectors do not change, and a title redone while
    /// it is off keeps what it stored before. Any name is accepted (this command does not know
    /// which plugins a later ingest loads); an ingest warns about a name none of its plugins has.
    Disable {
        /// The plugin's name (as `tessera plugin inspect` shows it).
        name: String,
        /// Data directory.
        #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
        data: PathBuf,
    },
    /// Switch a disabled plugin on again; titles new since it was switched off lack its
    /// outputs, so the next ingest (or a running watch) processes them.
    Enable {
        /// The plugin's name.
        name: String,
        /// Data directory.
        #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
        data: PathBuf,
    },
    /// Build a plugin crate for wasm32-wasip2 (release) and check the component it produced.
    Build {
        /// The crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// `tessera plugin enable|disable`.
fn switch(name: &str, data: &Path, enabled: bool) -> anyhow::Result<ExitCode> {
    use tessera::plugin_control::PluginControl;
    let changed = PluginControl::set(data, name, enabled)?;
    let state = if enabled { "enabled" } else { "disabled" };
    let path = PluginControl::path(data);
    if changed {
        println!("plugin {name} {state} in {}", path.display());
    } else {
        println!("plugin {name} was already {state} in {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
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
        PluginCommand::Disable { name, data } => switch(&name, &data, false),
        PluginCommand::Enable { name, data } => switch(&name, &data, true),
        PluginCommand::Manifest { file, models } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            // Describing needs an instance; no model is called, so an empty registry does.
            let host = Arc::new(PluginHost::new(
                Arc::new(Registry::default()),
                SandboxLimits::default(),
            )?);
            let plugin = host.load(&file.display().to_string(), &bytes)?;
            print!(
                "{}",
                tessera::manifest::PluginManifest::describe(&plugin, &bytes, &models)
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Test {
            file,
            catalog,
            mock_models,
            text_model,
            json,
            models,
            manifests,
        } => test(
            &file,
            &catalog,
            mock_models,
            text_model.as_deref(),
            json,
            (&models, &manifests),
        ),
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
    for dir in ["src", ".cargo"] {
        std::fs::create_dir_all(root.join(dir))
            .with_context(|| format!("creating {}", root.join(dir).display()))?;
    }
    for (file, text) in [
        ("Cargo.toml", template::CARGO_TOML),
        ("src/lib.rs", template::LIB_RS),
        ("README.md", template::README),
        (".gitignore", template::GITIGNORE),
        (".cargo/config.toml", template::CARGO_CONFIG),
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
    if ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|f| !f.is_empty()))
    {
        eprintln!(
            "warning: RUSTFLAGS is set, so cargo ignores the plugin's .cargo/config.toml flags: the \
             guest links with Rust's 1 MiB stack and each call starts slower (PLUGINS.md, \"Limits\")"
        );
    }
    // Run from the plugin's folder, so that its .cargo/config.toml (the guest's stack size)
    // applies as it does to a `cargo build` there.
    let output = Command::new(cargo)
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
            "Cargo.toml",
        ])
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
    println!("runs on this host: {}", s.host_support);
    println!(
        "world: {}",
        if s.tagger {
            "tagger (exports describe and analyze)"
        } else {
            "not a tagger (describe/analyze missing)"
        }
    );
    if let Some(memory) = &s.memory {
        let kib = |b: u64| b.div_ceil(1024);
        match memory.stack_bytes {
            Some(stack) => println!(
                "memory: {} KiB at start; stack {} KiB below the static data (an overflow traps)",
                kib(memory.initial_bytes),
                kib(stack)
            ),
            None => println!(
                "memory: {} KiB at start; stack size not readable",
                kib(memory.initial_bytes)
            ),
        }
        if memory.stack_bytes.is_some_and(|s| s >= LARGE_STACK) {
            println!(
                "  note: a stack this large makes every fresh instance slower (~19 µs instead of ~11 µs \
                 a call on the CI machine): the host keeps only the first 128 KiB of memory resident \
                 between instances. The plugin kit links 64 KiB: \
                 rustflags = [\"-C\", \"link-arg=-zstack-size=65536\"] (PLUGINS.md)"
            );
        }
    }
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

fn test(
    file: &Path,
    catalog: &Path,
    mock: bool,
    text_model: Option<&Path>,
    json: bool,
    (extra, manifests): (&[text_model::ExtraModel], &Path),
) -> anyhow::Result<ExitCode> {
    let titles = tessera::catalog::read_jsonl(catalog)?;
    let mut registry = if mock {
        let mut registry = Registry::default();
        // Plugins name the default text model `text`.
        registry.insert_text("text", Arc::new(MockText::new("mock")));
        registry
    } else {
        let tiny = std::env::temp_dir().join("tessera-plugin-test-tiny");
        let source = text_model::choose(text_model, None, &tiny)?;
        let name = text_model::model_name(&source);
        text_model::load_registry(source.dir(), &name, DeviceChoice::Auto)?.0
    };
    text_model::load_extra(&mut registry, extra, manifests, DeviceChoice::Auto)?;
    let registry = Arc::new(registry);
    let host = Arc::new(PluginHost::new(registry, SandboxLimits::default())?);
    let start = Instant::now();
    let plugin = super::load::plugin(&host, file)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let info = plugin.info();
    if !json {
        println!(
            "{} {} (loaded in {load_ms:.1} ms){}",
            info.name,
            info.version,
            if mock { ", mock models" } else { "" }
        );
    }
    let mut failed = 0;
    for title in &titles {
        let start = Instant::now();
        let result = plugin.analyze(title);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if json {
            let line = match &result {
                Ok(a) => serde_json::json!({
                    "id": title.id,
                    "tags": a.tags.iter().map(|t| serde_json::json!({
                        "name": t.name, "value": t.value, "confidence": t.confidence,
                    })).collect::<Vec<_>>(),
                    "embeddings": a.embeddings.iter().map(|e| serde_json::json!({
                        "name": e.name, "model": e.model, "vector": e.vector,
                    })).collect::<Vec<_>>(),
                }),
                Err(e) => serde_json::json!({"id": title.id, "error": e.to_string()}),
            };
            println!("{line}");
        } else {
            match &result {
                Ok(a) => {
                    let tags: Vec<String> = a.tags.iter().map(super::tag_label).collect();
                    let vectors: Vec<String> = a
                        .embeddings
                        .iter()
                        .map(|e| format!("{}[{}]", e.name, e.vector.len()))
                        .collect();
                    println!(
                        "{:>8.2} ms  {}  {}  {}",
                        ms,
                        title.id,
                        tags.join(", "),
                        vectors.join(", ")
                    );
                }
                Err(e) => println!("{ms:>8.2} ms  {}  FAILED: {e}", title.id),
            }
        }
        failed += usize::from(result.is_err());
    }
    if !json {
        println!("{} titles, {failed} failed", titles.len());
        println!("{}", plugin.stats());
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
