//! `tessera ingest`: run plugins over a catalog into the store.

use super::SandboxArgs;
pub use super::ingest_metrics::MetricsFile;
use super::ingest_report::{FailureReport, Progress};
pub use super::ingest_select::{Selection, Shard, select};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tessera::catalog::{self, Title};
use tessera::pipeline::{self, IngestReport, Pipeline};
use tessera::plugin_control::PluginControl;
use tessera::runtime::{Plugin, PluginHost};
use tessera::text_model::{self, TextSource};
use tessera_indexes::{Entity, EntityStore, StoreLocation};
use tessera_models::hub::HubModel;

/// Flags of `tessera ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The catalog: JSON Lines (one title per line), a `.csv` file, or a directory with one
    /// folder per title (`title.json` and media files).
    pub catalog: PathBuf,
    /// Data directory; the store lives in DATA/store.
    #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
    pub data: PathBuf,
    #[command(flatten)]
    pub store: super::store_cmd::StoreArg,
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
    /// Redo every title, even those whose inputs and plugin versions are unchanged.
    #[arg(long, conflicts_with_all = ["only_missing", "only_stale"])]
    pub force: bool,
    /// Process only titles not stored yet.
    #[arg(long, conflicts_with = "only_stale")]
    pub only_missing: bool,
    /// Process only the titles whose outputs are out of date: not stored yet, lacking a
    /// plugin's outputs, or holding outputs of another plugin version or other models (changed
    /// inputs are not looked at).
    #[arg(long)]
    pub only_stale: bool,
    /// This worker's share of the catalog, I/N (0-based): titles whose id hashes to I of N, so
    /// N workers split a catalog without overlap.
    #[arg(long, env = "TESSERA_SHARD")]
    pub shard: Option<Shard>,
    /// Where to write the failure report (JSON Lines). Default: DATA/reports/RUN.failures.jsonl.
    #[arg(long)]
    pub failures: Option<PathBuf>,
    /// Tag taxonomy (TOML: names, hierarchy, aliases, thresholds) applied to machine tags.
    /// Default: DATA/taxonomy.toml when it exists.
    #[arg(long, env = "TESSERA_TAXONOMY")]
    pub taxonomy: Option<PathBuf>,
    /// A fused vector (`fused`) made from several of the plugins' dense vectors, each
    /// normalised and weighted: `NAME=WEIGHT,NAME=WEIGHT` (its cosine is the weighted mean of
    /// the parts'). NAME is a vector's name (`text/all-MiniLM-L6-v2@c9745ed1d9f2`) or a
    /// modality (`text`, `image`, `audio`) when the plugins store one dense vector of it.
    /// Recorded in the store's schema when the store is created; pass the same recipe on later
    /// runs.
    #[arg(long, env = "TESSERA_FUSE")]
    pub fuse: Option<String>,
    /// Write the run's metrics (titles done and failed; per plugin: calls, failures, latency,
    /// instantiation and model-wait histograms, fuel) in the Prometheus text format to FILE,
    /// replaced atomically every 10 s and at the end (for node_exporter's textfile collector).
    #[arg(long, env = "TESSERA_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Keep running: process the catalog, then again whenever it changes (a title added or
    /// edited, an asset replaced) or the plugins do. A plugin file replaced on disk is reloaded
    /// (with the same manifest and sha256 checks), and `tessera plugin disable|enable` takes
    /// effect, without a restart; titles in flight finish on the plugins they started with.
    /// SIGINT or SIGTERM stops after the titles in flight.
    #[arg(long, conflicts_with_all = ["force", "only_missing", "only_stale"])]
    pub watch: bool,
    /// How often `--watch` looks at the catalog and plugin files, in milliseconds.
    #[arg(
        long,
        env = "TESSERA_POLL_MS",
        default_value_t = 2000,
        requires = "watch"
    )]
    pub poll_ms: u64,
    /// With `--watch`: also serve the gRPC API on this address from the same process (port 0
    /// picks a free port, printed on stdout), so rankers read titles as they are stored and a
    /// followed WatchEntities stream sees each pass. The only way to serve the embedded store
    /// while it is written, since one process holds it. Text queries use the ingest's text
    /// model.
    #[arg(long, env = "TESSERA_SERVE", requires = "watch")]
    pub serve: Option<std::net::SocketAddr>,
    /// Print a line per title on stdout.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    // Last: the heading applies to the flags after it.
    #[command(flatten, next_help_heading = "gRPC API (with --serve)")]
    pub api: super::serve::ApiArgs,
}

