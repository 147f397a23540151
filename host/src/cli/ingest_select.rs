//! Which titles an ingest run takes: the whole catalog, the titles not stored yet, or those
//! whose inputs, plugins or models changed (`--only-missing`, `--only-changed`,
//! `--only-stale`), and a worker's share of them (`--shard I/N`).

use super::ingest::Setup;
use std::collections::HashSet;
use tessera::catalog::Title;
use tessera_indexes::Output;

/// The titles of `titles` that are not stored or that some plugin of this run would change.
fn needing(setup: &Setup, titles: &[Title]) -> anyhow::Result<Vec<Title>> {
    let mut redo: HashSet<String> = HashSet::new();
    for plugin in setup.pipeline.plugins().iter() {
        let current = Output {
            plugin: plugin.info().name.clone(),
            version: plugin.info().version.clone(),
            models: plugin.output_models(),
            run: setup.pipeline.run().to_string(),
        };
        let needing = setup.store.needing(&current)?;
        redo.extend(needing.missing);
        redo.extend(needing.stale);
    }
    let mut out = Vec::new();
    for chunk in titles.chunks(1024) {
        let ids: Vec<String> = chunk.iter().map(|t| t.id.clone()).collect();
        let stored = setup.store.get(&ids)?;
        out.extend(
            chunk
                .iter()
                .zip(stored)
                .filter(|(t, s)| s.is_none() || redo.contains(&t.id))
                .map(|(t, _)| t.clone()),
        );
    }
    Ok(out)
}

/// Which titles of the catalog a run processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// New titles, titles whose inputs changed, and titles with out-of-date outputs.
    Changed,
    /// Every title.
    All,
    /// Titles not stored.
    Missing,
    /// Titles not stored or with out-of-date outputs.
    Stale,
}

/// The titles `selection` picks, and how many it leaves out as unchanged.
pub fn select(
    setup: &Setup,
    titles: Vec<Title>,
    selection: Selection,
) -> anyhow::Result<(Vec<Title>, usize)> {
    let total = titles.len();
    let picked = match selection {
        Selection::All => titles,
        Selection::Stale => needing(setup, &titles)?,
        Selection::Missing | Selection::Changed => {
            let stale: HashSet<String> = if selection == Selection::Changed {
                needing(setup, &titles)?.into_iter().map(|t| t.id).collect()
            } else {
                HashSet::new()
            };
            let mut picked = Vec::new();
            for chunk in titles.chunks(1024) {
                let ids: Vec<String> = chunk.iter().map(|t| t.id.clone()).collect();
                let stored = setup.store.get(&ids)?;
                for (title, stored) in chunk.iter().zip(stored) {
                    let redo = match (&stored, selection) {
                        (None, _) => true,
                        (Some(_), Selection::Missing) => false,
                        (Some(entity), _) => {
                            stale.contains(&title.id)
                                || entity.input.as_deref()
                                    != Some(setup.pipeline.input_fingerprint(title).as_str())
                        }
                    };
                    if redo {
                        picked.push(title.clone());
                    }
                }
            }
            picked
        }
    };
    let skipped = total - picked.len();
    Ok((picked, skipped))
}

/// A worker's share of a catalog: titles whose id hashes to `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub(super) index: u64,
    pub(super) count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: give I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard owns `id`. FNV-1a over the id's bytes: stable across machines,
    /// versions and catalog order, so every worker computes the same split.
    pub fn owns(&self, id: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_ids_without_overlap_or_gaps() {
        let shards: Vec<Shard> = (0..4)
            .map(|i| format!("{i}/4").parse())
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        assert_eq!(shards.len(), 4);
        let mut sizes = [0usize; 4];
        for n in 0..10_000 {
            let id = format!("tt-{n:05}");
            let owners: Vec<usize> = (0..4).filter(|&s| shards[s].owns(&id)).collect();
            assert_eq!(owners.len(), 1, "{id} has owners {owners:?}");
            sizes[owners[0]] += 1;
        }
        // Roughly even.
        assert!(
            sizes.iter().all(|&s| (2_200..2_800).contains(&s)),
            "{sizes:?}"
        );
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
