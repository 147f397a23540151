//! [`Pipeline::ingest`]: many titles in flight with few threads.
//!
//! Analysis runs as tasks on the plugin runtime (one thread per core): a title waiting for a
//! model's batch holds no thread, so `workers` titles can be in flight on a 2-core machine and
//! their model calls merge into large batches. Storing runs on a few writer threads, off the
//! runtime (store clients may block, and some run runtimes of their own). A permit per title
//! bounds what is in flight or waiting to be written, so memory stays bounded whatever the
//! catalog's size.

use super::{Failure, IngestReport, Pipeline};
use crate::catalog::Title;
use crate::runtime::PluginError;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, mpsc};
use tessera_indexes::{Entity, IndexError};

/// A counting semaphore for plain threads: the feeder takes a permit per title, a writer gives
/// it back once the title is stored.
struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    fn new(n: usize) -> Self {
        Permits {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    fn take(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }

    fn give(&self) {
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.freed.notify_one();
    }
}

/// A title's index, its input fingerprint, and what the plugins made of it.
type Analyzed = (usize, String, Result<Entity, (String, PluginError)>);

/// Sends a title's outcome when the task ends, however it ends: a task that panics (a decoder
/// bug on a corrupt asset) still reports its title, as failed, so its permit comes back and
/// the run does not wait for it for ever.
struct Report {
    done: Option<mpsc::Sender<Analyzed>>,
    index: usize,
    input: String,
}

impl Report {
    fn send(mut self, outcome: Result<Entity, (String, PluginError)>) {
        if let Some(done) = self.done.take() {
            // The writers are gone only when the run is over.
            let _ = done.send((self.index, std::mem::take(&mut self.input), outcome));
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let panicked = PluginError::Host("the title's analysis panicked".into());
            let _ = done.send((
                self.index,
                std::mem::take(&mut self.input),
                Err((String::new(), panicked)),
            ));
        }
    }
}

/// Gives a permit back when dropped, so a writer that panics still frees its title's slot.
struct Release<'a>(&'a Permits);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.give();
    }
}

impl Pipeline {
    /// Ingests `titles`, calling `on_title` after each with the title and its outcome (in the
    /// order titles finish). Failures in the report are in catalog order.
    pub fn ingest(
        &self,
        titles: &[Title],
        on_title: impl FnMut(&Title, Result<&Entity, &Failure>) + Send,
    ) -> Result<IngestReport, IndexError> {
        let workers = self.workers.min(titles.len()).max(1);
        let writers = std::thread::available_parallelism()
            .map_or(2, |n| n.get() * 2)
            .min(workers);
        let permits = Permits::new(workers);
        let (done, analyzed) = mpsc::channel::<Analyzed>();
        let analyzed = Mutex::new(analyzed);
        let progress = Mutex::new((0usize, Vec::<(usize, Failure)>::new(), on_title));
        let runtime = crate::runtime::handle();
        let write = || {
            loop {
                // One writer waits on the channel at a time; the others wait for the lock.
                let next = analyzed.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok((i, input, outcome)) = next else { break };
                let _release = Release(&permits);
                let title = &titles[i];
                // A panic while storing one title fails that title, not the run.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.store_title(title, &input, outcome)
                }))
                .unwrap_or_else(|_| {
                    Err(Failure {
                        title: title.id.clone(),
                        plugin: String::new(),
                        kind: "host".into(),
                        message: "storing the title panicked".into(),
                        input: input.clone(),
                    })
                });
                // A panicking `on_title` must not stop the other writers from reporting.
                let mut guard = progress.lock().unwrap_or_else(|p| p.into_inner());
                let (stored, failures, on_title) = &mut *guard;
                match outcome {
                    Ok(entity) => {
                        *stored += 1;
                        on_title(title, Ok(&entity));
                    }
                    Err(failure) => {
                        tracing::warn!(title = %failure.title, plugin = %failure.plugin, kind = %failure.kind, "{}", failure.message);
                        on_title(title, Err(&failure));
                        failures.push((i, failure));
                    }
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 0..writers {
                scope.spawn(write);
            }
            // The feeder: one task per title, at most `workers` in flight or waiting to be
            // written.
            for (i, title) in titles.iter().enumerate() {
                permits.take();
                if self
                    .stop
                    .as_ref()
                    .is_some_and(|s| s.load(Ordering::Relaxed))
                {
                    break;
                }
                // The inputs as they are before any plugin reads them, taken here rather than
                // in the title's task: hashing assets reads files, which would stall the
                // plugin runtime's threads (or, as a blocking section, add threads).
                let inputs = self.analyzer.inputs(title);
                let input = inputs.fingerprint.clone();
                match &runtime {
                    Ok(runtime) => {
                        let analyzer = self.analyzer.clone();
                        let title = title.clone();
                        let done = done.clone();
                        runtime.spawn(async move {
                            let report = Report {
                                done: Some(done),
                                index: i,
                                input,
                            };
                            report.send(analyzer.analyze(&title, inputs).await);
                        });
                    }
                    Err(e) => {
                        let failed = Err((String::new(), PluginError::Host(e.to_string())));
                        let _ = done.send((i, input, failed));
                    }
                }
            }
            // Writers end once every task has sent its title and this sender is gone.
            drop(done);
        });
        let (stored, mut failures, _) = progress.into_inner().unwrap_or_else(|p| p.into_inner());
        failures.sort_by_key(|(i, _)| *i);
        let report = IngestReport {
            stored,
            failures: failures.into_iter().map(|(_, f)| f).collect(),
        };
        self.store.flush()?;
        Ok(report)
    }
}
