//! Entities to qdrant points and back. One place knows the payload layout.

use crate::{
    AssetDigest, Change, Entity, HitVector, IndexError, Neighbor, Output, StoredSid, Tag,
    TagOverride,
};
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

/// The point UUID of a title: deterministic, so writing a title again replaces it, and the
/// same in every backend, so a migrated store keeps its point ids.
pub(crate) fn point_uuid(title_id: &str) -> Uuid {
    Uuid::new_v5(&POINT_NAMESPACE, title_id.as_bytes())
}

/// The qdrant-edge point id of a title.
pub fn point_id(title_id: &str) -> PointId {
    PointId::Uuid(point_uuid(title_id))
}

/// Characters Qdrant refuses in vector names (they become directory names on disk), and `%`,
/// the escape.
const ENGINE_UNSAFE: [char; 12] = [
    '<', '>', ':', '"', '/', '\\', '|', '?', '*', '\0', '\u{1F}', '%',
];

/// A vector's name as the engine stores it: Tessera names such as `text/minilm-l6@rev` keep
/// their `/` for people and the API, and are percent-escaped for the engine (`text%2Fminilm…`).
/// Names without these characters are unchanged, so stores written before escaping stay
/// readable when their names had none (plugin output names such as `synopsis`); an embedded
/// store made earlier with such a character in a vector name would need migrating.
pub(crate) fn engine_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if ENGINE_UNSAFE.contains(&c) {
            out.push_str(&format!("%{:02X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The Tessera name of an engine's vector name (the inverse of [`engine_name`]).
pub(crate) fn tessera_name(engine: &str) -> String {
    let mut out = String::with_capacity(engine.len());
    let mut rest = engine;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 3)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            // Not an escape this crate wrote: keep it as it is.
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Payload path of a title's latest change number (see `change.rs`).
pub(crate) const CHANGE_SEQ: &str = "change.seq";

/// Payload fields with an index, the same in every backend: semantic-ID prefixes, tag names and
/// plugin outputs (which plugin, version and run wrote a title) are what lookups and filters
/// select on; the change feed reads in change order (a range index on the change number);
/// search filters narrow by year and language.
pub(crate) const INDEXED: [(&str, Index); 8] = [
    (SID_PREFIXES, Index::Keyword),
    ("tags[].name", Index::Keyword),
    (OUTPUT_PLUGINS, Index::Keyword),
    (OUTPUT_KEYS, Index::Keyword),
    (OUTPUT_RUNS, Index::Keyword),
    ("language", Index::KeywordWithoutLinks),
    (CHANGE_SEQ, Index::Range { lookup: false }),
    ("year", Index::Range { lookup: true }),
];

/// How a payload field is indexed. The change number, year and language get no extra HNSW
/// links: qdrant builds a sub-graph per large value block of an indexed field, which for these
/// more than doubled optimisation time and slowed unfiltered kNN (BENCHMARKS.md), while year and
/// language filters keep a large share of titles, where plain filtered HNSW search does well.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Index {
    Keyword,
    KeywordWithoutLinks,
    /// An integer range index, with exact-match lookups when `lookup`.
    Range {
        lookup: bool,
    },
}

/// A title's payload: everything but its vectors, with `change` recorded for the change feed
/// when given (a checksum leaves it out: change numbers belong to one store).
pub(crate) fn entity_payload(entity: &Entity, change: Option<&Change>) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("tessera_id".into(), json!(entity.id));
    map.insert("name".into(), json!(entity.name));
    map.insert("year".into(), json!(entity.year));
    map.insert("language".into(), json!(entity.language));
    map.insert("metadata".into(), json!(entity.metadata));
    map.insert("tags".into(), json!(entity.tags));
    map.insert("input".into(), json!(entity.input));
    if !entity.assets.is_empty() {
        map.insert("assets".into(), json!(entity.assets));
    }
    map.insert("overrides".into(), json!(entity.overrides));
    map.insert(
        "outputs".into(),
        Value::Array(
            entity
                .outputs
                .iter()
                .map(|o| {
                    json!({
                        "plugin": o.plugin,
                        "version": o.version,
                        "models": o.models,
                        "run": o.run,
                        "key": o.key(),
                    })
                })
                .collect(),
        ),
    );
    if let Some(change) = change {
        map.insert(
            "change".into(),
            json!({
                "seq": change.seq,
                "run": change.run,
                "what": change.what,
                "at": change.at,
                "created": change.created,
            }),
        );
    }
    if let Some(sid) = &entity.semantic_id {
        map.insert(
            "sid".into(),
            json!({ "codebook": sid.codebook, "codes": sid.id.0 }),
        );
        map.insert(SID_PREFIXES.into(), json!(sid_prefixes(&sid.id.0)));
    }
    map
}

/// A title as a qdrant-edge point; `change` is recorded with it for the change feed.
pub(crate) fn entity_to_point(entity: &Entity, change: &Change) -> PointStructPersisted {
    let vectors: HashMap<String, VectorPersisted> = entity
        .vectors
        .iter()
        .map(|(name, v)| (engine_name(name), VectorPersisted::Dense(v.clone())))
        .chain(
            entity
                .multivectors
                .iter()
                .map(|(name, m)| (engine_name(name), VectorPersisted::MultiDense(m.clone()))),
        )
        .collect();
    PointStructPersisted {
        id: point_id(&entity.id),
        vector: VectorStructPersisted::Named(vectors),
        payload: Some(Payload(entity_payload(entity, Some(change)))),
    }
}

/// The entities `found` (by id) in the order of `ids`, `None` where one is missing. Each entity
/// moves out at its id's last occurrence (cloned only for repeated ids): a title's vectors are
/// most of a read's bytes.
pub(crate) fn in_order(ids: &[String], mut found: HashMap<String, Entity>) -> Vec<Option<Entity>> {
    let mut left: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        *left.entry(id.as_str()).or_default() += 1;
    }
    ids.iter()
        .map(|id| match left.get_mut(id.as_str()) {
            Some(n) if *n > 1 => {
                *n -= 1;
                found.get(id).cloned()
            }
            _ => found.remove(id),
        })
        .collect()
}

