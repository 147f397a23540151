//! The plugin runtime: one wasmtime [`Engine`], a [`Linker`] with Tessera's capabilities and WASI,
//! and [`Plugin`]s that each hold a pre-instantiated component.
//!
//! Every call gets a fresh [`Store`] and instance, so one title's failure can never leak state into
//! the next. Each store starts with nothing: no preopened directories, no environment, no network,
//! stdin empty, stdout discarded and stderr captured into a small buffer (a panic message ends up
//! in the error). A wall-clock deadline (epoch interruption, driven by a ticker thread, for guest
//! code; a timer for time spent waiting in the host) and a memory cap (a [`ResourceLimiter`])
//! bound every call, instantiation included.
//!
//! Calls are async (wasmtime's async support: each call runs on a fiber). The model imports are
//! async host functions that await their batch, so a plugin waiting for a model yields and its
//! thread runs other calls; the pipeline keeps many titles in flight on one thread per core.
//! Synchronous callers wait with [`block_on`].

pub mod bindings;
mod call;
mod compile_cache;
pub mod contract;
mod convert;
mod error;
mod exports;
pub mod inspect;
mod linkers;
mod outputs;
mod stats;

pub use call::{block_on, handle};
pub use contract::Contract;
pub use error::PluginError;
pub use stats::{CallTiming, PluginStats, StatsSnapshot, render_prometheus};

use crate::caps::config::ConfigCtx;
use crate::caps::log::LogCtx;
use crate::caps::media::{Asset, Decoded, MediaCtx, MediaLimits};
use crate::caps::models::{ModelsCtx, ModelsLimits};
use crate::catalog::Title;
use bindings::{v0, v1};
use exports::Exports;
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
pub use outputs::output_model;
use tessera_indexes::{Tag, VectorKind};

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
const POOL_COMPONENTS: u32 = MAX_INSTANCES;

/// Plugin instances alive at once, each call in flight holding one: the pool's size, and the
/// most titles a pipeline keeps in flight.
pub const MAX_INSTANCES: u32 = 256;

/// Pool slots whose memory is decommitted together (one madvise round instead of one each).
const DECOMMIT_BATCH: usize = 16;

/// Bytes at the start of a pooled linear memory that stay resident between instances (reset by
/// memset). 128 KiB holds a kit-built guest's 64 KiB stack, its static data and first heap
/// pages; a guest linked with Rust's default 1 MiB stack gains nothing from it and pays the
/// memset (~2 µs), about what the table setting below saves it. Resident at most: 128 KiB per
/// memory slot ever used (2 per instance slot, [`MAX_INSTANCES`] slots: 64 MiB) and 8 KiB per
/// table slot; wasmtime resets the prefix to the module's image before a slot is reused, so
/// nothing passes from one instance to the next.
const MEMORY_KEEP_RESIDENT: usize = 128 << 10;

/// Bytes at the start of a pooled table kept resident likewise: funcrefs are initialised lazily,
/// so a guest's first indirect call writes the table's first page.
const TABLE_KEEP_RESIDENT: usize = 8 << 10;

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
        // Every call in flight runs on a fiber with its own stack.
        .total_stacks(POOL_COMPONENTS)
        .max_memory_size(limits.memory);
    // Returning a slot to the pool decommits its memory with madvise, and every madvise shoots
    // down TLBs on all cores; batching 16 slots per call took a fresh instance + call from
    // 24 µs to 17.5 µs median (BENCHMARKS.md). Batched slots are reused only after the flush.
    pool.decommit_batch_size(DECOMMIT_BATCH);
    // A reused slot's first pages are reset with memset instead of decommitted, so a fresh
    // instance does not page-fault on them: the guest's stack, static data and first heap pages
    // (with the kit's 64 KiB guest stack) and the first table page, which a guest's first
    // indirect call writes. 18.8 → 10.8 µs median per fresh instance + call (BENCHMARKS.md).
    pool.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT);
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
            placement: Arc::default(),
            exports: None,
        };
        // Linking (`TaggerPre::new`) type-checked both exports, and this first call goes
        // through the bindings, which check them again; later calls take them by index.
        plugin.info = plugin.describe_fresh_as(source, contract)?;
        plugin.exports = Exports::checked(&component);
        // Once per load: the registry does not change under a plugin.
        plugin.placement = Arc::new(outputs::Placement::of(
            &plugin.info,
            plugin.allowed_models().unwrap_or_default(),
            &self.registry,
        ));
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
    /// Where its outputs go in the store and the models they depend on, from its declarations.
    placement: Arc<outputs::Placement>,
    /// Its exports, once the call at load has type-checked them; `None` before.
    exports: Option<Exports>,
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
    /// those its declared vectors come from, each by its identity (`name@revision`) when it is
    /// loaded, so that a new revision behind the same name makes the outputs stale; sorted.
    pub fn output_models(&self) -> Vec<String> {
        self.placement.models.clone()
    }

    /// The store's name for the vectors of its declared output `output` of `kind`
    /// ([`tessera_indexes::vector_name`]: modality and model identity); `None` when it declares
    /// no such output or its model is not loaded.
    pub fn store_name(&self, output: &str, kind: VectorKind) -> Option<String> {
        self.placement.store_name(output, kind)
    }

    /// The contract line the plugin is linked against.
    pub fn contract(&self) -> Contract {
        self.pre.contract()
    }
}
