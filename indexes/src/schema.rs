//! The store's schema: which named vectors it holds and their dimensions. Written beside the data
//! (`tessera-schema.json`) so that a reopened store is checked against what the caller expects.

use crate::IndexError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Current schema format version.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_FILE: &str = "tessera-schema.json";

/// Most token vectors one multivector may hold (the plugin contract's cap on a token sequence).
pub const MAX_TOKENS: usize = 4096;

/// What a named vector holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VectorKind {
    /// One vector per title.
    #[default]
    Dense,
    /// A list of token vectors per title (one per audio window, image, text chunk), compared
    /// by MaxSim: for each query token its best match, summed.
    Multi,
}

/// One named vector (cosine distance; token vectors too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorSpec {
    /// Dimension (of each token vector, for a multivector).
    pub dim: usize,
    /// The model that produces it (for people reading the schema).
    pub model: String,
    /// Dense or multivector; stores written before multivectors existed are all dense.
    #[serde(default)]
    pub kind: VectorKind,
}

impl VectorSpec {
    /// A dense vector.
    pub fn dense(dim: usize, model: impl Into<String>) -> Self {
        VectorSpec {
            dim,
            model: model.into(),
            kind: VectorKind::Dense,
        }
    }

    /// A multivector of token vectors.
    pub fn multi(dim: usize, model: impl Into<String>) -> Self {
        VectorSpec {
            dim,
            model: model.into(),
            kind: VectorKind::Multi,
        }
    }
}

/// What the store calls a plugin output's vectors: `modality/model@revision` for a dense vector
/// (e.g. `text/all-MiniLM-L6-v2@c9745ed1d9f2`), with `/tokens` after it for a multivector. One
/// name per model revision keeps each vector space apart: a store made with one revision refuses
/// another by name when opened, instead of mixing the two into one index.
pub fn vector_name(modality: &str, model: &str, kind: VectorKind) -> String {
    match kind {
        VectorKind::Dense => format!("{modality}/{model}"),
        VectorKind::Multi => format!("{modality}/{model}/tokens"),
    }
}

/// Named vectors of a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Schema {
    /// Format version.
    pub version: u32,
    /// Vectors by name.
    pub vectors: BTreeMap<String, VectorSpec>,
    /// How the fused vector ([`crate::FUSED`], one of `vectors`) is made, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<crate::Fusion>,
}

