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
