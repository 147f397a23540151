//! `tessera ingest --watch`: a long-running ingest that keeps a store up to date with a catalog
//! and lets operators change plugins without restarting it.
//!
//! Two threads share one [`Pipeline`]:
//! - the plugin watcher polls the plugin files and the data directory's control file
//!   ([`PluginControl`]). A plugin whose files changed (and then held still for one poll, so a
//!   half-copied file is not loaded) is reloaded through the same checks as at start (manifest,
//!   sha256, contract); a plugin an operator disabled or enabled is switched. The new set is
//!   swapped in as a whole: titles in flight finish on the set they started with. A reload that
//!   fails any check is refused with its reason, and the running version stays.
//! - the catalog loop runs a pass whenever the catalog (its files, or any asset's size or time)
//!   or the plugin set changed, and retries a pass that failed after a while: new titles, changed titles, and titles whose outputs came from
//!   other plugin versions. A title that failed is not retried until its inputs or the plugins
//!   change, so a broken title does not spin.
//!
//! With `--serve`, the gRPC API serves the same store from this process (the embedded store
//! has one process at a time), so rankers see titles as they are stored.
//!
//! SIGINT or SIGTERM stops it after the titles in flight are stored (and the API's calls in
//! flight are answered).

mod plugin_watch;

use super::ingest::{self, IngestArgs, Loaded, MetricsFile, Selection, Setup};
use super::ingest_report::FailureReport;
use super::tags::RunLog;
use anyhow::Context;
use plugin_watch::PluginWatch;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tessera::catalog::{self, Title};
use tessera::manifest::{self, PluginManifest};
use tessera::pipeline::Pipeline;
use tessera::plugin_control::PluginControl;
use tessera_indexes::Schema;

/// What a file looked like at one poll: missing, or its length and modification time.
type FileStamp = Option<(u64, SystemTime)>;

fn file_stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// The files a plugin source stands for: the component and its manifest, whichever was given.
fn plugin_files(source: &Path) -> Vec<PathBuf> {
    if source.extension().is_some_and(|e| e == "toml") {
        let mut files = vec![source.to_path_buf()];
        if let Ok(m) = PluginManifest::read(source) {
            files.push(m.component_path(source));
        }
        files
    } else {
        vec![source.to_path_buf(), manifest::path_for(source)]
    }
}

fn plugin_stamp(source: &Path) -> Vec<FileStamp> {
    plugin_files(source).iter().map(|f| file_stamp(f)).collect()
}

