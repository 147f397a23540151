//! `tessera sid`: train the semantic-ID codebook over the stored titles, report its quality, look
//! titles up by ID or prefix; and `tessera bench sid`.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use tessera_indexes::EntityStore;
use tessera_indexes::sid::synthetic::Clustered;
use tessera_indexes::sid::{Assigner, Codebook, SemanticId, SidConfig, SidInput, stats};
use tessera_indexes::sid_store::{apply, read_training, train};

/// The codebook of a data directory. New titles get IDs from it at ingest.
pub fn codebook_path(data: &Path) -> PathBuf {
    data.join("semantic-ids.sid")
}

/// The data directory's codebook, if `tessera sid train` made one.
pub fn current_codebook(data: &Path) -> anyhow::Result<Option<Arc<Codebook>>> {
    let path = codebook_path(data);
    if !path.exists() {
        return Ok(None);
    }
    let codebook = Codebook::load(&path).with_context(|| {
        format!(
            "semantic IDs are on for {} but the codebook cannot be used; run `tessera sid train` to make a new one",
            data.display()
        )
    })?;
    Ok(Some(Arc::new(codebook)))
}

#[derive(Debug, clap::Subcommand)]
pub enum SidCommand {
    /// Train a codebook (residual k-means) on the stored titles' vectors and give every stored
    /// title its semantic ID. Later ingests give new titles IDs from it without retraining.
    Train(TrainArgs),
    /// Quality of the codebook over the stored titles: per-level utilisation and perplexity,
    /// collisions, reconstruction error, prefix-neighbour recall.
    Stats {
        /// Data directory.
        #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
        data: PathBuf,
        #[command(flatten)]
        store: super::store_cmd::StoreArg,
        /// Titles sampled for the prefix-neighbour recall.
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Titles whose semantic ID is ID or starts with it (e.g. `12-200`).
    Lookup {
        /// A full ID or a prefix: codes joined by '-'.
        id: SemanticId,
        /// Data directory.
        #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
        data: PathBuf,
        #[command(flatten)]
        store: super::store_cmd::StoreArg,
        /// Most titles printed.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Data directory.
    #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
    data: PathBuf,
    #[command(flatten)]
    store: super::store_cmd::StoreArg,
    /// The named vector to encode (its name, or a modality such as `text` when the store
    /// holds one vector of it); default: the store's only dense vector.
    #[arg(long)]
    vector: Option<String>,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Train from scratch instead of warm-starting from the current codebook (IDs move more).
    #[arg(long)]
    fresh: bool,
}

/// Codebook shape and training flags, shared by `sid train` and `bench sid`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShapeArgs {
    /// Levels before disambiguation.
    #[arg(long, default_value_t = 3)]
    levels: usize,
    /// Codes per level.
    #[arg(long, default_value_t = 256)]
    codes: usize,
    /// Lloyd iterations per level at most.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Seed of the k-means++ sampling.
    #[arg(long, default_value_t = SidConfig::default().seed)]
    seed: u64,
}

impl ShapeArgs {
    pub fn config(&self) -> SidConfig {
        SidConfig {
            levels: self.levels,
            codes: self.codes,
            iterations: self.iterations,
            seed: self.seed,
        }
    }
}

pub fn run(command: SidCommand) -> anyhow::Result<ExitCode> {
    match command {
        SidCommand::Train(args) => train_command(args),
        SidCommand::Stats {
            data,
            store,
            queries,
            json,
        } => stats_command(&data, &store, queries, json),
        SidCommand::Lookup {
            id,
            data,
            store,
            limit,
        } => {
            let store = store.open_existing(&data)?;
            let current = current_codebook(&data)?;
            let found = store.lookup_semantic_id(&id.0, limit)?;
            if found.is_empty() {
                println!("no title has a semantic ID starting with {id}");
                return Ok(ExitCode::from(1));
            }
            for (title, sid) in found {
                let stale = match &current {
                    Some(c) if c.id() != sid.codebook => {
                        format!("  (stale: from codebook {})", sid.codebook)
                    }
                    _ => String::new(),
                };
                println!("{:<16} {title}{stale}", sid.id.to_string());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn source_vector(
    store: &dyn EntityStore,
    wanted: Option<String>,
) -> anyhow::Result<(String, usize)> {
    let vectors = &store.schema().vectors;
    let dense: Vec<&String> = vectors
        .iter()
        .filter(|(_, s)| s.kind == tessera_indexes::VectorKind::Dense)
        .map(|(n, _)| n)
        .collect();
    let name = match (wanted, dense.as_slice()) {
        (Some(name), _) => store
            .schema()
            .named(&name)
            .map_err(|e| anyhow::anyhow!("--vector {e}"))?
            .unwrap_or(name),
        (None, [only]) => (*only).clone(),
        (None, _) => bail!(
            "the store holds {} dense vectors ({}); choose one with --vector",
            dense.len(),
            vectors.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    let Some(spec) = vectors.get(&name) else {
        bail!(
            "the store has no vector {name:?} (it has: {})",
            vectors.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    if spec.kind != tessera_indexes::VectorKind::Dense {
        bail!("{name:?} is a multivector; semantic IDs encode one dense vector per title");
    }
    Ok((name, spec.dim))
}

fn train_command(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let store = args.store.open_existing(&args.data)?;
    let (vector, dim) = source_vector(&*store, args.vector)?;
    let config = args.shape.config();
    let warm = if args.fresh {
        None
    } else {
        current_codebook(&args.data)?
    };
    if let Some(w) = &warm
        && (w.header().source != vector || w.dim() != dim)
    {
        println!(
            "the current codebook {} encodes {:?}; training {vector:?} from scratch",
            w.id(),
            w.header().source
        );
    }
    let started = Instant::now();
    let training = read_training(&*store, &vector)?;
    println!(
        "read {} titles with vector {vector:?} ({} without it) in {:.1?}",
        training.ids.len(),
        training.without_vector,
        started.elapsed()
    );
    let started = Instant::now();
    let trained = train(&training, dim, config, &vector, warm.as_deref())
        .context("training the semantic-ID codebook")?;
    let header = trained.codebook.header();
    println!(
        "trained codebook {} ({} levels × {} codes{}) in {:.1?}; Lloyd iterations per level {:?}, dead codes re-seeded {:?}",
        header.id,
        header.levels,
        header.codes,
        header
            .parent
            .as_ref()
            .map(|p| format!(", warm-started from {p}"))
            .unwrap_or_default(),
        started.elapsed(),
        trained.report.iterations,
        trained.report.reseeded
    );
    // The codebook goes first: if writing the IDs is interrupted, the titles still holding IDs of
    // the previous codebook are recognisably stale, and a rerun finishes the job.
    let path = codebook_path(&args.data);
    trained.codebook.save(&path)?;
    let written = apply(&*store, &trained.codebook, &trained.ids)?;
    println!(
        "semantic IDs: {} titles, {} changed, {written} rewritten; codebook at {}",
        trained.ids.len(),
        trained.changed,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn stats_command(
    data: &Path,
    store: &super::store_cmd::StoreArg,
    queries: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Some(codebook) = current_codebook(data)? else {
        bail!(
            "{} has no semantic-ID codebook yet; run `tessera sid train`",
            data.display()
        );
    };
    let store = store.open_existing(data)?;
    let training = read_training(&*store, &codebook.header().source)?;
    let encoded = codebook.encode(&training.rows)?;
    let figures = stats(&codebook, &training.rows, &encoded, queries)?;
    let current: Vec<&SemanticId> = training
        .previous
        .iter()
        .flatten()
        .filter(|s| s.codebook == codebook.id())
        .map(|s| &s.id)
        .collect();
    let stale = training.ids.len() - current.len();
    let held: std::collections::HashSet<&&SemanticId> = current.iter().collect();
    let duplicates = current.len() - held.len();
    if json {
        let mut value = serde_json::to_value(&figures)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("titles_without_current_id".into(), stale.into());
            map.insert("duplicate_ids".into(), duplicates.into());
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "codebook {} over {} titles (vector {:?})",
        figures.codebook,
        figures.titles,
        codebook.header().source
    );
    println!("level  used/codes  utilisation  perplexity  reconstruction MSE");
    for (i, l) in figures.levels.iter().enumerate() {
        println!(
            "{i:>5}  {:>4}/{:<5}  {:>10.1}%  {:>10.1}  {:>18.4}",
            l.used,
            codebook.codes(),
            l.utilisation * 100.0,
            l.perplexity,
            l.reconstruction_mse
        );
    }
    println!(
        "collision rate before disambiguation {:.2}% (largest group {}); prefix-neighbour recall@10 {:.3} over {} queries",
        figures.collision_rate * 100.0,
        figures.largest_collision_group,
        figures.prefix_recall_at_10,
        figures.recall_queries
    );
    println!("titles without an ID from this codebook: {stale}; duplicate IDs: {duplicates}");
    Ok(ExitCode::SUCCESS)
}

/// `tessera bench sid`: training time, assignment throughput and quality on synthetic
/// catalogue-like vectors.
pub fn bench(titles: usize, dim: usize, config: SidConfig) -> anyhow::Result<ExitCode> {
    let shape = Clustered {
        dim,
        ..Clustered::default()
    };
    let rows = shape.generate(titles, 42);
    let started = Instant::now();
    let (codebook, report) = Codebook::train(&rows, dim, config, "bench", None)?;
    let train_s = started.elapsed().as_secs_f64();
    println!(
        "train: {titles} × {dim}-d, {} levels × {} codes (+1 disambiguation level): {train_s:.1} s; iterations {:?}",
        config.levels, config.codes, report.iterations
    );
    let codebook = Arc::new(codebook);
    let ids: Vec<String> = (0..titles).map(|i| format!("t{i}")).collect();
    let inputs: Vec<SidInput> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| SidInput {
            id,
            vector: &rows[i * dim..(i + 1) * dim],
            previous: None,
        })
        .collect();
    let started = Instant::now();
    let assigned = Assigner::new(codebook.clone()).assign(&inputs)?;
    let assign_s = started.elapsed().as_secs_f64();
    println!(
        "assign (encode + resolve collisions), batch of {titles}: {assign_s:.2} s = {:.0} titles/s",
        titles as f64 / assign_s
    );
    let one = titles.min(2000);
    let mut assigner = Assigner::new(codebook.clone());
    let started = Instant::now();
    for input in &inputs[..one] {
        assigner.assign(std::slice::from_ref(input))?;
    }
    let single_s = started.elapsed().as_secs_f64();
    println!(
        "assign one title at a time (as ingest does), {one} titles: {:.0} titles/s",
        one as f64 / single_s
    );
    let unique: std::collections::HashSet<&SemanticId> = assigned.iter().collect();
    let encoded = codebook.encode(&rows)?;
    let figures = stats(&codebook, &rows, &encoded, 1000)?;
    println!(
        "quality: utilisation {:?}, perplexity {:?}, reconstruction MSE {:?}, collision rate {:.3}% (largest group {}), prefix recall@10 {:.3}, unique IDs {}/{titles}",
        figures
            .levels
            .iter()
            .map(|l| format!("{:.1}%", l.utilisation * 100.0))
            .collect::<Vec<_>>(),
        figures
            .levels
            .iter()
            .map(|l| format!("{:.0}", l.perplexity))
            .collect::<Vec<_>>(),
        figures
            .levels
            .iter()
            .map(|l| format!("{:.3}", l.reconstruction_mse))
            .collect::<Vec<_>>(),
        figures.collision_rate * 100.0,
        figures.largest_collision_group,
        figures.prefix_recall_at_10,
        unique.len()
    );
    Ok(ExitCode::SUCCESS)
}
