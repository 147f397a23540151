//! The store's schema: which named vectors it holds and their dimensions. Written beside the data
//! (`tessera-schema.json`) so that a reopened store is checked against what the caller expects.

use crate::IndexError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Current schema format version.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_FILE: &str = "tessera-schema.json";

/// One named dense vector (cosine distance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorSpec {
    /// Dimension.
    pub dim: usize,
    /// The model that produces it (for people reading the schema).
    pub model: String,
}

/// Named vectors of a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Schema {
    /// Format version.
    pub version: u32,
    /// Vectors by name.
    pub vectors: BTreeMap<String, VectorSpec>,
}

impl Schema {
    /// A schema with the given vectors.
    pub fn new(vectors: impl IntoIterator<Item = (String, VectorSpec)>) -> Self {
        Schema {
            version: SCHEMA_VERSION,
            vectors: vectors.into_iter().collect(),
        }
    }

    pub(crate) fn read(dir: &Path) -> Result<Option<Schema>, IndexError> {
        let path = dir.join(SCHEMA_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(IndexError::Io {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let schema: Schema = serde_json::from_slice(&bytes).map_err(|e| IndexError::Schema {
            path: path.clone(),
            reason: format!("unreadable schema: {e}"),
        })?;
        if schema.version != SCHEMA_VERSION {
            return Err(IndexError::Schema {
                path,
                reason: format!(
                    "schema version {} is not supported (this build reads {SCHEMA_VERSION})",
                    schema.version
                ),
            });
        }
        Ok(Some(schema))
    }

    /// Writes the schema atomically (temp file + rename), so a crash never leaves half a file.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), IndexError> {
        let path = dir.join(SCHEMA_FILE);
        let tmp = dir.join(format!("{SCHEMA_FILE}.tmp"));
        let io = |e: std::io::Error| IndexError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| IndexError::Io {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Checks an entity's vectors against the schema.
    pub(crate) fn validate(&self, entity: &crate::Entity) -> Result<(), IndexError> {
        if entity.id.is_empty() || entity.id.len() > 512 {
            return Err(IndexError::InvalidId(entity.id.clone()));
        }
        for (name, vector) in &entity.vectors {
            let Some(spec) = self.vectors.get(name) else {
                return Err(IndexError::UnknownVector {
                    entity: entity.id.clone(),
                    vector: name.clone(),
                    known: self.vectors.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            };
            if vector.len() != spec.dim {
                return Err(IndexError::Dimension {
                    entity: entity.id.clone(),
                    vector: name.clone(),
                    expected: spec.dim,
                    got: vector.len(),
                });
            }
            if let Some(index) = vector.iter().position(|x| !x.is_finite()) {
                return Err(IndexError::NonFinite {
                    entity: entity.id.clone(),
                    vector: name.clone(),
                    index,
                });
            }
        }
        Ok(())
    }
}