/// What `setup` builds.
pub struct Setup {
    pub source: TextSource,
    /// Runs the enabled plugins.
    pub pipeline: Pipeline,
    pub store: Arc<dyn EntityStore>,
    /// The loaded text model (the one plugins call as `text`), on the interactive lane of its
    /// queue: for ranker queries.
    pub text: Option<Arc<dyn tessera_models::TextEmbedder>>,
    /// Every plugin loaded, enabled or not, in the order given.
    pub loaded: Vec<Loaded>,
    /// What loaded them (for reloads).
    pub host: Arc<PluginHost>,
    /// The fused-vector recipe asked for.
    pub fusion: Option<tessera_indexes::Fusion>,
    /// The operator's plugin switches the pipeline started with.
    pub control: PluginControl,
}

/// A loaded plugin and where it came from.
#[derive(Clone)]
pub struct Loaded {
    /// The file given on the command line; `None` for the built-in plugin.
    pub source: Option<PathBuf>,
    pub plugin: Plugin,
}

/// The store schema `loaded` writes (every plugin counts, disabled or not, so that switching
/// one off never changes the schema), with the fused vector when there is a recipe.
pub fn schema_of(
    loaded: &[Loaded],
    host: &PluginHost,
    fusion: Option<&tessera_indexes::Fusion>,
) -> anyhow::Result<tessera_indexes::Schema> {
    let plugins: Vec<Plugin> = loaded.iter().map(|l| l.plugin.clone()).collect();
    let schema = pipeline::schema_for(&plugins, host.registry())?;
    Ok(match fusion {
        Some(fusion) => fusion.clone().apply_to(schema)?,
        None => schema,
    })
}

/// What the plugins of `loaded` that `control` switched off say about themselves (a title
/// stored while they are off keeps their earlier outputs).
pub fn disabled(loaded: &[Loaded], control: &PluginControl) -> Vec<Plugin> {
    loaded
        .iter()
        .filter(|l| !control.enabled(&l.plugin.info().name))
        .map(|l| l.plugin.clone())
        .collect()
}

/// The plugins of `loaded` that `control` lets run.
pub fn enabled(loaded: &[Loaded], control: &PluginControl) -> Vec<Plugin> {
    loaded
        .iter()
        .filter(|l| control.enabled(&l.plugin.info().name))
        .map(|l| l.plugin.clone())
        .collect()
}

