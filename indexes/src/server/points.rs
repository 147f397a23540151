//! Entities to Qdrant server points and back, and search filters in the server's types. The
//! payload layout is `convert.rs`'s, shared with the embedded backend, so a store migrated
//! between backends reads the same.

use crate::convert::{engine_name, entity_from_parts, entity_payload, point_uuid, tessera_name};
use crate::filter::Conditions;
use crate::{Change, Entity, HitVector, IndexError, Neighbor};
use qdrant_client::Payload;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::vector_output::Vector as OutVector;
use qdrant_client::qdrant::vectors_output::VectorsOptions;
use qdrant_client::qdrant::{
    Condition, Filter, PointId, PointStruct, Range, RetrievedPoint, ScoredPoint, Value, Vector,
    VectorsOutput,
};
use serde_json::Map;
use std::collections::{BTreeMap, HashMap};

/// The server point id of a title: the same UUID the embedded store uses.
pub(crate) fn point_id(title_id: &str) -> PointId {
    PointId::from(point_uuid(title_id).to_string())
}

/// A point id as the store's cursor text; `None` for ids Tessera never writes (numbers).
pub(crate) fn point_text(id: &PointId) -> Option<String> {
    match &id.point_id_options {
        Some(PointIdOptions::Uuid(u)) => Some(u.clone()),
        _ => None,
    }
}

fn point_label(id: Option<&PointId>) -> String {
    id.and_then(point_text).unwrap_or_else(|| format!("{id:?}"))
}

pub(crate) fn to_json(payload: HashMap<String, Value>) -> Map<String, serde_json::Value> {
    Map::from(Payload::from(payload))
}

/// A title as a server point, with `change` recorded for the change feed.
pub(crate) fn entity_to_point(entity: &Entity, change: &Change) -> PointStruct {
    let vectors: HashMap<String, Vector> = entity
        .vectors
        .iter()
        .map(|(name, v)| (engine_name(name), Vector::new_dense(v.clone())))
        .chain(
            entity
                .multivectors
                .iter()
                .map(|(name, m)| (engine_name(name), Vector::new_multi(m.clone()))),
        )
        .collect();
    PointStruct::new(
        point_id(&entity.id),
        vectors,
        Payload::from(entity_payload(entity, Some(change))),
    )
}

type Vectors = (BTreeMap<String, Vec<f32>>, BTreeMap<String, Vec<Vec<f32>>>);

fn split_vectors(point: &str, vectors: Option<VectorsOutput>) -> Result<Vectors, IndexError> {
    let mut dense = BTreeMap::new();
    let mut multi = BTreeMap::new();
    let named = match vectors.and_then(|v| v.vectors_options) {
        None => return Ok((dense, multi)),
        Some(VectorsOptions::Vectors(named)) => named.vectors,
        Some(VectorsOptions::Vector(_)) => {
            return Err(IndexError::Corrupt {
                entity: point.to_string(),
                reason: "vectors are not named".into(),
            });
        }
    };
    for (name, vector) in named {
        let name = tessera_name(&name);
        match vector.into_vector() {
            OutVector::Dense(v) => {
                dense.insert(name, v.data);
            }
            OutVector::MultiDense(m) => {
                multi.insert(name, m.vectors.into_iter().map(|v| v.data).collect());
            }
            OutVector::Sparse(_) => {
                return Err(IndexError::Corrupt {
                    entity: point.to_string(),
                    reason: format!("vector {name:?} is sparse"),
                });
            }
        }
    }
    Ok((dense, multi))
}

pub(crate) fn retrieved_to_entity(point: RetrievedPoint) -> Result<Entity, IndexError> {
    let label = point_label(point.id.as_ref());
    let (dense, multi) = split_vectors(&label, point.vectors)?;
    entity_from_parts(&label, to_json(point.payload), dense, multi)
}

