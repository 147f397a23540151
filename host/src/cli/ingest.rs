//! `tessera ingest`: run plugins over a catalog into the store.

use super::SandboxArgs;
use anyhow::{Context, bail};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tessera::catalog::{self, Title};
use tessera::pipeline::{self, IngestReport, Pipeline};
use tessera::runtime::{Plugin, PluginHost};
use tessera::text_model::{self, TextSource};
use tessera_indexes::{EdgeStore, Entity, EntityStore, Output};
use tessera_models::hub::HubModel;

/// Flags of `tessera ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Catalog in JSON Lines (one title per line).
    pub catalog: PathBuf,
    /// Data directory; the store lives in DATA/store.
    #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
    pub data: PathBuf,
    /// Text model directory (Hugging Face layout). Default: all-MiniLM-L6-v2 from the HF cache,
    /// else a generated tiny model.
    #[arg(long, env = "TESSERA_TEXT_MODEL")]
    pub text_model: Option<PathBuf>,
    /// Text model on the Hugging Face hub, pinned: org/name@revision. Taken from the local cache,
    /// else downloaded (unless HF_HUB_OFFLINE is set).
    #[arg(long, env = "TESSERA_TEXT_MODEL_HUB", conflicts_with = "text_model")]
    pub text_model_hub: Option<HubModel>,
    /// Plugins to run, in order (a plugin runs after those whose tags it reads): components
    /// (`x.wasm`, with their manifest `x.toml` when one sits beside them) or manifests.
    /// Default: the built-in synopsis-embedder.
    #[arg(long = "plugin", env = "TESSERA_PLUGINS", value_delimiter = ',')]
    pub plugins: Vec<PathBuf>,
    /// Process only the titles that need it: not stored yet, lacking a plugin's outputs, or
    /// holding outputs of another plugin version or other models.
    #[arg(long)]
    pub only_stale: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// What `setup` builds.
pub struct Setup {
    pub source: TextSource,
    pub pipeline: Pipeline,
    pub store: Arc<EdgeStore>,
    /// The loaded text model (the one plugins call as `text`).
    pub text: Option<Arc<dyn tessera_models::TextEmbedder>>,
}

/// Loads the text model and plugins and opens the store.
pub fn setup(
    data: &Path,
    text_model: Option<&Path>,
    text_model_hub: Option<&HubModel>,
    plugin_files: &[PathBuf],
    sandbox: &SandboxArgs,
) -> anyhow::Result<Setup> {
    let tiny_dir = data.join("models/tiny-bert");
    let source = text_model::choose(text_model, text_model_hub, &tiny_dir)?;
    if let TextSource::Tiny(dir) = &source {
        eprintln!(
            "warning: no text model configured and all-MiniLM-L6-v2 is not in the Hugging Face cache;\n\
             warning: using a generated tiny random-weight model at {} — its embeddings carry NO meaning.\n\
             warning: pass --text-model DIR (or set TESSERA_TEXT_MODEL) for real embeddings.",
            dir.display()
        );
    }
    let name = text_model::model_name(&source);
    let (mut registry, _) = text_model::load_registry(source.dir(), &name, sandbox.device)
        .with_context(|| format!("loading text model from {}", source.dir().display()))?;
    text_model::load_extra(
        &mut registry,
        &sandbox.models,
        &sandbox.manifests,
        sandbox.device,
    )?;
    let text = registry.text(text_model::DEFAULT_TEXT);
    let registry = Arc::new(registry);
    let host = Arc::new(
        PluginHost::new(registry.clone(), sandbox.limits())?
            .with_compile_cache(data.join("plugin-cache")),
    );

    let mut plugins: Vec<Plugin> = Vec::new();
    if plugin_files.is_empty() {
        if let Some(error) = tessera_plugin_artifacts::BUILD_ERROR {
            bail!("the built-in plugins were not built:\n{error}");
        }
        plugins.push(host.load(
            "synopsis-embedder (built in)",
            tessera_plugin_artifacts::SYNOPSIS_EMBEDDER_WASM,
        )?);
    }
    for file in plugin_files {
        plugins.push(super::load::plugin(&host, file)?);
    }
    let schema = pipeline::schema_for(&plugins, &registry)?;
    let store = Arc::new(EdgeStore::open(&data.join("store"), schema)?);
    let mut pipeline = Pipeline::new(plugins, store.clone() as Arc<dyn EntityStore>)?
        .with_workers(sandbox.concurrency());
    if let Some(codebook) = super::sid::current_codebook(data)? {
        let source = &codebook.header().source;
        match store.schema().vectors.get(source) {
            Some(spec) if spec.dim == codebook.dim() => {}
            _ => bail!(
                "the semantic-ID codebook {} encodes vector {source:?} ({}-d), which this store does not hold with that dimension; run `tessera sid train --fresh` (with `--vector NAME` when the store holds several)",
                codebook.id(),
                codebook.dim()
            ),
        }
        pipeline = pipeline.with_semantic_ids(codebook);
    }
    Ok(Setup {
        source,
        pipeline,
        store,
        text,
    })
}

/// One line per title, as it is stored.
pub fn print_progress(title: &Title, outcome: Result<&Entity, &pipeline::Failure>) {
    match outcome {
        Ok(entity) => println!(
            "  stored  {:<10} {} ({} tags)",
            title.id,
            title.name,
            entity.tags.len()
        ),
        Err(f) => println!("  FAILED  {:<10} {} — {}", title.id, title.name, f.message),
    }
}

/// Prints the closing summary and picks the exit code.
pub fn finish(report: &IngestReport, total: usize) -> ExitCode {
    println!(
        "{} of {total} titles stored, {} failed",
        report.stored,
        report.failures.len()
    );
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The titles of `titles` that are not stored or that some plugin of this run would change.
fn needing(setup: &Setup, titles: &[Title]) -> anyhow::Result<Vec<Title>> {
    let mut redo: HashSet<String> = HashSet::new();
    for plugin in setup.pipeline.plugins() {
        let current = Output {
            plugin: plugin.info().name.clone(),
            version: plugin.info().version.clone(),
            models: plugin.output_models(),
            run: setup.pipeline.run().to_string(),
        };
        let needing = setup.store.needing(&current)?;
        redo.extend(needing.missing);
        redo.extend(needing.stale);
    }
    let mut out = Vec::new();
    for chunk in titles.chunks(1024) {
        let ids: Vec<String> = chunk.iter().map(|t| t.id.clone()).collect();
        let stored = setup.store.get(&ids)?;
        out.extend(
            chunk
                .iter()
                .zip(stored)
                .filter(|(t, s)| s.is_none() || redo.contains(&t.id))
                .map(|(t, _)| t.clone()),
        );
    }
    Ok(out)
}

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let titles = catalog::read_jsonl(&args.catalog)?;
    let setup = setup(
        &args.data,
        args.text_model.as_deref(),
        args.text_model_hub.as_ref(),
        &args.plugins,
        &args.sandbox,
    )?;
    let titles = if args.only_stale {
        let needed = needing(&setup, &titles)?;
        println!(
            "{} of {} titles need processing (new, missing a plugin's outputs, or stale)",
            needed.len(),
            titles.len()
        );
        needed
    } else {
        titles
    };
    println!("run {}", setup.pipeline.run());
    let report = setup.pipeline.ingest(&titles, print_progress)?;
    let code = finish(&report, titles.len());
    for plugin in setup.pipeline.plugins() {
        println!("  plugin {}: {}", plugin.info().name, plugin.stats());
    }
    Ok(code)
}
