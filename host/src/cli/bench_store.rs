//! `tessera bench store`: a store's write rate, batch reads and kNN latency, before and after
//! optimisation (segment merge + HNSW): the embedded store, or a Qdrant server collection.

use super::bench::percentile;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_indexes::sid::synthetic::Clustered;
use tessera_indexes::{Entity, EntityStore, Schema, ServerStore, StoreLocation, Tag, VectorSpec};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct StoreBench {
    /// Titles written.
    pub titles: usize,
    /// Vector dimension.
    pub dim: usize,
    /// Titles per upsert call.
    pub batch: usize,
    /// Timed reads and searches of each kind.
    pub queries: usize,
    /// A server collection to measure instead of a temporary embedded store.
    pub store: Option<String>,
}

/// The id of bench title `i`.
pub(super) fn title_id(i: usize) -> String {
    format!("title-{i:07}")
}

fn entity(i: usize, vector: Vec<f32>) -> Entity {
    Entity {
        id: title_id(i),
        name: format!("Title {i}"),
        year: Some(1950 + (i % 75) as u16),
        language: ["en", "fr", "de", "ja"][i % 4].into(),
        metadata: BTreeMap::from([("kind".to_string(), "film".to_string())]),
        vectors: BTreeMap::from([("text".to_string(), vector)]),
        tags: vec![Tag {
            name: "genre".into(),
            value: Some(["crime", "comedy", "drama"][i % 3].into()),
            confidence: 0.8,
            plugin: "bench".into(),
            plugin_version: "1.0.0".into(),
            span: None,
            evidence: None,
            run: Some("bench".into()),
            models: Vec::new(),
        }],
        ..Default::default()
    }
}

pub(super) fn latencies(mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "p50 {:.2} ms, p99 {:.2} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3
    )
}

/// `count` picks drawn uniformly from `0..n`, independently for every `salt` (SplitMix64 of the
/// salt and the position), and the same on every run so that runs are comparable.
pub(super) fn picks(n: usize, count: usize, salt: usize) -> Vec<usize> {
    let seed = splitmix64(salt as u64);
    (0..count as u64)
        .map(|j| (splitmix64(seed.wrapping_add(j)) % n as u64) as usize)
        .collect()
}

/// SplitMix64's output function: a well-mixed 64-bit value from any input.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bench store's schema: one dense vector `text` of `dim` dimensions.
pub(super) fn schema(dim: usize) -> Schema {
    Schema::new([("text".to_string(), VectorSpec::dense(dim, "bench"))])
}

/// Fills `store` (new, made with [`schema`]) with `titles` synthetic titles (clustered `dim`-d
/// vectors, a genre tag), written `batch` per upsert, with the write rate printed; returns the
/// vectors, row-major.
pub(super) fn build(
    store: &dyn EntityStore,
    titles: usize,
    dim: usize,
    batch: usize,
) -> anyhow::Result<Vec<f32>> {
    let held = store.count()?;
    anyhow::ensure!(
        held == 0,
        "the bench needs a new store; {} already holds {held} titles",
        store.location()
    );
    let rows = Clustered {
        dim,
        ..Clustered::default()
    }
    .generate(titles, 7);
    let started = Instant::now();
    for start in (0..titles).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(titles);
        let entities: Vec<Entity> = (start..end)
            .map(|i| entity(i, rows[i * dim..(i + 1) * dim].to_vec()))
            .collect();
        store.upsert(&entities)?;
    }
    let upsert = started.elapsed();
    let started = Instant::now();
    store.flush()?;
    let flush = started.elapsed();
    println!(
        "upsert: {titles} titles × {dim}-d in batches of {batch}: {:.2} s = {:.0} titles/s (flush {:.2} s)",
        upsert.as_secs_f64(),
        titles as f64 / upsert.as_secs_f64(),
        flush.as_secs_f64()
    );
    Ok(rows)
}

pub fn run(settings: StoreBench) -> anyhow::Result<ExitCode> {
    let StoreBench {
        titles,
        dim,
        batch,
        queries,
        store,
    } = settings;
    anyhow::ensure!(
        titles > 0 && dim > 0 && queries > 0,
        "--titles, --dim and --queries must be at least 1"
    );
    let dir = tempfile::tempdir()?;
    let location = match &store {
        Some(spec) => super::store_cmd::parse(spec)?,
        None => StoreLocation::Edge(dir.path().join("store")),
    };
    match &location {
        StoreLocation::Server(config) => {
            let server = Arc::new(ServerStore::open(config.clone(), schema(dim))?);
            // Only a collection this run made is the bench's to delete.
            anyhow::ensure!(
                server.created(),
                "{location} exists; the bench writes and then deletes its own collection: name a new one"
            );
            let result = measure_store(server.clone(), titles, dim, batch, queries);
            server.destroy()?;
            result
        }
        StoreLocation::Edge(_) => {
            measure_store(location.open(schema(dim))?, titles, dim, batch, queries)
        }
    }
}

fn measure_store(
    store: Arc<dyn EntityStore>,
    titles: usize,
    dim: usize,
    batch: usize,
    queries: usize,
) -> anyhow::Result<ExitCode> {
    let rows = build(&*store, titles, dim, batch)?;
    println!("store: {}", store.location());

    let measure = |label: &str, store: &dyn EntityStore| -> anyhow::Result<()> {
        let mut gets = Vec::with_capacity(queries);
        for q in 0..queries {
            let ids: Vec<String> = picks(titles, 100, q).into_iter().map(title_id).collect();
            let started = Instant::now();
            let found = store.get(&ids)?;
            gets.push(started.elapsed());
            anyhow::ensure!(
                found.iter().all(Option::is_some),
                "a stored title went missing"
            );
        }
        let mut searches = Vec::with_capacity(queries);
        for (q, i) in picks(titles, queries, 1).into_iter().enumerate() {
            let query = &rows[i * dim..(i + 1) * dim];
            let started = Instant::now();
            let hits = store.nearest("text", query, 10, None)?;
            searches.push(started.elapsed());
            anyhow::ensure!(!hits.is_empty(), "search {q} found nothing");
        }
        println!("{label}: get 100 ids: {}", latencies(gets));
        println!("{label}: nearest 10: {}", latencies(searches));
        Ok(())
    };
    measure("before optimise", &*store)?;
    let started = Instant::now();
    store.optimize()?;
    println!(
        "optimise (merge + HNSW; on a server: waiting for its optimiser): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The optimised segment's files are new: the first reads fault their pages in. The second
    // round is the store as a server that has been up a while serves it.
    measure("after optimise, first reads", &*store)?;
    measure("after optimise, warm", &*store)?;
    Ok(ExitCode::SUCCESS)
}