/// A qdrant-edge record as an entity.
pub(crate) fn record_to_entity(record: Record) -> Result<Entity, IndexError> {
    let id = record.id;
    let point = PointLabel(&id);
    let corrupt = |reason: String| IndexError::Corrupt {
        entity: point.to_string(),
        reason,
    };
    let payload = record
        .payload
        .ok_or_else(|| corrupt("no payload".into()))?
        .0;
    let mut vectors = BTreeMap::new();
    let mut multivectors = BTreeMap::new();
    match record.vector {
        Some(VectorStructInternal::Named(named)) => {
            for (name, vector) in named {
                match vector {
                    VectorInternal::Dense(v) => {
                        vectors.insert(tessera_name(&name), v);
                    }
                    VectorInternal::MultiDense(m) => {
                        multivectors.insert(tessera_name(&name), m.into_multi_vectors());
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
    entity_from_parts(&point, payload, vectors, multivectors)
}

/// A qdrant-edge point id as errors name it. Formatted only when an error is made: a read of
/// 100 titles would otherwise format 100 ids that nothing shows.
struct PointLabel<'a>(&'a PointId);

impl std::fmt::Display for PointLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// An entity from a stored point's payload and vectors, in any backend; `point` names the
/// point in errors.
pub(crate) fn entity_from_parts(
    point: &dyn std::fmt::Display,
    mut payload: Map<String, Value>,
    vectors: BTreeMap<String, Vec<f32>>,
    multivectors: BTreeMap<String, Vec<Vec<f32>>>,
) -> Result<Entity, IndexError> {
    let corrupt = |reason: String| IndexError::Corrupt {
        entity: point.to_string(),
        reason,
    };
    // Fields are moved out of the payload, not cloned: this runs for every title every read.
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
    // The title's times live in its latest change (what a write that changes nothing leaves).
    let times = |change: &Value, key: &str| change.get(key).and_then(Value::as_u64);
    let change = take("change");
    let (created_at, updated_at) = change
        .as_ref()
        .map_or((None, None), |c| (times(c, "created"), times(c, "at")));
    let assets: Vec<AssetDigest> = match take("assets") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v).map_err(|e| corrupt(format!("assets: {e}")))?,
    };
    let overrides: Vec<TagOverride> = match take("overrides") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v).map_err(|e| corrupt(format!("overrides: {e}")))?,
    };
    let language = match take("language") {
        Some(Value::String(language)) => language,
        _ => String::new(),
    };
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
        assets,
        created_at,
        updated_at,
        overrides,
    })
}

/// The change recorded with a stored qdrant-edge point; `None` for points written before changes
/// were recorded.
pub(crate) fn record_to_change(record: &Record) -> Result<Option<Change>, IndexError> {
    match &record.payload {
        None => Ok(None),
        Some(payload) => change_from_payload(&format!("{:?}", record.id), &payload.0),
    }
}

/// The change recorded in a point's payload, in any backend; `None` for points written before
/// changes were recorded.
pub(crate) fn change_from_payload(
    point: &str,
    payload: &Map<String, Value>,
) -> Result<Option<Change>, IndexError> {
    let id = payload
        .get("tessera_id")
        .and_then(Value::as_str)
        .ok_or_else(|| IndexError::Corrupt {
            entity: point.to_string(),
            reason: "payload lacks tessera_id".into(),
        })?;
    let Some(change) = payload.get("change") else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Raw {
        seq: u64,
        run: Option<String>,
        what: Vec<String>,
        #[serde(default)]
        at: Option<u64>,
        #[serde(default)]
        created: Option<u64>,
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
        at: raw.at,
        created: raw.created,
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
    fn vector_names_reach_the_engine_escaped_and_come_back_whole() {
        for name in [
            "synopsis",
            "text/minilm-l6@2a1b",
            "a%2Fb",
            "odd:<>|?*\"\\",
            "100%",
            "%zz",
        ] {
            let engine = engine_name(name);
            assert!(
                !engine.contains(['<', '>', ':', '"', '/', '\\', '|', '?', '*']),
                "{engine}"
            );
            assert_eq!(tessera_name(&engine), name);
        }
        assert_eq!(engine_name("synopsis"), "synopsis");
        assert_eq!(engine_name("text/m@1"), "text%2Fm@1");
    }

    #[test]
    fn every_prefix_of_a_semantic_id_is_a_keyword() {
        assert_eq!(sid_prefixes(&[12, 200, 7]), ["12", "12-200", "12-200-7"]);
    }
}