impl Schema {
    /// A schema with the given vectors.
    pub fn new(vectors: impl IntoIterator<Item = (String, VectorSpec)>) -> Self {
        Schema {
            version: SCHEMA_VERSION,
            vectors: vectors.into_iter().collect(),
            fusion: None,
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

    /// The vector names, comma-separated: for messages that list what a store holds.
    pub fn names(&self) -> String {
        self.vectors.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The vector `name` names, for people typing names: the vector of that name, or for a
    /// modality (`text`) the one dense vector of it (`text/model@revision`). `None` when none
    /// matches; `Err` says which vectors it could be when the modality has several.
    pub fn named(&self, name: &str) -> Result<Option<String>, String> {
        if self.vectors.contains_key(name) {
            return Ok(Some(name.to_string()));
        }
        let prefix = format!("{name}/");
        let of_modality: Vec<&str> = self
            .vectors
            .iter()
            .filter(|(n, spec)| n.starts_with(&prefix) && spec.kind == VectorKind::Dense)
            .map(|(n, _)| n.as_str())
            .collect();
        match of_modality.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).to_string())),
            several => Err(format!(
                "{name:?} could be any of {}; name one in full",
                several.join(", ")
            )),
        }
    }

    /// The spec of `name`, which must be of `kind`.
    pub(crate) fn spec(
        &self,
        entity: &str,
        name: &str,
        kind: VectorKind,
    ) -> Result<&VectorSpec, IndexError> {
        let Some(spec) = self.vectors.get(name) else {
            return Err(IndexError::UnknownVector {
                entity: entity.to_string(),
                vector: name.to_string(),
                known: self.names(),
            });
        };
        if spec.kind != kind {
            return Err(IndexError::Kind {
                entity: entity.to_string(),
                vector: name.to_string(),
                expected: spec.kind,
            });
        }
        Ok(spec)
    }

    /// `entities` as the store writes them (see [`Schema::complete`]), each checked against the
    /// schema: what every backend's upsert does before anything is written.
    pub(crate) fn prepare<'a>(
        &self,
        entities: &'a [crate::Entity],
    ) -> Result<std::borrow::Cow<'a, [crate::Entity]>, IndexError> {
        let entities = self.complete(entities);
        for entity in entities.iter() {
            self.validate(entity)?;
        }
        Ok(entities)
    }

    /// `entities` as the store writes them: with their fused vector computed, when the schema
    /// has a recipe (borrowed as they are otherwise).
    pub(crate) fn complete<'a>(
        &self,
        entities: &'a [crate::Entity],
    ) -> std::borrow::Cow<'a, [crate::Entity]> {
        let Some(fusion) = &self.fusion else {
            return std::borrow::Cow::Borrowed(entities);
        };
        std::borrow::Cow::Owned(
            entities
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    match fusion.fuse(self, &e) {
                        Some(fused) => e.vectors.insert(crate::FUSED.to_string(), fused),
                        None => e.vectors.remove(crate::FUSED),
                    };
                    e
                })
                .collect(),
        )
    }

    /// Why a store made with `self` cannot be opened for `asked`, for people.
    pub(crate) fn mismatch(&self, asked: &Schema) -> String {
        // Another revision of a model the store holds vectors of comes first: the two
        // revisions' vectors are not comparable, and no flag makes the store take them.
        let revisions = self.other_revisions(asked);
        if !revisions.is_empty() {
            return format!(
                "another revision of a model than the store was made with: {}; vectors of two \
                 revisions are not comparable, so a store keeps one: load the revision it holds, \
                 or ingest into a new data directory and move rankers to the new vector name",
                revisions.join("; ")
            );
        }
        let recipe = |s: &Schema| s.fusion.as_ref().map(crate::Fusion::describe);
        if self.fusion != asked.fusion {
            return match (recipe(self), recipe(asked)) {
                (Some(held), _) => format!(
                    "it fuses vectors by the recipe {held:?} but {:?} was asked for; pass --fuse {held} (or use a new store for another recipe)",
                    recipe(asked).unwrap_or_else(|| "none".into())
                ),
                (None, Some(asked)) => format!(
                    "it has no fused vector but the recipe {asked:?} was asked for; a recipe is set when a store is created: use a new store and ingest into it"
                ),
                (None, None) => String::new(),
            };
        }
        // Stores made before vectors were named by model hold names such as `synopsis`.
        let plugin_named = |s: &Schema| {
            s.vectors
                .keys()
                .any(|name| name != crate::FUSED && !name.contains('/'))
        };
        let by_output = plugin_named(self) && !plugin_named(asked);
        let hint = if by_output {
            "; it was made before vectors were named by their model (`text/model@revision`): \
             ingest into a new data directory"
        } else {
            "; use a new data directory or the matching plugins and models"
        };
        format!(
            "it holds vectors {:?} but {:?} were asked for{hint}",
            self.vectors, asked.vectors
        )
    }

    /// `held (held) vs asked (asked)` for each vector asked for that the store holds under
    /// another revision of the same model, modality and kind.
    fn other_revisions(&self, asked: &Schema) -> Vec<String> {
        // `text/m@1/tokens` → (`text/m`, `/tokens`): the name without its revision.
        let without_revision = |name: &str| {
            let (model, rest) = name.split_once('@')?;
            let kind = rest.find('/').map_or("", |i| &rest[i..]);
            Some(format!("{model}{kind}"))
        };
        let held_only: Vec<&String> = self
            .vectors
            .keys()
            .filter(|name| !asked.vectors.contains_key(*name))
            .collect();
        asked
            .vectors
            .keys()
            .filter(|name| !self.vectors.contains_key(*name))
            .filter_map(|new| {
                let key = without_revision(new)?;
                held_only
                    .iter()
                    .find(|held| without_revision(held).as_ref() == Some(&key))
                    .map(|held| format!("{held} (held) vs {new} (asked)"))
            })
            .collect()
    }

    /// Checks an entity's id and vectors against the schema (what `upsert` checks first).
    pub fn validate(&self, entity: &crate::Entity) -> Result<(), IndexError> {
        if entity.id.is_empty() || entity.id.len() > 512 {
            return Err(IndexError::InvalidId(entity.id.clone()));
        }
        for (name, vector) in &entity.vectors {
            let spec = self.spec(&entity.id, name, VectorKind::Dense)?;
            check_vector(&entity.id, name, spec, vector)?;
        }
        for (name, tokens) in &entity.multivectors {
            let spec = self.spec(&entity.id, name, VectorKind::Multi)?;
            if tokens.is_empty() || tokens.len() > MAX_TOKENS {
                return Err(IndexError::TokenCount {
                    entity: entity.id.clone(),
                    vector: name.clone(),
                    got: tokens.len(),
                    max: MAX_TOKENS,
                });
            }
            for token in tokens {
                check_vector(&entity.id, name, spec, token)?;
            }
        }
        Ok(())
    }
}

