//! The plugin runtime: one wasmtime [`Engine`], a [`Linker`] with Tessera's capabilities and WASI,
//! and [`Plugin`]s that each hold a pre-instantiated component.
//!
//! Every call gets a fresh [`Store`] and instance, so one title's failure can never leak state into
//! the next. Each store starts with nothing: no preopened directories, no environment, no network,
//! stdin empty, stdout discarded and stderr captured into a small buffer (a panic message ends up
//! in the error). A wall-clock deadline (epoch interruption, driven by a ticker thread) and a
//! memory cap (a [`ResourceLimiter`]) bound every call, instantiation included.

pub mod bindings;
mod compile_cache;
pub mod contract;
mod convert;
mod error;
pub mod inspect;
mod linkers;
mod stats;

pub use contract::Contract;
pub use error::PluginError;
pub use stats::{CallTiming, PluginStats, StatsSnapshot, render_prometheus};

use crate::caps::config::ConfigCtx;
use crate::caps::log::LogCtx;
use crate::caps::media::{Asset, Decoded, MediaCtx, MediaLimits};
use crate::caps::models::{ModelsCtx, ModelsLimits};
use crate::catalog::Title;
use bindings::{v0, v1};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tessera_models::Registry;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use convert::{Analysis, Embedding, PluginInfo, TokenSequence};
use tessera_indexes::Tag;

/// Sandbox limits for every plugin call.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Wall-clock time one call may take, instantiation included.
    pub deadline: Duration,
    /// Bytes of linear memory one instance may grow to.
    pub memory: usize,
    /// Bytes of guest stderr kept for error reports.
    pub stderr: usize,
    /// Caps on model calls.
    pub models: ModelsLimits,
    /// Caps on media calls and on decoding assets for models.
    pub media: MediaLimits,
    /// Try the pooling allocator first (falls back to on-demand when it cannot reserve its
    /// address space); `false` always allocates on demand.
    pub pooling: bool,
    /// Fuel (wasm instructions, roughly) one call may burn, instantiation included; `None`:
    /// unlimited (the deadline still applies).
    pub fuel: Option<u64>,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            deadline: Duration::from_secs(2),
            memory: 256 << 20,
            stderr: 16 << 10,
            models: ModelsLimits::default(),
            media: MediaLimits::default(),
            pooling: true,
            fuel: None,
        }
    }
}

/// Instances the pool holds at once: every plugin call in flight uses one component instance
/// (with a few core instances, memories and tables inside).
const POOL_COMPONENTS: u32 = 256;

/// Pool slots whose memory is decommitted together (one madvise round instead of one each).
const DECOMMIT_BATCH: usize = 16;

/// The engine: the pooling allocator (instances reuse pre-reserved slots, and linear memories
/// start from copy-on-write images of the component's data) when the machine grants the address
/// space it reserves up front, else on-demand allocation. The choice is logged, never silent.
fn engine(limits: &SandboxLimits) -> Result<(Engine, bool), PluginError> {
    let base = || {
        let mut config = Config::new();
        // Fuel counts executed instructions: a budget that, unlike the wall-clock deadline,
        // does not depend on how busy the machine is (an operator's `fuel` limit), and tells
        // how much work each call did.
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(true);
        config
    };
    if !limits.pooling {
        let engine = Engine::new(&base()).map_err(|e| PluginError::Host(format!("{e:#}")))?;
        return Ok((engine, false));
    }
    let mut pooled = base();
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_COMPONENTS)
        .total_core_instances(POOL_COMPONENTS * 4)
        .total_memories(POOL_COMPONENTS * 2)
        .total_tables(POOL_COMPONENTS * 4)
        .max_memory_size(limits.memory);
    // Returning a slot to the pool decommits its memory with madvise, and every madvise shoots
    // down TLBs on all cores; batching 16 slots per call took a fresh instance + call from
    // 24 µs to 17.5 µs median (BENCHMARKS.md). Batched slots are reused only after the flush.
    pool.decommit_batch_size(DECOMMIT_BATCH);
    pooled
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true);
    match Engine::new(&pooled) {
        Ok(engine) => {
            tracing::debug!(
                slots = POOL_COMPONENTS,
                "plugin instances use the pooling allocator"
            );
            Ok((engine, true))
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the pooling allocator is unavailable (address space?); plugin instances are allocated on demand");
            let engine = Engine::new(&base()).map_err(|e| PluginError::Host(format!("{e:#}")))?;
            Ok((engine, false))
        }
    }
}