/// The title id in a point's payload.
pub(crate) fn title_id(
    id: Option<&PointId>,
    payload: &HashMap<String, Value>,
) -> Result<String, IndexError> {
    payload
        .get("tessera_id")
        .and_then(|v| match &v.kind {
            Some(Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .ok_or_else(|| IndexError::Corrupt {
            entity: point_label(id),
            reason: "payload lacks tessera_id".into(),
        })
}

pub(crate) fn scored_to_neighbor(point: ScoredPoint) -> Result<Neighbor, IndexError> {
    let id = title_id(point.id.as_ref(), &point.payload)?;
    let (mut dense, mut multi) = split_vectors(&id, point.vectors)?;
    let vector = match dense.pop_first() {
        Some((_, v)) => Some(HitVector::Dense(v)),
        None => multi.pop_first().map(|(_, m)| HitVector::Multi(m)),
    };
    Ok(Neighbor {
        id,
        score: point.score,
        vector,
    })
}

/// The Qdrant server's condition types.
pub(crate) struct Server;

impl Conditions for Server {
    type Condition = Condition;
    type Filter = Filter;

    fn keyword(field: &str, value: String) -> Result<Condition, IndexError> {
        Ok(Condition::matches(field, value))
    }

    fn any_keyword(field: &str, values: Vec<String>) -> Result<Condition, IndexError> {
        Ok(Condition::matches(field, values))
    }

    fn at_least(field: &str, min: f64) -> Result<Condition, IndexError> {
        Ok(Condition::range(
            field,
            Range {
                gte: Some(min),
                ..Range::default()
            },
        ))
    }

    fn at_most(field: &str, max: f64) -> Result<Condition, IndexError> {
        Ok(Condition::range(
            field,
            Range {
                lte: Some(max),
                ..Range::default()
            },
        ))
    }

    fn above(field: &str, value: u64) -> Result<Condition, IndexError> {
        Ok(Condition::range(
            field,
            Range {
                gt: Some(value as f64),
                ..Range::default()
            },
        ))
    }

    fn nested(field: &str, inner: Vec<Condition>) -> Result<Condition, IndexError> {
        Ok(Condition::nested(field, Filter::must(inner)))
    }

    fn is_title(id: &str) -> Condition {
        Condition::has_id([point_id(id)])
    }

    fn filter(must: Vec<Condition>, must_not: Vec<Condition>) -> Filter {
        Filter {
            must,
            must_not,
            ..Filter::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Output, Tag};
    use qdrant_client::qdrant::{NamedVectorsOutput, VectorOutput};

    fn entity() -> Entity {
        Entity {
            id: "tt-1".into(),
            name: "Heat".into(),
            year: Some(1995),
            language: "en".into(),
            metadata: BTreeMap::from([("director".to_string(), "Mann".to_string())]),
            vectors: BTreeMap::from([("text".to_string(), vec![0.6, 0.8])]),
            multivectors: BTreeMap::from([(
                "audio".to_string(),
                vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            )]),
            tags: vec![Tag {
                name: "genre".into(),
                value: Some("crime".into()),
                confidence: 0.7,
                plugin: "g".into(),
                plugin_version: "1.0.0".into(),
                span: Some((1.5, 3.0)),
                evidence: None,
                run: Some("run-1".into()),
                models: Vec::new(),
            }],
            outputs: vec![Output {
                plugin: "g".into(),
                version: "1.0.0".into(),
                models: vec!["m".into()],
                run: "run-1".into(),
            }],
            input: Some("abc".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_title_survives_the_trip_through_server_types() {
        let e = entity();
        let change = Change {
            seq: 7,
            id: e.id.clone(),
            run: None,
            what: vec!["created".into()],
            at: None,
            created: None,
        };
        let point = entity_to_point(&e, &change);
        // What the server answers for that point: the same payload and named vectors.
        let vectors = HashMap::from([
            (
                "text".to_string(),
                VectorOutput {
                    vector: Some(OutVector::Dense(qdrant_client::qdrant::DenseVector {
                        data: vec![0.6, 0.8],
                    })),
                    ..VectorOutput::default()
                },
            ),
            (
                "audio".to_string(),
                VectorOutput {
                    vector: Some(OutVector::MultiDense(
                        qdrant_client::qdrant::MultiDenseVector {
                            vectors: vec![
                                qdrant_client::qdrant::DenseVector {
                                    data: vec![1.0, 0.0],
                                },
                                qdrant_client::qdrant::DenseVector {
                                    data: vec![0.0, 1.0],
                                },
                            ],
                        },
                    )),
                    ..VectorOutput::default()
                },
            ),
        ]);
        let back = retrieved_to_entity(RetrievedPoint {
            id: point.id.clone(),
            payload: point.payload.clone(),
            vectors: Some(VectorsOutput {
                vectors_options: Some(VectorsOptions::Vectors(NamedVectorsOutput { vectors })),
            }),
            ..RetrievedPoint::default()
        })
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(back, e);
        let recorded = crate::convert::change_from_payload("p", &to_json(point.payload))
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(recorded, Some(change));
        assert_eq!(
            point.id.as_ref().and_then(point_text),
            Some(point_uuid("tt-1").to_string())
        );
    }
}
