//! The sandbox: a hostile plugin loops, allocates, recurses, panics and reaches for files, the
//! environment and the network. Each call must end with its own clear error within its deadline,
//! and the host must keep serving other plugins afterwards.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::catalog::Title;
use tessera::runtime::{Plugin, PluginError, PluginHost, PluginSettings, SandboxLimits};
use tessera_models::{Device, Registry, SentenceEncoder, TextEmbedder};

const DEADLINE: Duration = Duration::from_millis(500);
const MEMORY: usize = 64 << 20;

struct Fixture {
    _dir: tempfile::TempDir,
    host: Arc<PluginHost>,
    probe: Plugin,
    embedder: Plugin,
}

fn fixture() -> Fixture {
    fixture_with(true)
}

/// `pooling`: the pooling allocator (the default) or on-demand allocation.
fn fixture_with(pooling: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let model = common::tiny_model(dir.path());
    let encoder =
        SentenceEncoder::load(&model, "tiny", &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    let mut registry = Registry::default();
    registry.insert_text("text", Arc::new(encoder) as Arc<dyn TextEmbedder>);
    let limits = SandboxLimits {
        deadline: DEADLINE,
        memory: MEMORY,
        pooling,
        ..SandboxLimits::default()
    };
    let host =
        Arc::new(PluginHost::new(Arc::new(registry), limits).unwrap_or_else(|e| panic!("{e}")));
    let load = |name: &str| {
        let bytes = tessera_plugin_artifacts::component(name).unwrap_or_else(|e| panic!("{e}"));
        host.load(name, &bytes).unwrap_or_else(|e| panic!("{e}"))
    };
    Fixture {
        probe: load("sandbox-probe"),
        embedder: load("synopsis-embedder"),
        host,
        _dir: dir,
    }
}

fn title(probe: &str, target: &str) -> Title {
    Title {
        id: format!("probe-{probe}"),
        name: "Probe".into(),
        synopsis: "The detective returns to the town where she grew up, and the case begins again."
            .into(),
        year: Some(2020),
        language: "en".into(),
        metadata: BTreeMap::from([
            ("probe".to_string(), probe.to_string()),
            ("target".to_string(), target.to_string()),
        ]),
        assets: vec![],
    }
}

/// Runs one probe, checks the host still serves both plugins, and returns the probe's error.
fn run_probe(f: &Fixture, probe: &str, target: &str) -> PluginError {
    let start = Instant::now();
    let result = f.probe.analyze(&title(probe, target));
    let elapsed = start.elapsed();
    // Generous bound: the point is that the call ends, not how fast (timing is in BENCHMARKS.md).
    assert!(elapsed < DEADLINE * 10, "{probe}: took {elapsed:?}");
    let error = match result {
        Ok(analysis) => panic!("{probe}: expected an error, got {analysis:?}"),
        Err(e) => e,
    };
    let after = f
        .embedder
        .analyze(&title("ok", ""))
        .unwrap_or_else(|e| panic!("after {probe}, synopsis-embedder failed: {e}"));
    assert_eq!(after.embeddings.len(), 1, "after {probe}");
    let ok = f
        .probe
        .analyze(&title("ok", ""))
        .unwrap_or_else(|e| panic!("after {probe}, a well-behaved probe call failed: {e}"));
    assert_eq!(ok.tags[0].value.as_deref(), Some("ok"));
    error
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let f = fixture();
    let e = run_probe(&f, "loop", "");
    assert!(matches!(e, PluginError::Deadline { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "plugin sandbox-probe: analyze exceeded its 500ms deadline and was stopped"
    );
}

/// A text model that takes `delay` per batch (a slow or overloaded model), behind the batching
/// queue the host puts every model behind.
#[derive(Debug)]
struct SlowModel {
    delay: Duration,
    /// The largest batch it was given.
    largest: std::sync::atomic::AtomicUsize,
    /// The most threads the process had while a batch ran.
    peak_threads: std::sync::atomic::AtomicUsize,
}

/// Threads of this process now.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

impl TextEmbedder for SlowModel {
    fn name(&self) -> &str {
        "text"
    }
    fn dimension(&self) -> usize {
        4
    }
    fn max_batch(&self) -> usize {
        64
    }
    fn is_placeholder(&self) -> bool {
        true
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, tessera_models::ModelError> {
        self.largest
            .fetch_max(texts.len(), std::sync::atomic::Ordering::SeqCst);
        self.peak_threads
            .fetch_max(thread_count(), std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(self.delay);
        Ok(texts.iter().map(|_| vec![1.0, 0.0, 0.0, 0.0]).collect())
    }
}

fn slow_host(delay: Duration, deadline: Duration) -> (Arc<PluginHost>, Plugin, Arc<SlowModel>) {
    let model = Arc::new(SlowModel {
        delay,
        largest: Default::default(),
        peak_threads: Default::default(),
    });
    let batched = tessera_models::BatchedText::start(
        model.clone(),
        tessera_models::batching::BatchConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut registry = Registry::default();
    registry.insert_text("text", Arc::new(batched) as Arc<dyn TextEmbedder>);
    let limits = SandboxLimits {
        deadline,
        ..SandboxLimits::default()
    };
    let host =
        Arc::new(PluginHost::new(Arc::new(registry), limits).unwrap_or_else(|e| panic!("{e}")));
    let bytes =
        tessera_plugin_artifacts::component("synopsis-embedder").unwrap_or_else(|e| panic!("{e}"));
    let plugin = host
        .load("synopsis-embedder", &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    (host, plugin, model)
}

#[test]
fn a_plugin_waiting_on_a_model_is_stopped_at_its_deadline() {
    // The model takes 5 s; the deadline is 300 ms. The guest is not running (it waits in the
    // host for its batch), so epoch interruption cannot reach it: the call's timer does.
    let (_host, plugin, _) = slow_host(Duration::from_secs(5), Duration::from_millis(300));
    let started = Instant::now();
    let e = plugin
        .analyze(&title("ok", ""))
        .err()
        .unwrap_or_else(|| panic!("a 5 s model call fit a 300 ms deadline"));
    assert!(matches!(e, PluginError::Deadline { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped after {:?}",
        started.elapsed()
    );
}

#[test]
fn titles_waiting_on_models_hold_no_thread() {
    // 32 titles in flight, each waiting for a slow model, on a runtime of one thread per core
    // and a few writer threads: nearly all 32 requests queue while the first batch runs and go
    // together in the next, and the process does not grow a thread per waiting title (it did
    // before plugin calls were async: 32 titles in flight were 32 threads).
    let (host, plugin, model) = slow_host(Duration::from_millis(300), Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(
        tessera_indexes::EdgeStore::open(
            &dir.path().join("store"),
            tessera::pipeline::schema_for(std::slice::from_ref(&plugin), host.registry())
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let pipeline = tessera::pipeline::Pipeline::new(vec![plugin], store)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_workers(32);
    let titles: Vec<Title> = (0..32)
        .map(|i| Title {
            id: format!("t{i}"),
            ..title("ok", "")
        })
        .collect();
    // The plugin runtime's threads exist once per process: start them before counting.
    tessera::runtime::handle().unwrap_or_else(|e| panic!("{e}"));
    let before = thread_count();
    let report = pipeline
        .ingest(&titles, |_, _| {})
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.stored, 32, "{:?}", report.failures);
    let largest = model.largest.load(std::sync::atomic::Ordering::SeqCst);
    assert!(largest >= 8, "the largest batch held {largest} texts");
    let grew = model
        .peak_threads
        .load(std::sync::atomic::Ordering::SeqCst)
        .saturating_sub(before);
    println!("32 titles in flight: largest batch {largest}, {grew} more threads");
    // The pipeline's writer threads (twice the cores, at most one per title in flight) and a
    // little slack for tests running beside this one; a thread held per waiting title would add
    // 32 more.
    let writers = std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .min(32);
    assert!(
        grew < writers + 8,
        "the process grew {grew} threads for 32 titles in flight ({writers} writers)"
    );
}

#[test]
fn a_fuel_budget_stops_a_loop_whatever_the_deadline() {
    let f = fixture();
    // The same loop under a plugin-level fuel budget (as a manifest's `[limits] fuel` sets):
    // stopped for fuel, well before the deadline; a normal call fits easily in the budget.
    let bytes =
        tessera_plugin_artifacts::component("sandbox-probe").unwrap_or_else(|e| panic!("{e}"));
    let settings = PluginSettings {
        fuel: Some(200_000_000),
        deadline: Some(Duration::from_secs(60)),
        ..PluginSettings::default()
    };
    let probe = f
        .host
        .load_with("sandbox-probe", &bytes, settings)
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let e = probe
        .analyze(&title("loop", ""))
        .err()
        .unwrap_or_else(|| panic!("the loop finished"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            e,
            PluginError::Fuel {
                fuel: 200_000_000,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind(), "fuel");
    assert_eq!(
        e.to_string(),
        "plugin sandbox-probe: analyze used up its fuel (200000000 units) and was stopped"
    );
    let ok = probe
        .analyze(&title("ok", ""))
        .unwrap_or_else(|e| panic!("a well-behaved call failed: {e}"));
    assert_eq!(ok.tags[0].value.as_deref(), Some("ok"));
    // Fuel burned is counted per plugin.
    let stats = probe.stats();
    assert!(stats.fuel >= 200_000_000, "{stats}");
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let f = fixture();
    let e = run_probe(&f, "alloc", "");
    match &e {
        PluginError::MemoryLimit {
            requested, limit, ..
        } => assert!(*requested > *limit && *limit == MEMORY),
        other => panic!("expected MemoryLimit, got {other}"),
    }
    assert!(e.to_string().contains("the limit is 67108864 bytes"), "{e}");
}

#[test]
fn on_demand_allocation_enforces_the_same_limits() {
    let f = fixture_with(false);
    let e = run_probe(&f, "alloc", "");
    assert!(
        matches!(e, PluginError::MemoryLimit { limit, .. } if limit == MEMORY),
        "{e}"
    );
    let e = run_probe(&f, "loop", "");
    assert!(matches!(e, PluginError::Deadline { .. }), "{e}");
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let f = fixture();
    let e = run_probe(&f, "recurse", "");
    assert!(matches!(e, PluginError::StackOverflow { .. }), "{e}");
}

#[test]
fn a_wild_store_is_a_crash_not_a_stack_overflow() {
    // Kit-built guests run out of their own (linear-memory) stack as an out-of-bounds store
    // just below 4 GiB; one anywhere else is an ordinary crash.
    let f = fixture();
    let e = run_probe(&f, "out-of-bounds", "");
    assert!(
        matches!(&e, PluginError::Trap { trap, .. } if trap.contains("out of bounds")),
        "{e}"
    );
}

#[test]
fn output_over_the_caps_is_refused_as_invalid_output() {
    let f = fixture();
    let e = run_probe(&f, "flood", "");
    assert!(matches!(e, PluginError::InvalidOutput { .. }), "{e}");
    assert!(e.to_string().contains("10000 tags; at most 256"), "{e}");
}

#[test]
fn panic_is_a_trap_carrying_the_panic_message() {
    let f = fixture();
    let e = run_probe(&f, "panic", "");
    assert!(matches!(e, PluginError::Trap { .. }), "{e}");
    assert!(
        e.to_string().contains("sandbox-probe was asked to panic"),
        "{e}"
    );
}

#[test]
fn files_are_out_of_reach() {
    let f = fixture();
    let secret = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(secret.path(), "top secret").unwrap_or_else(|e| panic!("{e}"));
    let path = secret.path().display().to_string();
    let e = run_probe(&f, "open-file", &path);
    assert!(
        matches!(
            e,
            PluginError::Guest {
                kind: "internal",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("open {path}:")), "{e}");
    assert!(!e.to_string().contains("top secret"));
}

#[test]
fn environment_is_empty() {
    let f = fixture();
    // The host process has variables (PATH at least); the plugin must not see them.
    assert!(std::env::var("PATH").is_ok());
    let e = run_probe(&f, "read-env", "PATH");
    assert!(
        e.to_string()
            .contains("env PATH: environment variable not found"),
        "{e}"
    );
}

#[test]
fn network_is_closed() {
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let e = run_probe(&f, "open-socket", &addr);
    assert!(e.to_string().contains(&format!("connect {addr}:")), "{e}");
    match listener.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the plugin reached the listener: {other:?}"),
    }
}

#[test]
fn a_runaway_plugin_does_not_block_others() {
    let f = Arc::new(fixture());
    let runaway = {
        let f = f.clone();
        std::thread::spawn(move || f.probe.analyze(&title("loop", "")).err().map(|e| e.kind()))
    };
    // While the loop burns its deadline on another thread, this thread's calls complete.
    for _ in 0..3 {
        let analysis = f
            .embedder
            .analyze(&title("ok", ""))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(analysis.embeddings.len(), 1);
    }
    assert_eq!(runaway.join().ok().flatten(), Some("deadline"));
}

#[test]
fn corrupt_and_empty_components_are_refused_at_load() {
    let registry = Arc::new(Registry::default());
    let host = Arc::new(
        PluginHost::new(registry, SandboxLimits::default()).unwrap_or_else(|e| panic!("{e}")),
    );
    let empty = host
        .load("empty.wasm", b"")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        empty.contains("empty.wasm") && empty.contains("empty (0 bytes)"),
        "{empty}"
    );
    let garbage = host
        .load("garbage.wasm", b"\0asm garbage")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        garbage.starts_with("plugin garbage.wasm: cannot load component"),
        "{garbage}"
    );
}

// Every built plugin loads and describes itself.
macro_rules! describes_itself {
    ($name:ident) => {
        #[test]
        fn $name() {
            let f = fixture();
            let name = stringify!($name).replace('_', "-");
            let bytes =
                tessera_plugin_artifacts::component(&name).unwrap_or_else(|e| panic!("{e}"));
            let plugin = f.host.load(&name, &bytes).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(plugin.info().name, name);
            assert!(!plugin.info().version.is_empty());
        }
    };
}

mod every_plugin {
    use super::*;
    tessera_plugin_artifacts::foreach_plugin!(describes_itself);
}