/// How often the epoch advances; deadlines are rounded up to whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Everything one plugin instance can reach. Each capability owns its own part.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    models: ModelsCtx,
    media: MediaCtx,
    config: ConfigCtx,
    log: LogCtx,
    budget: crate::caps::budget::BudgetCtx,
    /// When the component finished instantiating (set by the call), for the call's timing.
    instantiated_at: Option<std::time::Instant>,
}

impl std::fmt::Debug for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginState")
            .field("plugin", &self.models.plugin)
            .finish_non_exhaustive()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl v1::types::Host for PluginState {}
impl v0::types::Host for PluginState {}

/// What an operator decides about one plugin (from its manifest): which models it may call, its
/// `[config]` table and its own limits.
#[derive(Debug, Clone, Default)]
pub struct PluginSettings {
    /// Model names the plugin may call; `None` allows every loaded model.
    pub allowed_models: Option<Vec<String>>,
    /// Key/values the plugin reads through the `config` interface.
    pub config: BTreeMap<String, String>,
    /// Its deadline per call; `None`: the host's.
    pub deadline: Option<Duration>,
    /// Its linear-memory cap in bytes (at most the host's); `None`: the host's.
    pub memory: Option<usize>,
    /// Its fuel per call; `None`: the host's.
    pub fuel: Option<u64>,
}