/// A digest of the catalog's own files: the file, or every entry under the directory. Stat
/// calls only; links are not followed below the catalog itself, so a link back into the tree
/// cannot make the walk endless.
fn tree_stamp(catalog: &Path) -> u64 {
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    let mut walk = vec![catalog.to_path_buf()];
    while let Some(path) = walk.pop() {
        path.hash(&mut hash);
        file_stamp(&path).hash(&mut hash);
        let linked = path != catalog
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if linked {
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(&path) {
            let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            children.sort();
            walk.extend(children);
        }
    }
    hash.finish()
}

/// A digest of the size and time of every asset of `titles` (which may live outside the
/// catalog's directory). Stat calls only: contents are hashed only when a pass runs.
fn assets_stamp(titles: &[Title]) -> u64 {
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    for asset in titles.iter().flat_map(|t| &t.assets) {
        asset.path.hash(&mut hash);
        file_stamp(&asset.path).hash(&mut hash);
    }
    hash.finish()
}

/// How long a pass that failed (a catalog caught mid-write, a store that does not answer)
/// waits before it is tried again, unless the catalog or plugins change first.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Sleeps `time`, waking early when `stop` is set.
fn nap(time: Duration, stop: &AtomicBool) {
    let until = std::time::Instant::now() + time;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Outcomes over the whole session.
#[derive(Default)]
struct Totals {
    stored: usize,
    failed: usize,
    passes: usize,
}

/// What the catalog loop carries between passes.
struct Catalog<'a> {
    args: &'a IngestArgs,
    setup: &'a Setup,
    run_log: RunLog,
    report: FailureReport,
    metrics: Option<MetricsFile>,
    /// Titles that failed, with their input fingerprint: not retried until it changes (or the
    /// plugins do).
    failed: HashMap<String, String>,
    /// Catalog problems already reported.
    reported: HashSet<(String, String)>,
    /// The titles of the last read, and their assets' stamp at that read.
    titles: Vec<Title>,
    assets_at_read: u64,
    totals: Totals,
    /// A write to the run log or failure report that failed.
    write_error: Option<std::io::Error>,
}

impl Catalog<'_> {
    /// One pass over the catalog.
    fn pass(&mut self) -> anyhow::Result<()> {
        let pipeline = &self.setup.pipeline;
        let loaded = catalog::load(&self.args.catalog)
            .with_context(|| format!("reading the catalog {}", self.args.catalog.display()))?;
        let mut titles = loaded.titles;
        let mut problems = loaded.problems;
        if let Some(shard) = self.args.shard {
            titles.retain(|t| shard.owns(&t.id));
            problems.retain(|p| p.title.as_deref().is_none_or(|id| shard.owns(id)));
        }
        for problem in &problems {
            if self
                .reported
                .insert((problem.at.clone(), problem.message.clone()))
            {
                self.report.problem(problem)?;
                eprintln!(
                    "catalog {}, {}: {}",
                    self.args.catalog.display(),
                    problem.at,
                    problem.message
                );
            }
        }
        self.assets_at_read = assets_stamp(&titles);
        self.titles = titles.clone();
        if pipeline.plugins().is_empty() {
            println!(
                "every plugin is disabled ({}): waiting",
                PluginControl::path(&self.args.data).display()
            );
            return Ok(());
        }
        let (mut picked, _) = ingest::select(self.setup, titles, Selection::Changed)?;
        picked.retain(|t| {
            self.failed
                .get(&t.id)
                .is_none_or(|input| *input != pipeline.input_fingerprint(t))
        });
        if picked.is_empty() {
            return Ok(());
        }
        self.totals.passes += 1;
        println!(
            "pass {}: {} titles to process (new, changed, or from other plugin versions)",
            self.totals.passes,
            picked.len()
        );
        if let Some(m) = &mut self.metrics {
            m.total += picked.len();
        }
        let (run_log, report, metrics, failed, write_error) = (
            &mut self.run_log,
            &mut self.report,
            &mut self.metrics,
            &mut self.failed,
            &mut self.write_error,
        );
        let result = pipeline.ingest(&picked, |title, outcome| {
            ingest::print_progress(title, outcome);
            if let Some(m) = metrics.as_mut() {
                m.count(outcome.is_ok());
                m.write_quietly(pipeline);
            }
            let written = match outcome {
                Ok(entity) => {
                    failed.remove(&title.id);
                    run_log.title(entity)
                }
                Err(failure) => {
                    // The inputs as this attempt read them: a file still being copied then
                    // differs next time, and the title is tried again.
                    failed.insert(title.id.clone(), failure.input.clone());
                    report.failure(failure)
                }
            };
            if let Err(e) = written {
                write_error.get_or_insert(e);
            }
        })?;
        if let Some(e) = self.write_error.take() {
            return Err(e).with_context(|| {
                format!(
                    "writing the run log or failure report {}",
                    self.report.path().display()
                )
            });
        }
        self.totals.stored += result.stored;
        self.totals.failed += result.failures.len();
        let done = result.stored + result.failures.len();
        println!(
            "pass {}: {} of {} titles stored, {} failed{}",
            self.totals.passes,
            result.stored,
            picked.len(),
            result.failures.len(),
            if done < picked.len() {
                format!("; stopped with {} not started", picked.len() - done)
            } else {
                String::new()
            }
        );
        Ok(())
    }

    /// Runs passes until `stop`: at start, whenever the catalog, its assets or the plugin
    /// `generation` change, and after a failed pass has waited [`RETRY_AFTER`].
    fn follow(&mut self, generation: &AtomicU64, stop: &AtomicBool, poll: Duration) {
        // (plugin generation, catalog files, assets) when the last pass started.
        let mut seen: Option<(u64, u64, u64)> = None;
        let mut retry_at: Option<std::time::Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let now = (
                generation.load(Ordering::SeqCst),
                tree_stamp(&self.args.catalog),
                assets_stamp(&self.titles),
            );
            let retry = retry_at.is_some_and(|at| std::time::Instant::now() >= at);
            if seen != Some(now) || retry {
                if seen.map(|s| s.0) != Some(now.0) {
                    // Other plugins: failed titles deserve another try.
                    self.failed.clear();
                }
                retry_at = None;
                match self.pass() {
                    // The assets as the pass read them: a change after that read is seen at
                    // the next poll.
                    Ok(()) => seen = Some((now.0, now.1, self.assets_at_read)),
                    Err(e) => {
                        eprintln!(
                            "pass failed: {e:#}; trying again in {} s, or when the catalog or plugins change",
                            RETRY_AFTER.as_secs()
                        );
                        seen = Some(now);
                        retry_at = Some(std::time::Instant::now() + RETRY_AFTER);
                    }
                }
                if let Some(m) = &mut self.metrics {
                    m.write_quietly(&self.setup.pipeline);
                }
            }
            nap(poll, stop);
        }
    }
}