/// Loads the text model and plugins and opens the store.
pub fn setup(
    data: &Path,
    location: &StoreLocation,
    fuse: Option<&str>,
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
    let (mut registry, batched) = text_model::load_registry(source.dir(), &name, sandbox.device)
        .with_context(|| format!("loading text model from {}", source.dir().display()))?;
    text_model::load_extra(
        &mut registry,
        &sandbox.models,
        &sandbox.manifests,
        sandbox.device,
    )?;
    // Ranker queries (demo, `ingest --watch --serve`) share the model's queue on the
    // interactive lane, ahead of the plugins' bulk work.
    let text: Option<Arc<dyn tessera_models::TextEmbedder>> = Some(Arc::new(
        batched.with_lane(tessera_models::batching::Lane::Interactive),
    ));
    let registry = Arc::new(registry);
    let host = Arc::new(
        PluginHost::new(registry.clone(), sandbox.limits())?
            .with_compile_cache(data.join("plugin-cache")),
    );

    let mut loaded: Vec<Loaded> = Vec::new();
    if plugin_files.is_empty() {
        if let Some(error) = tessera_plugin_artifacts::BUILD_ERROR {
            bail!("the built-in plugins were not built:\n{error}");
        }
        loaded.push(Loaded {
            source: None,
            plugin: host.load(
                "synopsis-embedder (built in)",
                tessera_plugin_artifacts::SYNOPSIS_EMBEDDER_WASM,
            )?,
        });
    }
    for file in plugin_files {
        loaded.push(Loaded {
            source: Some(file.clone()),
            plugin: super::load::plugin(&host, file)?,
        });
    }
    let fusion = fuse.map(tessera_indexes::Fusion::parse).transpose()?;
    let schema = schema_of(&loaded, &host, fusion.as_ref())?;
    let store = location
        .open(schema)
        .with_context(|| format!("opening the store at {location}"))?;
    let control = PluginControl::read(data)?;
    let names: Vec<&str> = loaded
        .iter()
        .map(|l| l.plugin.info().name.as_str())
        .collect();
    for warning in control.unknown_warnings(data, &names) {
        eprintln!("{warning}");
    }
    for l in loaded
        .iter()
        .filter(|l| !control.enabled(&l.plugin.info().name))
    {
        println!(
            "plugin {} is disabled ({}); `tessera plugin enable {}` runs it again",
            l.plugin.info().name,
            PluginControl::path(data).display(),
            l.plugin.info().name
        );
    }
    // Switched-off plugins are dormant from the start, as after a watch's swap: a title redone
    // meanwhile keeps what they stored.
    let mut pipeline = Pipeline::new(enabled(&loaded, &control), store.clone())
        .with_context(|| {
            format!(
                "the plugins enabled by {}",
                PluginControl::path(data).display()
            )
        })?
        .with_dormant(disabled(&loaded, &control))
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
        loaded,
        host,
        fusion,
        control,
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

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    // Read before the models and plugins load: a catalog that cannot be read fails in a moment.
    // A watch reads it on every pass; at start it only has to exist.
    let loaded = if args.watch {
        if !args.catalog.exists() {
            bail!("the catalog {} does not exist", args.catalog.display());
        }
        catalog::Catalog::default()
    } else {
        catalog::load(&args.catalog)?
    };
    let before = args
        .watch
        .then(|| super::ingest_watch::Before::take(&args.data, &args.plugins));
    let setup = setup(
        &args.data,
        &args.store.location(&args.data)?,
        args.fuse.as_deref(),
        args.text_model.as_deref(),
        args.text_model_hub.as_ref(),
        &args.plugins,
        &args.sandbox,
    )?;
    let taxonomy_path = args
        .taxonomy
        .clone()
        .or_else(|| Some(args.data.join("taxonomy.toml")).filter(|p| p.is_file()));
    let mut setup = setup;
    if let Some(path) = &taxonomy_path {
        let taxonomy = tessera::taxonomy::Taxonomy::read(path)?;
        setup.pipeline = setup.pipeline.with_taxonomy(taxonomy);
        println!("taxonomy {}", path.display());
    }
    let run_id = setup.pipeline.run().to_string();
    println!("run {run_id}");
    let mut run_log = super::tags::RunLog::create(&args.data, &run_id)?;
    let report_path = args.failures.clone().unwrap_or_else(|| {
        args.data
            .join("reports")
            .join(format!("{run_id}.failures.jsonl"))
    });
    let mut report = FailureReport::create(&report_path, &run_id)?;
    // `before` is taken exactly when watching.
    if let Some(before) = before {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        super::ingest_watch::stop_on_signal(stop.clone())?;
        setup.pipeline = setup.pipeline.with_stop(stop.clone()).with_digest_cache();
        let metrics = args
            .metrics_file
            .clone()
            .map(|path| MetricsFile::new(path, &run_id, 0));
        return super::ingest_watch::run(&args, setup, before, stop, run_log, report, metrics);
    }
    if setup.pipeline.plugins().is_empty() {
        bail!(
            "every plugin is disabled by {}; `tessera plugin enable NAME` runs one again",
            PluginControl::path(&args.data).display()
        );
    }
    let mut titles = loaded.titles;
    let mut problems = loaded.problems;
    if let Some(shard) = args.shard {
        titles.retain(|t| shard.owns(&t.id));
        // A problem without a title id (a malformed line) is reported by shard 0 only.
        problems.retain(|p| match p.title.as_deref() {
            Some(id) => shard.owns(id),
            None => shard.index == 0,
        });
        println!(
            "shard {}/{}: {} titles of this catalog",
            shard.index,
            shard.count,
            titles.len()
        );
    }
    for problem in &problems {
        report.problem(problem)?;
        eprintln!(
            "catalog {}, {}: {}",
            args.catalog.display(),
            problem.at,
            problem.message
        );
    }
    let selection = if args.force {
        Selection::All
    } else if args.only_missing {
        Selection::Missing
    } else if args.only_stale {
        Selection::Stale
    } else {
        Selection::Changed
    };
    let catalog_size = titles.len();
    let (titles, skipped) = select(&setup, titles, selection)?;
    match selection {
        Selection::Stale => println!(
            "{} of {catalog_size} titles need processing (new, missing a plugin's outputs, or stale)",
            titles.len()
        ),
        _ if skipped > 0 => println!(
            "{skipped} of {catalog_size} titles skipped: {} (--force redoes them)",
            if selection == Selection::Missing {
                "already stored"
            } else {
                "inputs, plugins and models unchanged since their last run"
            }
        ),
        _ => {}
    }
    let mut progress = Progress::new(titles.len(), args.verbose);
    let mut write_error = None;
    let mut metrics = args
        .metrics_file
        .clone()
        .map(|path| MetricsFile::new(path, &run_id, titles.len()));
    let result = setup.pipeline.ingest(&titles, |title, outcome| {
        progress.title(title, outcome);
        if let Some(metrics) = &mut metrics {
            metrics.count(outcome.is_ok());
            metrics.write_quietly(&setup.pipeline);
        }
        let written = match outcome {
            Ok(entity) => run_log.title(entity),
            Err(failure) => report.failure(failure),
        };
        if let Err(e) = written {
            write_error.get_or_insert(e);
        }
    });
    progress.finish();
    // Before any error: a collector should see how far a failed run got.
    if let Some(metrics) = &mut metrics {
        metrics
            .write(&setup.pipeline)
            .with_context(|| format!("writing the metrics file {}", metrics.path.display()))?;
    }
    let result = result?;
    if let Some(e) = write_error {
        bail!(
            "writing the failure report {}: {e}",
            report.path().display()
        );
    }
    let code = finish(&result, titles.len());
    if !problems.is_empty() {
        println!("{} catalog problems", problems.len());
    }
    for plugin in setup.pipeline.plugins().iter() {
        println!("  plugin {}: {}", plugin.info().name, plugin.stats());
    }
    let decoded = setup.pipeline.decode_counts();
    if decoded.decodes + decoded.reuses > 0 {
        println!(
            "  media: {} assets decoded, {} decodes shared between plugins or calls",
            decoded.decodes, decoded.reuses
        );
    }
    if report.entries() > 0 {
        println!("failure report: {}", report.path().display());
    }
    // Unknown asset kinds are warnings (the asset is still used); every other problem means
    // some title or asset was not processed.
    let failed_in_catalog = problems
        .iter()
        .any(|p| p.kind != catalog::ProblemKind::UnknownAssetKind);
    if failed_in_catalog {
        return Ok(ExitCode::from(1));
    }
    Ok(code)
}
