//! `tessera bench`: figures for BENCHMARKS.md. Run on a release build; nothing here is asserted.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::runtime::{PluginHost, SandboxLimits};
use tessera_models::batching::BatchConfig;
use tessera_models::tiny::{TinyBertSpec, write_tiny_bert};
use tessera_models::{
    BatchedText, DeviceChoice, Registry, SentenceEncoder, TextEmbedder, select_device,
};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Fresh instance + one trivial call (`describe`) of the built-in plugin, repeated.
    PluginCall {
        /// Calls to time.
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
        /// Time this component (`.wasm`) instead of the built-in synopsis-embedder: what one
        /// call of your own plugin costs before it does any work.
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Then calls per second with this many calls in flight on the plugin runtime (one
        /// thread per core, as `tessera ingest` runs them); 0 skips it.
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        in_flight: Vec<usize>,
        /// Seconds per throughput measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Sentences per second of a text model at several batch sizes.
    Embed {
        /// Model directory; omitted: a generated tiny model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Batch sizes.
        #[arg(long, value_delimiter = ',', default_value = "1,32")]
        batch: Vec<usize>,
        /// Sentences per batch size.
        #[arg(long, default_value_t = 256)]
        sentences: usize,
        /// Embed these texts (one per line) instead of the built-in sentences.
        #[arg(long)]
        texts: Option<PathBuf>,
        /// Where the model runs.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Also measure this many threads each embedding one sentence per call, directly and
        /// through the batching scheduler (as concurrent plugin calls do). 0 skips it.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Audio-seconds per second of Whisper encoders (tiny, and published shapes with random
    /// weights), split into decode+resample, log-mel and encoder time, with peak RSS.
    Audio {
        /// Shapes: tiny, whisper-tiny, whisper-base, whisper-small.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "tiny,whisper-tiny,whisper-base"
        )]
        shapes: Vec<String>,
        /// Length of the generated 44.1 kHz stereo clip.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Where the model runs.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Also measure this many callers at once, each decoding its own clips and submitting
        /// their windows to the batching scheduler (as concurrent plugin calls do). 0 skips it.
        #[arg(long, default_value_t = 0)]
        concurrency: usize,
    },
    /// Images per second of CLIP vision encoders (tiny, and published shapes with random
    /// weights), split into decode, preprocess and encoder time, with peak RSS.
    Image {
        /// Shapes: tiny, clip-vit-base-patch32, clip-vit-large-patch14.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "tiny,clip-vit-base-patch32"
        )]
        shapes: Vec<String>,
        /// Images to embed.
        #[arg(long, default_value_t = 64)]
        images: usize,
        /// Images per forward pass.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Where the model runs.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Also measure this many callers at once, each decoding and preprocessing its own
        /// images and submitting them to the batching scheduler (as concurrent plugin calls do).
        /// 0 skips it.
        #[arg(long, default_value_t = 0)]
        concurrency: usize,
    },
    /// The store: upsert rate, get-by-id of 100 titles and kNN latency, before and after
    /// optimisation; the embedded store in a temporary directory, or a new collection on a
    /// Qdrant server (`--store URL`, deleted afterwards).
    Store {
        /// Titles written.
        #[arg(long, default_value_t = 100_000)]
        titles: usize,
        /// Vector dimension.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Titles per upsert call.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Timed reads and searches of each kind.
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// A Qdrant server collection to measure instead of the embedded store,
        /// `http://HOST:6334/COLLECTION`; it must not exist yet.
        #[arg(long)]
        store: Option<String>,
    },
    /// The gRPC API under load: GetEntities throughput and latency at several concurrent
    /// streams (and the same reads in-process, for the overhead ratio), then Search latency.
    Grpc {
        /// Titles in the store.
        #[arg(long, default_value_t = 100_000)]
        titles: usize,
        /// Vector dimension.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Ids per GetEntities call.
        #[arg(long, default_value_t = 100)]
        ids: usize,
        /// Concurrent client streams, one measurement per count.
        #[arg(long, value_delimiter = ',', default_value = "16,64")]
        streams: Vec<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Optimise the store (segment merge + HNSW) before measuring.
        #[arg(long)]
        optimize: bool,
        /// Ask for vectors as packed little-endian float32 bytes (`packed_vectors`) instead
        /// of repeated floats.
        #[arg(long)]
        packed: bool,
        /// Store reads the server runs at once (`serve --store-readers`); 0: the store's choice
        /// (one per core for the embedded store).
        #[arg(long, default_value_t = 0)]
        store_readers: usize,
        /// The server's entity cache in MiB (`serve --entity-cache-mb`); 0: none, every title
        /// read from the store.
        #[arg(long, default_value_t = tessera::grpc::DEFAULT_ENTITY_CACHE_MB)]
        entity_cache_mb: usize,
    },
    /// Semantic IDs on synthetic clustered vectors: codebook training time, assignment
    /// titles/s (batch and one at a time), quality figures.
    Sid {
        /// Titles.
        #[arg(long, default_value_t = 100_000)]
        titles: usize,
        /// Vector dimension.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        #[command(flatten)]
        shape: super::sid::ShapeArgs,
    },
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::PluginCall {
            iterations,
            plugin,
            in_flight,
            seconds,
        } => plugin_call(iterations, plugin, &in_flight, seconds),
        BenchCommand::Embed {
            model,
            batch,
            sentences,
            texts,
            device,
            concurrency,
        } => embed(model, &batch, sentences, texts, device, concurrency),
        BenchCommand::Audio {
            shapes,
            seconds,
            device,
            concurrency,
        } => super::bench_media::audio(&shapes, seconds, device, concurrency),
        BenchCommand::Image {
            shapes,
            images,
            batch,
            device,
            concurrency,
        } => super::bench_media::image(&shapes, images, batch, device, concurrency),
        BenchCommand::Store {
            titles,
            dim,
            batch,
            queries,
            store,
        } => super::bench_store::run(super::bench_store::StoreBench {
            titles,
            dim,
            batch,
            queries,
            store,
        }),
        BenchCommand::Grpc {
            titles,
            dim,
            ids,
            streams,
            seconds,
            optimize,
            packed,
            store_readers,
            entity_cache_mb,
        } => super::bench_grpc::run(super::bench_grpc::GrpcBench {
            titles,
            dim,
            ids,
            streams,
            seconds,
            optimize,
            packed,
            store_readers,
            entity_cache_mb,
        }),
        BenchCommand::Sid { titles, dim, shape } => super::sid::bench(titles, dim, shape.config()),
    }
}

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn plugin_call(
    iterations: usize,
    file: Option<PathBuf>,
    in_flight: &[usize],
    seconds: f64,
) -> anyhow::Result<ExitCode> {
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("--seconds must be a positive number of seconds, not {seconds}");
    }
    let (name, bytes): (String, std::borrow::Cow<'static, [u8]>) = match &file {
        Some(path) => (
            path.display().to_string(),
            std::fs::read(path)
                .with_context(|| format!("reading plugin {}", path.display()))?
                .into(),
        ),
        None => {
            if let Some(error) = tessera_plugin_artifacts::BUILD_ERROR {
                bail!("the built-in plugins were not built:\n{error}");
            }
            (
                "synopsis-embedder".to_string(),
                tessera_plugin_artifacts::SYNOPSIS_EMBEDDER_WASM.into(),
            )
        }
    };
    let host = Arc::new(PluginHost::new(
        Arc::new(Registry::default()),
        SandboxLimits::default(),
    )?);
    let start = Instant::now();
    let plugin = host.load(&name, &bytes)?;
    println!(
        "compile + link + first describe: {:.1} ms ({} allocator)",
        start.elapsed().as_secs_f64() * 1e3,
        if host.pooled() {
            "pooling"
        } else {
            "on-demand"
        }
    );
    // The on-disk compile cache: the first host compiles and stores, the second loads native
    // code (what every `tessera ingest` after the first one does).
    let cache = std::env::temp_dir().join(format!("tessera-bench-cache-{}", std::process::id()));
    for round in ["compile and store in the cache", "load from the cache"] {
        let cached = Arc::new(
            PluginHost::new(Arc::new(Registry::default()), SandboxLimits::default())?
                .with_compile_cache(cache.clone()),
        );
        let start = Instant::now();
        cached.load(&name, &bytes)?;
        println!(
            "{round} + link + first describe: {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
    let report = |how: &str, mut times: Vec<Duration>| {
        times.sort();
        let mean = times.iter().sum::<Duration>() / iterations.max(1) as u32;
        println!(
            "plugin call (new store + instantiate + describe), {how}, {iterations} calls: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
            mean.as_secs_f64() * 1e6,
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6
        );
    };
    // Awaited one after another inside one future (as each of ingest's title tasks awaits its
    // plugins), driven by the plugin runtime.
    let awaited = tessera::runtime::block_on(async {
        for _ in 0..iterations.min(100) {
            plugin.describe_fresh_async().await?;
        }
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            plugin.describe_fresh_async().await?;
            times.push(t.elapsed());
        }
        Ok(times)
    })?;
    report("awaited", awaited);
    // From a plain thread that waits for each call (`plugin test`, the tests).
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        plugin.describe_fresh()?;
        times.push(t.elapsed());
    }
    report("waited for from a thread", times);
    for &tasks in in_flight.iter().filter(|&&n| n > 0) {
        let (calls, took) =
            plugin_call_throughput(&plugin, tasks, Duration::from_secs_f64(seconds))?;
        let per_second = calls as f64 / took.as_secs_f64();
        println!(
            "plugin calls with {tasks} in flight on {} runtime threads: {per_second:.0} calls/s ({:.1} µs of wall time each)",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            1e6 / per_second.max(f64::MIN_POSITIVE)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Fresh instance + `describe` calls completed by `tasks` tasks that each call in a loop on the
/// plugin runtime for `time` (throughput with calls in flight side by side, as an ingest has
/// them), and how long they took, the last calls included.
fn plugin_call_throughput(
    plugin: &tessera::runtime::Plugin,
    tasks: usize,
    time: Duration,
) -> anyhow::Result<(u64, Duration)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let handle = tessera::runtime::handle()?;
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + time;
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (plugin, done) = (plugin.clone(), done.clone());
            handle.spawn(async move {
                while Instant::now() < until {
                    plugin.describe_fresh_async().await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, tessera::runtime::PluginError>(())
            })
        })
        .collect();
    handle.block_on(async {
        for worker in workers {
            worker.await.context("a benchmark task panicked")??;
        }
        anyhow::Ok(())
    })?;
    Ok((done.load(Ordering::Relaxed), start.elapsed()))
}

