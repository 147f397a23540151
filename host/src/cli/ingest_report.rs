//! What `tessera ingest` tells people while and after it runs: a progress bar (or periodic log
//! lines when stderr is not a terminal), and the failure report — one JSON line per catalog
//! problem or failed title, written as failures happen so a killed run keeps what it found.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tessera::catalog::{Problem, Title};
use tessera::pipeline::Failure;
use tessera_indexes::Entity;

/// How often progress is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Progress of a run: a bar on a terminal, log lines otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    failed: usize,
    started: Instant,
    last_log: Instant,
    verbose: bool,
}

impl Progress {
    /// Progress over `total` titles; `verbose` also prints a line per title on stdout.
    pub fn new(total: usize, verbose: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} titles  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message("0 failed");
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            total,
            done: 0,
            failed: 0,
            started: now,
            last_log: now,
            verbose,
        }
    }

    /// Records one finished title.
    pub fn title(&mut self, title: &Title, outcome: Result<&Entity, &Failure>) {
        self.done += 1;
        if outcome.is_err() {
            self.failed += 1;
        }
        if self.verbose {
            let line = match outcome {
                Ok(entity) => format!(
                    "  stored  {:<10} {} ({} tags)",
                    title.id,
                    title.name,
                    entity.tags.len()
                ),
                Err(f) => format!("  FAILED  {:<10} {} — {}", title.id, title.name, f.message),
            };
            match &self.bar {
                Some(bar) => bar.println(line),
                None => println!("{line}"),
            }
        }
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done as u64);
                bar.set_message(format!("{} failed", self.failed));
            }
            None if self.last_log.elapsed() >= LOG_EVERY || self.done == self.total => {
                self.last_log = Instant::now();
                eprintln!("ingest: {}", self.line());
            }
            None => {}
        }
    }

    /// `done/total titles, rate, failed, ETA`.
    fn line(&self) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = self.done as f64 / seconds;
        let left = self.total.saturating_sub(self.done);
        let eta = if rate > 0.0 {
            format!("{:.0} s", left as f64 / rate)
        } else {
            "?".into()
        };
        format!(
            "{}/{} titles, {rate:.1} titles/s, {} failed, ETA {eta}",
            self.done, self.total, self.failed
        )
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One line of the failure report.
#[derive(Debug, serde::Serialize)]
struct Entry<'a> {
    run: &'a str,
    title: Option<&'a str>,
    asset: Option<&'a str>,
    plugin: Option<&'a str>,
    kind: String,
    message: &'a str,
    /// Where in the catalog, for catalog problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<&'a str>,
}

/// A JSON Lines file written one flushed line at a time: a run killed at any moment keeps
/// every line it wrote (the failure report, the run's tag log).
pub struct JsonLines {
    path: PathBuf,
    out: BufWriter<File>,
    lines: usize,
}

impl JsonLines {
    /// Creates (truncates) `path`, and its folder.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        }
        let file =
            File::create(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
        Ok(JsonLines {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            lines: 0,
        })
    }

    /// Appends one line and flushes it.
    pub fn append(&mut self, value: &impl serde::Serialize) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        self.lines += 1;
        Ok(())
    }

    /// Lines written.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The failure report: JSON Lines, one entry per catalog problem or failed title.
pub struct FailureReport {
    file: JsonLines,
    run: String,
}

impl FailureReport {
    /// Creates (truncates) the report at `path`.
    pub fn create(path: &Path, run: &str) -> anyhow::Result<Self> {
        Ok(FailureReport {
            file: JsonLines::create(path)?,
            run: run.to_string(),
        })
    }

    fn write(&mut self, entry: &Entry<'_>) -> std::io::Result<()> {
        self.file.append(entry)
    }

    /// Records a catalog problem.
    pub fn problem(&mut self, problem: &Problem) -> std::io::Result<()> {
        let kind = serde_json::to_value(problem.kind)
            .ok()
            .and_then(|v| v.as_str().map(|k| format!("catalog-{k}")))
            .unwrap_or_else(|| "catalog".into());
        let run = self.run.clone();
        self.write(&Entry {
            run: &run,
            title: problem.title.as_deref(),
            asset: problem.asset.as_deref(),
            plugin: None,
            kind,
            message: &problem.message,
            at: Some(&problem.at),
        })
    }

    /// Records a failed title.
    pub fn failure(&mut self, failure: &Failure) -> std::io::Result<()> {
        let run = self.run.clone();
        self.write(&Entry {
            run: &run,
            title: Some(&failure.title),
            asset: None,
            plugin: (!failure.plugin.is_empty()).then_some(failure.plugin.as_str()),
            kind: failure.kind.clone(),
            message: &failure.message,
            at: None,
        })
    }

    /// Entries written.
    pub fn entries(&self) -> usize {
        self.file.lines()
    }

    /// Where the report is.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}
