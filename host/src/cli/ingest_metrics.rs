//! `tessera ingest --metrics-file`: the run's metrics, rewritten as the run goes.

use std::path::PathBuf;
use tessera::pipeline::Pipeline;

/// How often `--metrics-file` is rewritten during a run.
const METRICS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// `--metrics-file`: the run's metrics in the Prometheus text format, replaced atomically (a
/// temp file renamed over it), so a collector never reads half a file.
pub struct MetricsFile {
    pub path: PathBuf,
    written: Option<std::time::Instant>,
    run: String,
    /// Titles the run has picked so far.
    pub total: usize,
    done: usize,
    failed: usize,
    /// Whether a failed write was reported already.
    warned: bool,
}

impl MetricsFile {
    pub(super) fn new(path: PathBuf, run: &str, total: usize) -> Self {
        MetricsFile {
            path,
            written: None,
            run: run.to_string(),
            total,
            done: 0,
            failed: 0,
            warned: false,
        }
    }

    /// Writes the file when it is due; a failure is a warning, printed once: a collector
    /// reading a stale file is better than a run stopped for it.
    pub fn write_quietly(&mut self, pipeline: &Pipeline) {
        if let Err(e) = self.write_every(METRICS_EVERY, pipeline)
            && !self.warned
        {
            self.warned = true;
            eprintln!(
                "warning: writing the metrics file {}: {e}",
                self.path.display()
            );
        }
    }

    pub fn count(&mut self, ok: bool) {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
    }

    /// Writes the file unless it was written less than `every` ago.
    fn write_every(
        &mut self,
        every: std::time::Duration,
        pipeline: &Pipeline,
    ) -> std::io::Result<()> {
        match self.written {
            Some(at) if at.elapsed() < every => Ok(()),
            _ => self.write(pipeline),
        }
    }

    pub fn write(&mut self, pipeline: &Pipeline) -> std::io::Result<()> {
        use std::fmt::Write as _;
        let run = tessera::histogram::label(&self.run);
        let mut out = String::new();
        for (name, help, value) in [
            (
                "tessera_ingest_titles",
                "Titles this run processes.",
                self.total,
            ),
            (
                "tessera_ingest_titles_done",
                "Titles processed so far (stored or failed).",
                self.done,
            ),
            (
                "tessera_ingest_titles_failed",
                "Titles that failed so far.",
                self.failed,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name}{{run=\"{run}\"}} {value}");
        }
        let running = pipeline.plugins();
        let plugins: Vec<_> = running.iter().map(|p| p.metrics_source()).collect();
        tessera::runtime::render_prometheus(&mut out, &plugins);
        let tmp = self.path.with_extension("prom.tmp");
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, &self.path)?;
        self.written = Some(std::time::Instant::now());
        Ok(())
    }
}
