//! Entities to qdrant points and back. One place knows the payload layout.

use crate::{Change, Entity, HitVector, IndexError, Neighbor, Output, StoredSid, Tag, TagOverride};
use qdrant_edge::{
    Payload, PointId, PointStructPersisted, Record, ScoredPoint, VectorInternal, VectorPersisted,
    VectorStructInternal, VectorStructPersisted,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Namespace of Tessera's point ids (UUID v5 of the title id within it).
const POINT_NAMESPACE: Uuid = Uuid::from_u128(0x7e55_e7a0_5eed_4b1d_9a3c_0d5e_11ab_2026);

/// Payload key holding every prefix of a title's semantic ID as a keyword (`"12"`, `"12-200"`,
/// …, the full ID): one indexed match answers a lookup by full ID or by any prefix.
pub(crate) const SID_PREFIXES: &str = "sid_prefixes";
/// Payload path of the plugin names that wrote a title.
pub(crate) const OUTPUT_PLUGINS: &str = "outputs[].plugin";
/// Payload path of [`Output::key`]s: plugin, version and models.
pub(crate) const OUTPUT_KEYS: &str = "outputs[].key";
/// Payload path of the runs that wrote a title.
pub(crate) const OUTPUT_RUNS: &str = "outputs[].run";

pub(crate) fn sid_prefixes(codes: &[u16]) -> Vec<String> {
    (1..=codes.len())
        .map(|n| crate::sid::SemanticId(codes[..n].to_vec()).to_string())
        .collect()
}

/// The point id of a title: deterministic, so writing a title again replaces it.
pub fn point_id(title_id: &str) -> PointId {
    PointId::Uuid(Uuid::new_v5(&POINT_NAMESPACE, title_id.as_bytes()))
}

/// Payload path of a title's latest change number (see `change.rs`).
pub(crate) const CHANGE_SEQ: &str = "change.seq";

/// A title as a point; `change` is recorded with it for the change feed.
pub(crate) fn entity_to_point(entity: &Entity, change: &Change) -> PointStructPersisted {
    let vectors: HashMap<String, VectorPersisted> = entity
        .vectors
        .iter()
        .map(|(name, v)| (name.clone(), VectorPersisted::Dense(v.clone())))
        .chain(
            entity
                .multivectors
                .iter()
                .map(|(name, m)| (name.clone(), VectorPersisted::MultiDense(m.clone()))),
        )
        .collect();
    let payload = json!({
        "tessera_id": entity.id,
        "name": entity.name,
        "year": entity.year,
        "language": entity.language,
        "metadata": entity.metadata,
        "tags": entity.tags,
        "input": entity.input,
        "overrides": entity.overrides,
        "outputs": entity.outputs.iter().map(|o| json!({
            "plugin": o.plugin,
            "version": o.version,
            "models": o.models,
            "run": o.run,
            "key": o.key(),
        })).collect::<Vec<_>>(),
    });
    let mut payload = payload;
    if let Value::Object(map) = &mut payload {
        map.insert(
            "change".into(),
            json!({ "seq": change.seq, "run": change.run, "what": change.what }),
        );
    }
    if let (Some(sid), Value::Object(map)) = (&entity.semantic_id, &mut payload) {
        map.insert(
            "sid".into(),
            json!({ "codebook": sid.codebook, "codes": sid.id.0 }),
        );
        map.insert(SID_PREFIXES.into(), json!(sid_prefixes(&sid.id.0)));
    }
    let map = match payload {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    PointStructPersisted {
        id: point_id(&entity.id),
        vector: VectorStructPersisted::Named(vectors),
        payload: Some(Payload(map)),
    }
}

pub(crate) fn record_to_entity(record: Record) -> Result<Entity, IndexError> {
    let point = format!("{:?}", record.id);
    let corrupt = |reason: String| IndexError::Corrupt {
        entity: point.clone(),
        reason,
    };
    // Fields are moved out of the payload, not cloned: this runs for every title every read.
    let mut payload = record
        .payload
        .ok_or_else(|| corrupt("no payload".into()))?
        .0;
    let mut take = |key: &str| match payload.remove(key) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    };
    let id = match take("tessera_id") {
        Some(Value::String(id)) => id,
        _ => return Err(corrupt("payload lacks tessera_id".into())),
    };
    let metadata: BTreeMap<String, String> = take("metadata")
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let tags: Vec<Tag> = match take("tags") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v).map_err(|e| corrupt(format!("tags: {e}")))?,
    };
    let outputs: Vec<Output> = match take("outputs") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v).map_err(|e| corrupt(format!("outputs: {e}")))?,
    };
    let semantic_id = match take("sid") {
        None => None,
        Some(v) => {
            #[derive(serde::Deserialize)]
            struct Raw {
                codebook: String,
                codes: Vec<u16>,
            }
            let raw: Raw = serde_json::from_value(v).map_err(|e| corrupt(format!("sid: {e}")))?;
            Some(StoredSid {
                codebook: raw.codebook,
                id: crate::sid::SemanticId(raw.codes),
            })
        }
    };
    let name = match take("name") {
        Some(Value::String(name)) => name,
        _ => String::new(),
    };
    let year = take("year")
        .and_then(|y| y.as_u64())
        .and_then(|y| u16::try_from(y).ok());
    let input = match take("input") {
        Some(Value::String(input)) => Some(input),
        _ => None,
    };
    let overrides: Vec<TagOverride> = match take("overrides") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v).map_err(|e| corrupt(format!("overrides: {e}")))?,
    };
    let language = match take("language") {
        Some(Value::String(language)) => language,
        _ => String::new(),
    };
    let mut vectors = BTreeMap::new();
    let mut multivectors = BTreeMap::new();
    match record.vector {
        Some(VectorStructInternal::Named(named)) => {
            for (name, vector) in named {
                match vector {
                    VectorInternal::Dense(v) => {
                        vectors.insert(name, v);
                    }
                    VectorInternal::MultiDense(m) => {
                        multivectors.insert(name, m.into_multi_vectors());
                    }
                    VectorInternal::Sparse(_) => {
                        return Err(corrupt(format!("vector {name:?} is sparse")));
                    }
                }
            }
        }
        None => {}
        Some(_) => return Err(corrupt("vectors are not named".into())),
    }
    Ok(Entity {
        id,
        name,
        year,
        language,
        metadata,
        vectors,
        multivectors,
        tags,
        semantic_id,
        outputs,
        input,
        overrides,
    })
}

