//! Where commands find the store (`--store`), and `tessera store`: what a store holds, and
//! copying one between backends (`migrate`).

use anyhow::{Context, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use tessera_indexes::{EntityStore, StoreLocation, migrate};

/// The `--store` flag every command that reads or writes the store takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArg {
    /// Where the store is: a directory (embedded), or a collection on a Qdrant server or
    /// cluster, `http://HOST:6334[/COLLECTION][?shards=N&replication=N&write_consistency=N]`
    /// (its API key from QDRANT_API_KEY). Default: DATA/store.
    #[arg(long = "store", env = "TESSERA_STORE")]
    pub store: Option<String>,
}

/// Reads a location, taking a server's API key from `QDRANT_API_KEY`.
pub(super) fn parse(spec: &str) -> anyhow::Result<StoreLocation> {
    let mut location = StoreLocation::parse(spec)?;
    if let StoreLocation::Server(config) = &mut location {
        config.api_key = std::env::var("QDRANT_API_KEY")
            .ok()
            .filter(|k| !k.is_empty());
    }
    Ok(location)
}

impl StoreArg {
    /// The store's location: `--store`, else DATA/store.
    pub fn location(&self, data: &Path) -> anyhow::Result<StoreLocation> {
        match &self.store {
            Some(spec) => parse(spec),
            None => Ok(StoreLocation::Edge(data.join("store"))),
        }
    }

    /// Opens the existing store.
    pub fn open_existing(&self, data: &Path) -> anyhow::Result<Arc<dyn EntityStore>> {
        let location = self.location(data)?;
        location
            .open_existing()
            .with_context(|| format!("opening the store at {location}"))
    }
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// What a store holds: where it is, its vectors, titles and last change.
    Info {
        /// Data directory (the default store is DATA/store).
        #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
        data: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Copy every title of one store into another — embedded to a Qdrant server, back, or
    /// between two of either — then verify the copy by counts, per-title content digests and
    /// vector values. Running it again (with --into-non-empty) after an interruption resumes:
    /// copied titles are rewritten unchanged.
    Migrate {
        /// The store to copy: a directory or a server URL (see --store).
        #[arg(long)]
        from: String,
        /// The store to copy into, created with the source's schema if it does not exist.
        #[arg(long)]
        to: String,
        /// Titles per read and write.
        #[arg(long, default_value_t = 256)]
        page: usize,
        /// Copy into a destination that already holds titles: resuming an interrupted copy (the
        /// verification then needs the destination to hold exactly the source's titles).
        #[arg(long)]
        into_non_empty: bool,
    },
}

pub fn run(command: StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::Info { data, store } => info(&store.open_existing(&data)?),
        StoreCommand::Migrate {
            from,
            to,
            page,
            into_non_empty,
        } => migrate_command(&from, &to, page, into_non_empty),
    }
}

fn info(store: &Arc<dyn EntityStore>) -> anyhow::Result<ExitCode> {
    println!("store: {}", store.location());
    println!("titles: {}", store.count()?);
    for (name, spec) in &store.schema().vectors {
        println!(
            "vector {name}: {:?}, {} dimensions, model {}",
            spec.kind, spec.dim, spec.model
        );
    }
    println!("last change: {}", store.last_change()?);
    Ok(ExitCode::SUCCESS)
}

fn migrate_command(
    from: &str,
    to: &str,
    page: usize,
    into_non_empty: bool,
) -> anyhow::Result<ExitCode> {
    if page == 0 {
        bail!("--page must be at least 1");
    }
    let (from_location, to_location) = (parse(from)?, parse(to)?);
    if from_location.to_string() == to_location.to_string() {
        bail!("--from and --to name the same store ({from_location})");
    }
    let source = from_location
        .open_existing()
        .with_context(|| format!("opening the source {from_location}"))?;
    let target = to_location
        .open(source.schema().clone())
        .with_context(|| format!("opening the destination {to_location}"))?;
    let held = target.count()?;
    if held > 0 && !into_non_empty {
        bail!(
            "the destination {to_location} already holds {held} titles; pass --into-non-empty to resume an interrupted copy"
        );
    }
    let total = source.count()?;
    let bar = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} titles {per_sec} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let copied = migrate::copy(&*source, &*target, page, |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    let copy_secs = started.elapsed().as_secs_f64();
    println!(
        "copied {} titles from {from_location} to {to_location} in {copy_secs:.1} s ({:.0} titles/s)",
        copied.titles,
        copied.titles as f64 / copy_secs.max(1e-9)
    );
    let verified = migrate::verify(&*source, &*target, page)
        .with_context(|| format!("verifying {to_location} against {from_location}"))?;
    println!(
        "verified: {} titles in each, every title's content equal (checksum sha256:{}), largest vector difference {:.1e}",
        verified.titles, verified.checksum, verified.max_vector_diff
    );
    Ok(ExitCode::SUCCESS)
}