fn embed(
    model: Option<PathBuf>,
    batches: &[usize],
    sentences: usize,
    texts_file: Option<PathBuf>,
    device: DeviceChoice,
    concurrency: usize,
) -> anyhow::Result<ExitCode> {
    let tiny = tempfile_dir()?;
    let dir = match model {
        Some(dir) => dir,
        None => {
            write_tiny_bert(&tiny, &TinyBertSpec::default())?;
            tiny.clone()
        }
    };
    let device = select_device(device)?;
    let encoder = SentenceEncoder::load(&dir, "bench", &device)
        .with_context(|| format!("loading {}", dir.display()))?;
    // ~16-token sentences, varied so that batches need padding, like real synopses' sentences.
    let base = [
        "A retired detective returns to her hometown to solve one last case.",
        "Astronauts stranded on Mars must grow food to survive until rescue arrives.",
        "Two rival chefs fall in love during a summer cooking contest in Lyon.",
        "A haunted lighthouse keeper records the storms that bring the dead ashore.",
    ];
    let texts: Vec<String> = match texts_file {
        Some(path) => std::fs::read_to_string(&path)
            .with_context(|| format!("reading --texts {}", path.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        None => (0..sentences)
            .map(|i| format!("{} ({i})", base[i % base.len()]))
            .collect(),
    };
    if texts.is_empty() {
        bail!("no texts to embed");
    }
    let sentences = texts.len();
    println!(
        "model {} (dim {}), {sentences} sentences per batch size",
        dir.display(),
        encoder.dimension()
    );
    for &batch in batches {
        if batch == 0 {
            bail!("batch size 0");
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        encoder.embed(&refs[..batch.min(refs.len())])?; // warm-up
        let start = Instant::now();
        for chunk in refs.chunks(batch) {
            encoder.embed(chunk)?;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "batch {batch:>3}: {:.1} sentences/s",
            sentences as f64 / secs
        );
    }
    if concurrency > 0 {
        let encoder: Arc<dyn TextEmbedder> = Arc::new(encoder);
        let batched: Arc<dyn TextEmbedder> =
            Arc::new(BatchedText::start(encoder.clone(), BatchConfig::default())?);
        for (label, model) in [("direct", encoder), ("batched", batched)] {
            let rate = one_per_call(&model, &texts, concurrency)?;
            println!("{concurrency} threads, 1 sentence per call, {label}: {rate:.1} sentences/s");
        }
    }
    let _ = std::fs::remove_dir_all(&tiny);
    Ok(ExitCode::SUCCESS)
}

/// Sentences per second when `threads` threads each embed their share one sentence at a time.
fn one_per_call(
    model: &Arc<dyn TextEmbedder>,
    texts: &[String],
    threads: usize,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let per_thread = texts.len().div_ceil(threads);
    let handles: Vec<_> = texts
        .chunks(per_thread)
        .map(|chunk| {
            let (model, chunk) = (model.clone(), chunk.to_vec());
            std::thread::spawn(move || chunk.iter().try_for_each(|t| model.embed(&[t]).map(|_| ())))
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))??;
    }
    Ok(texts.len() as f64 / start.elapsed().as_secs_f64())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tessera-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