/// The change recorded with a stored point; `None` for points written before changes were
/// recorded.
pub(crate) fn record_to_change(record: &Record) -> Result<Option<Change>, IndexError> {
    let Some(payload) = &record.payload else {
        return Ok(None);
    };
    let id = payload
        .0
        .get("tessera_id")
        .and_then(Value::as_str)
        .ok_or_else(|| IndexError::Corrupt {
            entity: format!("{:?}", record.id),
            reason: "payload lacks tessera_id".into(),
        })?;
    let Some(change) = payload.0.get("change") else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Raw {
        seq: u64,
        run: Option<String>,
        what: Vec<String>,
    }
    let raw: Raw = serde_json::from_value(change.clone()).map_err(|e| IndexError::Corrupt {
        entity: id.to_string(),
        reason: format!("change: {e}"),
    })?;
    Ok(Some(Change {
        seq: raw.seq,
        id: id.to_string(),
        run: raw.run,
        what: raw.what,
    }))
}

/// A search hit: the title id from the payload and, when read, the searched vector.
pub(crate) fn scored_to_neighbor(point: ScoredPoint) -> Result<Neighbor, IndexError> {
    let corrupt = |reason: &str| IndexError::Corrupt {
        entity: format!("{:?}", point.id),
        reason: reason.into(),
    };
    let id = point
        .payload
        .as_ref()
        .and_then(|p| p.0.get("tessera_id"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| corrupt("payload lacks tessera_id"))?;
    let vector = match &point.vector {
        None => None,
        Some(VectorStructInternal::Named(named)) => match named.values().next() {
            None => None,
            Some(VectorInternal::Dense(v)) => Some(HitVector::Dense(v.clone())),
            Some(VectorInternal::MultiDense(m)) => {
                Some(HitVector::Multi(m.clone().into_multi_vectors()))
            }
            Some(VectorInternal::Sparse(_)) => return Err(corrupt("vector is sparse")),
        },
        Some(_) => return Err(corrupt("vectors are not named")),
    };
    Ok(Neighbor {
        id,
        score: point.score,
        vector,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_deterministic_and_distinct() {
        assert_eq!(point_id("tt-1"), point_id("tt-1"));
        assert_ne!(point_id("tt-1"), point_id("tt-2"));
    }

    #[test]
    fn every_prefix_of_a_semantic_id_is_a_keyword() {
        assert_eq!(sid_prefixes(&[12, 200, 7]), ["12", "12-200", "12-200-7"]);
    }
}
