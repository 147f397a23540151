//! One plugin call: a fresh, limited store ([`Plugin::begin`]), the guest's work under the
//! deadline ([`CallScope::run`]), and the report ([`Plugin::finish`]: timing, stats, and a
//! typed error for whatever stopped it). Plus [`block_on`], how synchronous callers wait for
//! these async calls.
//!
//! Calls are async because model calls are: a plugin waiting for a model's batch yields its
//! fiber, and the thread runs other plugin calls meanwhile.

use super::*;
use std::future::Future;
use std::sync::OnceLock;

/// A call in progress: its store and what its report needs.
pub(super) struct CallScope {
    pub(super) store: Store<PluginState>,
    stderr: MemoryOutputPipe,
    started: std::time::Instant,
    fuel: u64,
    span: tracing::Span,
    call: &'static str,
}

impl CallScope {
    /// Runs `work` on the store under `deadline`. The epoch callback stops guest code at the
    /// deadline; the timeout also stops a call that is waiting in the host (for a model's
    /// batch), which epochs cannot reach.
    pub(super) async fn run<R>(
        &mut self,
        deadline: Duration,
        work: impl AsyncFnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> wasmtime::Result<R> {
        use tracing::Instrument as _;
        let span = self.span.clone();
        // A tick of slack: a guest running at the deadline is stopped by its epoch (the
        // classic deadline error) rather than by the timer.
        let limit = deadline + 2 * EPOCH_TICK;
        match tokio::time::timeout(limit, work(&mut self.store).instrument(span)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(wasmtime::Error::new(Trap::Interrupt)),
        }
    }
}

impl Plugin {
    /// Calls `describe` again in a fresh instance (the cheapest full call: used by benchmarks and
    /// health checks).
    pub fn describe_fresh(&self) -> Result<PluginInfo, PluginError> {
        call::block_on(self.describe_fresh_async())
    }

    /// [`Plugin::describe_fresh`], awaited.
    pub async fn describe_fresh_async(&self) -> Result<PluginInfo, PluginError> {
        self.describe_as(&self.info.name, self.info.contract.clone())
            .await
    }

    pub(super) fn describe_fresh_as(
        &self,
        name: &str,
        contract: semver::Version,
    ) -> Result<PluginInfo, PluginError> {
        call::block_on(self.describe_as(name, contract))
    }

    async fn describe_as(
        &self,
        name: &str,
        contract: semver::Version,
    ) -> Result<PluginInfo, PluginError> {
        let invalid = |reason| PluginError::InvalidOutput {
            plugin: name.to_string(),
            reason,
        };
        let mut scope = self.begin(None, "describe", Decoded::new())?;
        // The same steps on either line's bindings (their types differ): checked by the
        // bindings at load, by index afterwards ([`Exports`]).
        macro_rules! describe {
            ($pre:expr, $typed:ident) => {
                scope
                    .run(
                        self.deadline,
                        async |store: &mut Store<PluginState>| match &self.exports {
                            Some(exports) => {
                                let instance =
                                    $pre.instance_pre().instantiate_async(&mut *store).await?;
                                mark_instantiated(store);
                                let describe = exports.$typed(store, &instance)?;
                                let (info,) = describe.call_async(&mut *store, ()).await?;
                                Ok(info)
                            }
                            None => {
                                let instance = $pre.instantiate_async(&mut *store).await?;
                                mark_instantiated(store);
                                instance.call_describe(store).await
                            }
                        },
                    )
                    .await
            };
        }
        match &self.pre {
            Pre::V1(pre) => {
                let outcome = describe!(pre, describe_v1);
                let raw = self.finish(scope, outcome)?;
                PluginInfo::from_v1(raw, contract).map_err(invalid)
            }
            Pre::V0(pre) => {
                let outcome = describe!(pre, describe_v0);
                let raw = self.finish(scope, outcome)?;
                PluginInfo::from_v0(raw, contract).map_err(invalid)
            }
        }
    }

    /// Runs the plugin on one title in a fresh instance, with no earlier plugins' tags.
    pub fn analyze(&self, title: &Title) -> Result<Analysis, PluginError> {
        self.analyze_after(title, &[])
    }

    /// Runs the plugin on one title in a fresh instance. `prior` holds the tags that plugins
    /// before it produced for the title; the plugin sees those of the plugins it lists in
    /// `after`. Each of the title's assets becomes an `asset` handle (contract 1.x).
    pub fn analyze_after(&self, title: &Title, prior: &[Tag]) -> Result<Analysis, PluginError> {
        self.analyze_shared(title, prior, &Decoded::new())
    }

    /// [`Plugin::analyze_after`] with the title's decoded assets shared with the other plugins
    /// that run on it (each asset is decoded once per title).
    pub fn analyze_shared(
        &self,
        title: &Title,
        prior: &[Tag],
        decoded: &Arc<Decoded>,
    ) -> Result<Analysis, PluginError> {
        call::block_on(self.analyze_async(title, prior, decoded))
    }