/// Checks one vector (or token vector) of `entity` against its spec.
pub(crate) fn check_vector(
    entity: &str,
    name: &str,
    spec: &VectorSpec,
    vector: &[f32],
) -> Result<(), IndexError> {
    if vector.len() != spec.dim {
        return Err(IndexError::Dimension {
            entity: entity.to_string(),
            vector: name.to_string(),
            expected: spec.dim,
            got: vector.len(),
        });
    }
    if let Some(index) = vector.iter().position(|x| !x.is_finite()) {
        return Err(IndexError::NonFinite {
            entity: entity.to_string(),
            vector: name.to_string(),
            index,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(names: &[(&str, VectorKind)]) -> Schema {
        Schema::new(names.iter().map(|(n, k)| {
            let spec = match k {
                VectorKind::Dense => VectorSpec::dense(4, "m"),
                VectorKind::Multi => VectorSpec::multi(4, "m"),
            };
            (n.to_string(), spec)
        }))
    }

    #[test]
    fn a_store_names_what_it_cannot_take() -> Result<(), IndexError> {
        use VectorKind::{Dense, Multi};
        let held = schema(&[("text/m@1", Dense), ("audio/w@1/tokens", Multi)]);
        // A new revision is paired with the held one of the same model, modality and kind.
        let asked = schema(&[("text/m@2", Dense), ("audio/w@1/tokens", Multi)]);
        let why = held.mismatch(&asked);
        assert!(why.contains("text/m@1 (held) vs text/m@2 (asked)"), "{why}");
        let asked = schema(&[("text/m@1", Dense), ("audio/w@2/tokens", Multi)]);
        let why = held.mismatch(&asked);
        assert!(
            why.contains("audio/w@1/tokens (held) vs audio/w@2/tokens (asked)"),
            "{why}"
        );
        // Before the fusion recipe: following the recipe advice could not open it.
        let fused = crate::Fusion::parse("text,audio/x@1")?
            .apply_to(schema(&[("text/m@1", Dense), ("audio/x@1", Dense)]))?;
        let asked = crate::Fusion::parse("text,audio/x@1")?
            .apply_to(schema(&[("text/m@2", Dense), ("audio/x@1", Dense)]))?;
        let why = fused.mismatch(&asked);
        assert!(why.starts_with("another revision of a model"), "{why}");
        // A store from before vectors were named by model says so.
        let why = schema(&[("synopsis", Dense)]).mismatch(&schema(&[("text/m@1", Dense)]));
        assert!(why.contains("made before vectors were named"), "{why}");
        Ok(())
    }
}
