//! Semantic IDs against a store: train a codebook over the stored vectors and give every stored
//! title its ID ([`train`], [`apply`]), and give titles their IDs as they are ingested
//! ([`IngestIds`]) without retraining.

use crate::sid::{Assigner, Codebook, SemanticId, SidConfig, SidInput, TrainReport, encode_title};
use crate::{Entity, EntityStore, IndexError, StoredSid};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Titles read or written per store call.
const PAGE: usize = 512;
/// The most titles one set of level codes can hold (the disambiguation code is a u16).
const GROUP_LIMIT: usize = 1 << 16;

/// Vectors read from the store for training.
#[derive(Debug, Default)]
pub struct Training {
    /// Title ids, in scan order.
    pub ids: Vec<String>,
    /// Their vectors, row-major.
    pub rows: Vec<f32>,
    /// Their current semantic IDs (possibly from another codebook).
    pub previous: Vec<Option<StoredSid>>,
    /// Stored titles without the vector, or with a zero one (not part of training, given no ID).
    pub without_vector: usize,
}

/// Reads every stored title's `vector`, with its current ID.
pub fn read_training(store: &dyn EntityStore, vector: &str) -> Result<Training, IndexError> {
    let spec = store.schema().vectors.get(vector);
    if let Some(spec) = spec
        && spec.kind != crate::VectorKind::Dense
    {
        return Err(IndexError::Kind {
            entity: "(semantic IDs)".into(),
            vector: vector.into(),
            expected: spec.kind,
        });
    }
    let Some(spec) = spec else {
        return Err(IndexError::UnknownVector {
            entity: "(semantic IDs)".into(),
            vector: vector.into(),
            known: store
                .schema()
                .vectors
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let mut out = Training::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan(cursor.as_deref(), PAGE, true)?;
        for entity in page.entities {
            match entity.vectors.get(vector) {
                Some(v) if v.len() == spec.dim && v.iter().any(|x| *x != 0.0) => {
                    out.rows.extend_from_slice(v);
                    out.previous.push(entity.semantic_id);
                    out.ids.push(entity.id);
                }
                _ => out.without_vector += 1,
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(out)
}

/// A trained codebook and the IDs it gives the stored titles.
#[derive(Debug)]
pub struct Trained {
    /// The codebook.
    pub codebook: Arc<Codebook>,
    /// Training figures.
    pub report: TrainReport,
    /// Each trained title's new ID.
    pub ids: HashMap<String, SemanticId>,
    /// Titles whose ID differs from the one they held (or that had none).
    pub changed: usize,
}

/// Trains a codebook on `training` and assigns every title its ID, keeping a title's previous
/// ID where the new codebook puts it in the same place. `warm` seeds training with the current
/// codebook (same shape), which keeps most IDs.
pub fn train(
    training: &Training,
    dim: usize,
    config: SidConfig,
    source: &str,
    warm: Option<&Codebook>,
) -> Result<Trained, IndexError> {
    let (codebook, report) = Codebook::train(&training.rows, dim, config, source, warm)?;
    let codebook = Arc::new(codebook);
    let inputs: Vec<SidInput> = training
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| SidInput {
            id,
            vector: &training.rows[i * dim..(i + 1) * dim],
            previous: training.previous[i].as_ref().map(|s| &s.id),
        })
        .collect();
    let assigned = Assigner::new(codebook.clone()).assign(&inputs)?;
    let changed = assigned
        .iter()
        .zip(&training.previous)
        .filter(|(new, old)| old.as_ref().map(|s| &s.id) != Some(*new))
        .count();
    let ids = training.ids.iter().cloned().zip(assigned).collect();
    Ok(Trained {
        codebook,
        report,
        ids,
        changed,
    })
}

/// Writes the IDs into the store, scanning it page by page and rewriting each page's changed
/// titles in one upsert. A title is one point written whole, so a reader sees its old ID or its
/// new one, never a mix. Titles not in `ids` lose a stale ID
/// (one from another codebook). Returns how many titles were written.
pub fn apply(
    store: &dyn EntityStore,
    codebook: &Codebook,
    ids: &HashMap<String, SemanticId>,
) -> Result<usize, IndexError> {
    let mut written = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan(cursor.as_deref(), PAGE, true)?;
        let mut batch: Vec<Entity> = Vec::with_capacity(page.entities.len());
        for mut entity in page.entities {
            let new = ids.get(&entity.id).map(|id| StoredSid {
                codebook: codebook.id().to_string(),
                id: id.clone(),
            });
            if new != entity.semantic_id {
                entity.semantic_id = new;
                batch.push(entity);
            }
        }
        if !batch.is_empty() {
            store.upsert(&batch)?;
        }
        written += batch.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    store.flush()?;
    Ok(written)
}

/// A random wait of up to 2^round × 2 ms (at most about 0.5 s), different for each title and
/// call.
fn move_delay(title: &str, round: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(title.as_bytes());
    hasher.write_u32(round);
    let span_us = 2_000u64 << round.min(8);
    std::time::Duration::from_micros(hasher.finish() % span_us)
}

/// Gives ingested titles their semantic IDs from a fixed codebook (cold start: no retraining).
/// Shared by the ingest workers; an ID is unique against the stored titles and against the
/// other titles of the run.
#[derive(Debug)]
pub struct IngestIds {
    assigner: Mutex<Assigner>,
    codebook: Arc<Codebook>,
}

impl IngestIds {
    /// IDs from `codebook`, for the vector it was trained on.
    pub fn new(codebook: Arc<Codebook>) -> Self {
        IngestIds {
            assigner: Mutex::new(Assigner::new(codebook.clone())),
            codebook,
        }
    }

    /// The codebook.
    pub fn codebook(&self) -> &Arc<Codebook> {
        &self.codebook
    }

    /// The ID for `entity` (about to be written to `store`); `None` when it has no vector of the
    /// codebook's source. `stored` is the ID the store holds for the title now, if any: the
    /// caller has read the stored title anyway, so it is passed rather than read again.
    pub fn assign(
        &self,
        store: &dyn EntityStore,
        entity: &Entity,
        stored: Option<&StoredSid>,
    ) -> Result<Option<StoredSid>, IndexError> {
        let source = &self.codebook.header().source;
        let Some(vector) = entity.vectors.get(source) else {
            return Ok(None);
        };
        let levels = self.codebook.levels();
        // Encoding is the expensive part: outside the lock, so workers encode in parallel.
        let encoded = encode_title(&self.codebook, &entity.id, vector)?;
        let previous = stored
            .filter(|s| s.codebook == self.codebook.id())
            .map(|s| s.id.clone());
        let mut assigner = self.assigner.lock().unwrap_or_else(|p| p.into_inner());
        // Both the cell the title encodes to and the one it held (the stability slack may keep
        // it there) must know their stored IDs before resolving.
        let mut groups = vec![encoded.codes[..levels].to_vec()];
        if let Some(prev) = &previous
            && prev.0.len() == levels + 1
        {
            groups.push(prev.0[..levels].to_vec());
        }
        for group in groups {
            if assigner.is_loaded(&group) {
                continue;
            }
            for (title, stored) in store.lookup_semantic_id(&group, GROUP_LIMIT)? {
                if stored.codebook == self.codebook.id() {
                    assigner.reserve(&title, &stored.id);
                }
            }
            assigner.mark_loaded(&group);
        }
        let input = SidInput {
            id: &entity.id,
            vector,
            previous: previous.as_ref(),
        };
        let id = assigner
            .resolve(&[input], std::slice::from_ref(&encoded))?
            .pop()
            .ok_or_else(|| IndexError::Training(format!("title {}: no ID assigned", entity.id)))?;
        Ok(Some(StoredSid {
            codebook: self.codebook.id().to_string(),
            id,
        }))
    }

    /// Checks, after `entity` was written with the ID [`IngestIds::assign`] gave it, that no
    /// other title holds that ID: another process writing the same store (ingest workers on
    /// several machines) may have given the same ID to another title at the same moment. A
    /// writer that finds its title's ID held by another title moves its title: this returns a
    /// new ID, chosen against everything the store holds in that group now, to write (and
    /// confirm) again. (Letting one of the two keep it by a rule would fail when the keeper's
    /// writer saw the conflict and the other's had already confirmed; when both writers see it,
    /// both move, which costs a write and keeps every ID unique.) `None`: the ID stands.
    ///
    /// `round` counts this title's moves so far. Writers that collide tend to collide again
    /// (near-identical titles rank the free codes alike), so a mover first waits a random
    /// while, growing with `round`, and then reads the group: movers spread out in time and
    /// each sees the others' new IDs.
    pub fn confirm(
        &self,
        store: &dyn EntityStore,
        entity: &Entity,
        round: u32,
    ) -> Result<Option<StoredSid>, IndexError> {
        let Some(sid) = entity
            .semantic_id
            .as_ref()
            .filter(|s| s.codebook == self.codebook.id())
        else {
            return Ok(None);
        };
        let others: Vec<(String, StoredSid)> = store
            .lookup_semantic_id(&sid.id.0, GROUP_LIMIT)?
            .into_iter()
            .filter(|(title, held)| title != &entity.id && held == sid)
            .collect();
        let Some((holder, _)) = others.first() else {
            return Ok(None);
        };
        std::thread::sleep(move_delay(&entity.id, round));
        let levels = self.codebook.levels();
        {
            let mut assigner = self.assigner.lock().unwrap_or_else(|p| p.into_inner());
            assigner.abandon(&entity.id);
            // What the group holds now, the contested ID's holder included.
            if sid.id.0.len() > levels {
                for (title, held) in store.lookup_semantic_id(&sid.id.0[..levels], GROUP_LIMIT)? {
                    if held.codebook == self.codebook.id() && title != entity.id {
                        assigner.reserve(&title, &held.id);
                    }
                }
            }
        }
        tracing::debug!(title = %entity.id, id = %sid.id, %holder, "semantic ID taken by another writer; choosing another");
        self.assign(store, entity, None)
    }

    /// Takes back the ID [`IngestIds::assign`] gave `entity` when writing it failed: the store
    /// still holds its old ID (if any), which stays reserved.
    pub fn abandon(&self, store: &dyn EntityStore, title: &str) -> Result<(), IndexError> {
        let stored = store
            .get(&[title.to_string()])?
            .pop()
            .flatten()
            .and_then(|e| e.semantic_id)
            .filter(|s| s.codebook == self.codebook.id());
        let mut assigner = self.assigner.lock().unwrap_or_else(|p| p.into_inner());
        assigner.abandon(title);
        if let Some(stored) = stored {
            assigner.reserve(title, &stored.id);
        }
        Ok(())
    }
}