    /// [`Plugin::analyze_shared`], awaited: while the plugin waits for a model's batch it holds
    /// no thread.
    pub async fn analyze_async(
        &self,
        title: &Title,
        prior: &[Tag],
        decoded: &Arc<Decoded>,
    ) -> Result<Analysis, PluginError> {
        let mut scope = self.begin(Some(&title.id), "analyze", decoded.clone())?;
        // The guest's own error, as (kind, message), or its raw output.
        let raw: Result<convert::RawAnalysis, (&'static str, String)> = match &self.pre {
            Pre::V1(pre) => {
                let wit_title = convert::title_to_v1(title);
                let prior: Vec<v1::types::PriorTag> = prior
                    .iter()
                    .filter(|t| self.info.after.contains(&t.plugin))
                    .map(convert::prior_tag_to_v1)
                    .collect();
                let outcome = scope
                    .run(self.deadline, async |store: &mut Store<PluginState>| {
                        let assets = title
                            .assets
                            .iter()
                            .map(|a| {
                                store.data_mut().table.push(Asset {
                                    role: a.kind.clone(),
                                    path: a.path.clone(),
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        let exports = loaded_exports(&self.exports)?;
                        let instance = pre.instance_pre().instantiate_async(&mut *store).await?;
                        mark_instantiated(store);
                        let analyze = exports.analyze_v1(store, &instance)?;
                        let (outcome,) = analyze
                            .call_async(&mut *store, (&wit_title, &assets, &prior))
                            .await?;
                        Ok(outcome)
                    })
                    .await;
                self.finish(scope, outcome)?
                    .map(convert::RawAnalysis::from)
                    .map_err(convert::plugin_error_parts_v1)
            }
            Pre::V0(pre) => {
                let wit_title = convert::title_to_v0(title);
                let outcome = scope
                    .run(self.deadline, async |store: &mut Store<PluginState>| {
                        let exports = loaded_exports(&self.exports)?;
                        let instance = pre.instance_pre().instantiate_async(&mut *store).await?;
                        mark_instantiated(store);
                        let analyze = exports.analyze_v0(store, &instance)?;
                        let (outcome,) = analyze.call_async(&mut *store, (&wit_title,)).await?;
                        Ok(outcome)
                    })
                    .await;
                self.finish(scope, outcome)?
                    .map(convert::RawAnalysis::from)
                    .map_err(convert::plugin_error_parts_v0)
            }
        };
        let plugin = || self.info.name.clone();
        match raw {
            Ok(raw) => {
                Analysis::validate(raw, &self.info).map_err(|reason| PluginError::InvalidOutput {
                    plugin: plugin(),
                    reason,
                })
            }
            Err((kind, message)) => Err(PluginError::Guest {
                plugin: plugin(),
                kind,
                message,
            }),
        }
    }

    /// A fresh store with this plugin's limits, for one call.
    pub(super) fn begin(
        &self,
        title: Option<&str>,
        call: &'static str,
        decoded: Arc<Decoded>,
    ) -> Result<CallScope, PluginError> {
        let started = std::time::Instant::now();
        let span = tracing::debug_span!(
            "plugin_call",
            plugin = %self.info.name,
            version = %self.info.version,
            call,
            title = title.unwrap_or("-"),
            instantiate_us = tracing::field::Empty,
            guest_us = tracing::field::Empty,
            model_calls = tracing::field::Empty,
            model_us = tracing::field::Empty,
            fuel = tracing::field::Empty,
        );
        let host = &self.host;
        let limits = &host.limits;
        let stderr = MemoryOutputPipe::new(limits.stderr);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = PluginState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                limit: self.memory,
                refused: None,
            },
            models: ModelsCtx {
                plugin: self.info.name.clone(),
                registry: host.registry.clone(),
                allowed: self.allowed_models.clone(),
                limits: limits.models.clone(),
                media: limits.media.clone(),
                usage: Default::default(),
                decoded: decoded.clone(),
            },
            media: MediaCtx {
                plugin: self.info.name.clone(),
                limits: limits.media.clone(),
                decoded,
            },
            config: ConfigCtx {
                values: self.config.clone(),
            },
            log: LogCtx {
                plugin: self.info.name.clone(),
                title: title.map(str::to_string),
                lines: vec![],
            },
            budget: crate::caps::budget::BudgetCtx::new(started, self.deadline),
            instantiated_at: None,
        };
        let mut store = Store::new(&host.engine, state);
        store.limiter(|s| &mut s.limiter);
        // At every epoch tick a running guest yields its thread to the other calls in flight
        // (a busy guest would otherwise hold one of the runtime's few threads for its whole
        // deadline, and the titles waiting behind it would miss theirs), and is stopped once
        // its wall-clock deadline has passed.
        let deadline_at = started + self.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if std::time::Instant::now() >= deadline_at {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        let fuel = self.fuel.unwrap_or(u64::MAX);
        store
            .set_fuel(fuel)
            .map_err(|e| PluginError::Host(format!("setting fuel: {e:#}")))?;

        Ok(CallScope {
            store,
            stderr,
            started,
            fuel,
            span,
            call,
        })
    }

    /// Records the call's timing and stats and turns what stopped it into a typed error.
    pub(super) fn finish<R>(
        &self,
        scope: CallScope,
        outcome: wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let CallScope {
            store,
            stderr,
            started,
            fuel,
            span,
            call,
        } = scope;
        let timing = {
            let data = store.data();
            let total = started.elapsed();
            let instantiate = data
                .instantiated_at
                .map_or(total, |at| at.saturating_duration_since(started));
            let model = data.models.usage;
            CallTiming {
                instantiate,
                guest: total.saturating_sub(instantiate).saturating_sub(model.busy),
                model_calls: model.calls,
                model: model.busy,
                fuel: fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
            }
        };
        span.record("fuel", timing.fuel);
        span.record("instantiate_us", timing.instantiate.as_micros() as u64);
        span.record("guest_us", timing.guest.as_micros() as u64);
        span.record("model_calls", timing.model_calls);
        span.record("model_us", timing.model.as_micros() as u64);
        tracing::debug!(
            instantiate_us = timing.instantiate.as_micros() as u64,
            guest_us = timing.guest.as_micros() as u64,
            model_calls = timing.model_calls,
            model_us = timing.model.as_micros() as u64,
            fuel = timing.fuel,
            ok = outcome.is_ok(),
            "plugin call"
        );
        self.stats.record(&timing, outcome.is_err());
        outcome.map_err(|error| self.classify(error, call, &store, &stderr))
    }

    fn classify(
        &self,
        error: wasmtime::Error,
        call: &'static str,
        store: &Store<PluginState>,
        stderr: &MemoryOutputPipe,
    ) -> PluginError {
        let plugin = self.info.name.clone();
        if let Some(requested) = store.data().limiter.refused {
            return PluginError::MemoryLimit {
                plugin,
                call,
                requested,
                limit: self.memory,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginError::Deadline {
                plugin,
                call,
                deadline: self.deadline,
            },
            Some(Trap::StackOverflow) => PluginError::StackOverflow { plugin, call },
            Some(Trap::MemoryOutOfBounds) if stack_wrapped(&error) => {
                PluginError::StackOverflow { plugin, call }
            }
            Some(Trap::OutOfFuel) => PluginError::Fuel {
                plugin,
                call,
                fuel: self.fuel.unwrap_or(u64::MAX),
            },
            other => PluginError::Trap {
                plugin,
                call,
                trap: other
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| format!("{error:#}")),
                stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
            },
        }
    }
}

/// The exports a plugin's load found (`analyze` only ever runs after it).
fn loaded_exports(exports: &Option<Exports>) -> wasmtime::Result<&Exports> {
    exports
        .as_ref()
        .ok_or_else(|| wasmtime::format_err!("the plugin was called before it finished loading"))
}

/// Whether an out-of-bounds trap is the guest's own stack running out. A guest's stack lives
/// in its linear memory, at the bottom (kit-built plugins link with 64 KiB), and grows down
/// towards address 0: overflowing it wraps the stack pointer, so the faulting store lands just
/// below 4 GiB, far above any memory a plugin may have (the host caps it well below). wasmtime
/// attaches the fault's address to the error as "memory fault at wasm address 0x…"
/// (`tests/sandbox.rs` checks both a deep recursion and a wild store elsewhere).
fn stack_wrapped(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| {
        let text = cause.to_string();
        text.strip_prefix("memory fault at wasm address 0x")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .is_some_and(|address| (WRAPPED_STACK..1 << 32).contains(&address))
    })
}

/// Faults at or above this wasm address (the top 16 MiB of a 32-bit memory) come from a
/// wrapped stack pointer: a frame of up to 16 MiB pushed past address 0.
const WRAPPED_STACK: u64 = (1 << 32) - (16 << 20);

/// The name of the plugin runtime's threads.
const RUNTIME_THREAD: &str = "tessera-plugins";

/// The runtime plugin calls run on when a synchronous caller waits for one: worker threads as
/// many as cores, timers on (the WASI clocks and call deadlines use them).
fn runtime() -> Result<&'static tokio::runtime::Runtime, PluginError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name(RUNTIME_THREAD)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PluginError::Host(format!("cannot start the plugin runtime: {e}")))
}

/// Waits for a plugin call from synchronous code, blocking the calling thread. Called from a
/// thread inside another async runtime, the wait runs on a scoped thread of its own (tokio
/// refuses to nest runtimes), still blocking the caller. Called from one of the plugin
/// runtime's own threads it would wait for work that thread has to do: that is refused.
pub fn block_on<T, F>(future: F) -> Result<T, PluginError>
where
    T: Send,
    F: Future<Output = Result<T, PluginError>> + Send,
{
    let runtime = runtime()?;
    if std::thread::current().name() == Some(RUNTIME_THREAD) {
        return Err(PluginError::Host(
            "a plugin call was waited for from the plugin runtime's own thread; await it instead"
                .into(),
        ));
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|_| Err(PluginError::Host("a plugin call panicked".into())))
        })
    } else {
        runtime.block_on(future)
    }
}

/// The plugin runtime's handle, for callers that spawn plugin calls as tasks.
pub fn handle() -> Result<tokio::runtime::Handle, PluginError> {
    runtime().map(|r| r.handle().clone())
}