/// The plugin files and the control file as they were before the start-up loaded them: a
/// change made while plugins compile is then seen at the first poll.
pub struct Before {
    plugins: HashMap<PathBuf, Vec<FileStamp>>,
    control: FileStamp,
}

impl Before {
    /// Stamps `plugins` and DATA's control file now.
    pub fn take(data: &Path, plugins: &[PathBuf]) -> Self {
        Before {
            plugins: plugins
                .iter()
                .map(|p| (p.clone(), plugin_stamp(p)))
                .collect(),
            control: file_stamp(&PluginControl::path(data)),
        }
    }
}

/// Watches until SIGINT or SIGTERM. `setup`'s pipeline must stop on `stop`; `before` was taken
/// before `setup` loaded the plugins.
pub fn run(
    args: &IngestArgs,
    setup: Setup,
    before: Before,
    stop: Arc<AtomicBool>,
    run_log: RunLog,
    report: FailureReport,
    metrics: Option<MetricsFile>,
) -> anyhow::Result<ExitCode> {
    let poll = Duration::from_millis(args.poll_ms.max(10));
    let generation = AtomicU64::new(0);
    let stamps: Vec<Vec<FileStamp>> = setup
        .loaded
        .iter()
        .map(|l| {
            l.source
                .as_ref()
                .and_then(|s| before.plugins.get(s).cloned())
                .unwrap_or_default()
        })
        .collect();
    let n = setup.loaded.len();
    let mut watch = PluginWatch {
        data: &args.data,
        host: setup.host.clone(),
        fusion: setup.fusion.clone(),
        schema: setup.store.schema().clone(),
        pipeline: &setup.pipeline,
        generation: &generation,
        loaded: setup.loaded.clone(),
        stamps,
        settling: vec![None; n],
        refused: vec![None; n],
        control: setup.control.clone(),
        control_stamp: before.control,
    };
    let mut catalog = Catalog {
        args,
        setup: &setup,
        run_log,
        report,
        metrics,
        failed: HashMap::new(),
        reported: HashSet::new(),
        titles: Vec::new(),
        assets_at_read: assets_stamp(&[]),
        totals: Totals::default(),
        write_error: None,
    };
    println!(
        "watching {} and {} plugin files every {} ms (Ctrl-C stops after the titles in flight)",
        args.catalog.display(),
        setup.loaded.iter().filter(|l| l.source.is_some()).count(),
        poll.as_millis()
    );
    // The API, when asked, serves the same store from a thread of its own; it stops on the same
    // signals, and when it cannot serve (an address in use) it stops the watch too.
    let server = match args.serve {
        Some(listen) => {
            // Bound before the first pass: an address in use stops the watch before it starts.
            let listener = super::serve::bind(listen)?;
            let (mut config, metrics) = args.api.config()?;
            config.text_model = setup.text.clone();
            let store = setup.store.clone();
            let stop = stop.clone();
            Some(
                std::thread::Builder::new()
                    .name("tessera-api".into())
                    .spawn(move || {
                        let served = super::serve::serve_bound(
                            store,
                            listener,
                            config,
                            metrics,
                            Some(stop.clone()),
                        );
                        stop.store(true, Ordering::Relaxed);
                        served
                    })
                    .context("starting the gRPC server")?,
            )
        }
        None => None,
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                watch.poll();
                nap(poll, &stop);
            }
        });
        // However the catalog loop ends (a panic included), the plugin watcher and the API stop.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop_on_drop = StopOnDrop(&stop);
        catalog.follow(&generation, &stop, poll);
        // Also stops the plugin watcher.
        stop.store(true, Ordering::Relaxed);
    });
    setup.store.flush()?;
    if let Some(server) = server {
        match server.join() {
            Ok(served) => served.context("the gRPC API")?,
            Err(_) => anyhow::bail!("the gRPC API thread panicked"),
        }
    }
    println!(
        "watch stopped: {} titles stored, {} failed over {} passes",
        catalog.totals.stored, catalog.totals.failed, catalog.totals.passes
    );
    if let Some(m) = &mut catalog.metrics {
        m.write(&setup.pipeline)
            .with_context(|| format!("writing the metrics file {}", m.path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Sets `stop` on SIGINT or SIGTERM, from a thread of its own. The handlers are installed
/// before this returns, so a signal right after start is not lost.
pub fn stop_on_signal(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal listener")?;
    let (mut interrupt, mut terminate) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        )
    };
    std::thread::Builder::new()
        .name("tessera-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            });
            eprintln!("stopping: finishing the titles in flight");
            stop.store(true, Ordering::Relaxed);
        })
        .context("starting the signal listener")?;
    Ok(())
}