/// Caps linear memory and records a refused growth, so the error can say so precisely.
struct MemoryCap {
    limit: usize,
    refused: Option<usize>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            // An error (not `Ok(false)`) traps at once: a plugin that allocates without bound
            // stops here instead of limping on with failed allocations.
            return Err(wasmtime::Error::msg(format!(
                "memory growth to {desired} bytes refused"
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }

    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        16
    }
}

/// The shared engine, linker and models. Create one per process; it is cheap to share.
pub struct PluginHost {
    engine: Engine,
    /// One linker per supported contract line ([`contract::SUPPORTED`]).
    linker_v1: Linker<PluginState>,
    linker_v0: Linker<PluginState>,
    registry: Arc<Registry>,
    limits: SandboxLimits,
    pooled: bool,
    ticker_stop: Arc<AtomicBool>,
    /// Where compiled components are kept between runs ([`PluginHost::with_compile_cache`]).
    compile_cache: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(registry: Arc<Registry>, limits: SandboxLimits) -> Result<Self, PluginError> {
        let host_err = |e: wasmtime::Error| PluginError::Host(format!("{e:#}"));
        let (engine, pooled) = engine(&limits)?;

        let linker_v1 = linkers::linker_v1(&engine).map_err(host_err)?;
        let linker_v0 = linkers::linker_v0(&engine).map_err(host_err)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("tessera-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Host(format!("cannot start the epoch ticker: {e}")))?;

        Ok(PluginHost {
            engine,
            pooled,
            linker_v1,
            linker_v0,
            registry,
            limits,
            ticker_stop,
            compile_cache: None,
        })
    }

    /// Keeps compiled components in `dir`, keyed by the component's sha256 and this engine's
    /// compatibility hash (wasmtime version and settings), so that a plugin is compiled once per
    /// machine rather than once per run. The directory must belong to this host: its entries are
    /// native code that is loaded without recompiling.
    pub fn with_compile_cache(mut self, dir: std::path::PathBuf) -> Self {
        self.compile_cache = Some(dir);
        self
    }

    /// Whether instances come from the pooling allocator (else on-demand allocation).
    pub fn pooled(&self) -> bool {
        self.pooled
    }

    /// The models plugins can call.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Compiles a component, links it against the contract version it was built for and asks
    /// it to describe itself (under the sandbox limits), with default settings (every model
    /// allowed, no config). `source` names it in errors (a file path or a built-in name).
    pub fn load(self: &Arc<Self>, source: &str, bytes: &[u8]) -> Result<Plugin, PluginError> {
        self.load_with(source, bytes, PluginSettings::default())
    }

    /// [`PluginHost::load`] with an operator's settings for this plugin.
    pub fn load_with(
        self: &Arc<Self>,
        source: &str,
        bytes: &[u8],
        settings: PluginSettings,
    ) -> Result<Plugin, PluginError> {
        let load_err = |reason: String| PluginError::Load {
            plugin: source.to_string(),
            reason,
        };
        if bytes.is_empty() {
            return Err(load_err("the component is empty (0 bytes)".into()));
        }
        if let Some(memory) = settings.memory
            && memory > self.limits.memory
        {
            return Err(load_err(format!(
                "its manifest asks for {} MiB of memory; this host allows at most {} MiB per \
                 instance (--plugin-memory-mib)",
                memory >> 20,
                self.limits.memory >> 20
            )));
        }
        let component =
            compile_cache::compile(&self.engine, self.compile_cache.as_deref(), source, bytes)?;
        let ty = component.component_type();
        let names: Vec<String> = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let versions = contract::versions_in(names.iter().map(String::as_str)).map_err(load_err)?;
        let lines: Vec<Contract> = match contract::select(&versions).map_err(load_err)? {
            Some(line) => vec![line],
            // Nothing of the contract imported: the exports' types decide.
            None => contract::SUPPORTED.to_vec(),
        };
        let mut failures = Vec::new();
        let mut pre = None;
        for line in lines {
            match self.pre(line, &component) {
                Ok(p) => {
                    pre = Some(p);
                    break;
                }
                Err(e) => failures.push(format!("as tessera:plugin@{}: {e:#}", line.version())),
            }
        }
        let Some(pre) = pre else {
            return Err(load_err(failures.join("; ")));
        };
        let contract = versions
            .last()
            .cloned()
            .unwrap_or_else(|| pre.contract().version());
        let mut plugin = Plugin {
            host: self.clone(),
            pre,
            info: PluginInfo {
                name: source.to_string(),
                version: String::new(),
                tags: vec![],
                embeddings: vec![],
                token_sequences: vec![],
                after: vec![],
                contract: contract.clone(),
            },
            deadline: settings.deadline.unwrap_or(self.limits.deadline),
            memory: settings.memory.unwrap_or(self.limits.memory),
            // A manifest may lower the operator's fuel budget, never raise it.
            fuel: match (settings.fuel, self.limits.fuel) {
                (Some(plugin), Some(host)) => Some(plugin.min(host)),
                (plugin, host) => plugin.or(host),
            },
            allowed_models: settings.allowed_models.map(Arc::new),
            config: Arc::new(settings.config),
            stats: Arc::default(),
        };
        plugin.info = plugin.describe_fresh_as(source, contract)?;
        Ok(plugin)
    }

    fn pre(&self, line: Contract, component: &Component) -> wasmtime::Result<Pre> {
        Ok(match line {
            Contract::V1 => Pre::V1(v1::TaggerPre::new(
                self.linker_v1.instantiate_pre(component)?,
            )?),
            Contract::V0 => Pre::V0(v0::TaggerPre::new(
                self.linker_v0.instantiate_pre(component)?,
            )?),
        })
    }
}

/// Notes that the call's component is instantiated: the rest of the call is the guest's (and
/// its model calls').
fn mark_instantiated(store: &mut Store<PluginState>) {
    store.data_mut().instantiated_at = Some(std::time::Instant::now());
}

/// A plugin linked against one contract line.
#[derive(Clone)]
enum Pre {
    V0(v0::TaggerPre<PluginState>),
    V1(v1::TaggerPre<PluginState>),
}

impl Pre {
    fn contract(&self) -> Contract {
        match self {
            Pre::V0(_) => Contract::V0,
            Pre::V1(_) => Contract::V1,
        }
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A loaded plugin, ready to analyse titles. Cheap to call concurrently from many threads, and
/// cheap to clone (clones share the compiled component and the call statistics).
#[derive(Clone)]
pub struct Plugin {
    host: Arc<PluginHost>,
    pre: Pre,
    info: PluginInfo,
    /// From [`PluginSettings`], shared by every instance.
    deadline: Duration,
    memory: usize,
    fuel: Option<u64>,
    allowed_models: Option<Arc<Vec<String>>>,
    config: Arc<BTreeMap<String, String>>,
    stats: Arc<PluginStats>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// What the plugin said about itself at load.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Call counts and where their time went, since the plugin was loaded.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The plugin's name, version and live call statistics, for metrics
    /// ([`stats::render_prometheus`]).
    pub fn metrics_source(&self) -> (&str, &str, &PluginStats) {
        (&self.info.name, &self.info.version, &self.stats)
    }

    /// The models its manifest lets it call; `None` when it may call any loaded model.
    pub fn allowed_models(&self) -> Option<&[String]> {
        self.allowed_models.as_deref().map(Vec::as_slice)
    }

    /// The models whose change makes its stored outputs stale: those its manifest allows and
    /// those its declared vectors come from, sorted.
    pub fn output_models(&self) -> Vec<String> {
        let mut models: Vec<String> = self
            .allowed_models()
            .unwrap_or_default()
            .iter()
            .chain(self.info.embeddings.iter().map(|(_, m)| m))
            .chain(self.info.token_sequences.iter().map(|(_, m)| m))
            .cloned()
            .collect();
        models.sort();
        models.dedup();
        models
    }

    /// The contract line the plugin is linked against.
    pub fn contract(&self) -> Contract {
        self.pre.contract()
    }

    /// Calls `describe` again in a fresh instance (the cheapest full call: used by benchmarks and
    /// health checks).
    pub fn describe_fresh(&self) -> Result<PluginInfo, PluginError> {
        self.describe_fresh_as(&self.info.name, self.info.contract.clone())
    }

    fn describe_fresh_as(
        &self,
        name: &str,
        contract: semver::Version,
    ) -> Result<PluginInfo, PluginError> {
        let invalid = |reason| PluginError::InvalidOutput {
            plugin: name.to_string(),
            reason,
        };
        match &self.pre {
            Pre::V1(pre) => {
                let raw = self.call(None, "describe", Decoded::new(), |store| {
                    let instance = pre.instantiate(&mut *store)?;
                    mark_instantiated(store);
                    instance.call_describe(store)
                })?;
                PluginInfo::from_v1(raw, contract).map_err(invalid)
            }
            Pre::V0(pre) => {
                let raw = self.call(None, "describe", Decoded::new(), |store| {
                    let instance = pre.instantiate(&mut *store)?;
                    mark_instantiated(store);
                    instance.call_describe(store)
                })?;
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
    #[tracing::instrument(level = "debug", skip_all, fields(plugin = %self.info.name, title = %title.id))]
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
        // The guest's own error, as (kind, message), or its raw output.
        let raw: Result<convert::RawAnalysis, (&'static str, String)> = match &self.pre {
            Pre::V1(pre) => {
                let wit_title = convert::title_to_v1(title);
                let prior: Vec<v1::types::PriorTag> = prior
                    .iter()
                    .filter(|t| self.info.after.contains(&t.plugin))
                    .map(convert::prior_tag_to_v1)
                    .collect();
                self.call(Some(&title.id), "analyze", decoded.clone(), |store| {
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
                    let instance = pre.instantiate(&mut *store)?;
                    mark_instantiated(store);
                    instance.call_analyze(store, &wit_title, &assets, &prior)
                })?
                .map(convert::RawAnalysis::from)
                .map_err(convert::plugin_error_parts_v1)
            }
            Pre::V0(pre) => {
                let wit_title = convert::title_to_v0(title);
                self.call(Some(&title.id), "analyze", decoded.clone(), |store| {
                    let instance = pre.instantiate(&mut *store)?;
                    mark_instantiated(store);
                    instance.call_analyze(store, &wit_title)
                })?
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

    /// Instantiates the plugin in a fresh, limited store and runs `f` on it.
    fn call<R>(
        &self,
        title: Option<&str>,
        call: &'static str,
        decoded: Arc<Decoded>,
        f: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
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
        let _entered = span.enter();
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
        let ticks = self.deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let fuel = self.fuel.unwrap_or(u64::MAX);
        store
            .set_fuel(fuel)
            .map_err(|e| PluginError::Host(format!("setting fuel: {e:#}")))?;

        let outcome = f(&mut store);
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
