//! The fused vector: one dense vector per title made from several of its named vectors (text,
//! image, audio, …) by a recipe recorded in the store's schema, so that one search or one
//! semantic ID can use every modality at once.
//!
//! Each part is normalised, scaled by √(wᵢ/Σw) and the parts are concatenated. For two titles
//! with every part, the cosine of their fused vectors is then exactly the weighted mean of the
//! parts' cosines, Σ (wᵢ/Σw)·cos(aᵢ, bᵢ). A title lacking a part gets zeros there (its fused
//! vector ranks by the parts it has); a title with none of them gets no fused vector. The store
//! computes it on every write from the title's vectors, so every writer (ingest, migration,
//! a retrain) agrees and a stale fused vector cannot be stored.

use crate::schema::{Schema, VectorKind, VectorSpec};
use crate::{Entity, IndexError};
use serde::{Deserialize, Serialize};

/// The name of the fused vector.
pub const FUSED: &str = "fused";

/// One part of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionPart {
    /// A dense vector of the schema.
    pub vector: String,
    /// Its weight (> 0).
    pub weight: f32,
}

/// A recipe: which vectors, with which weights, in which order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fusion {
    /// The parts, in the order they are concatenated.
    pub parts: Vec<FusionPart>,
}

fn bad(reason: String) -> IndexError {
    IndexError::Fusion(reason)
}

impl Fusion {
    /// Reads `NAME=WEIGHT,NAME=WEIGHT,…` (a bare NAME weighs 1).
    pub fn parse(spec: &str) -> Result<Self, IndexError> {
        let mut parts: Vec<FusionPart> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (vector, weight) = match item.split_once('=') {
                Some((v, w)) => (
                    v.trim(),
                    w.trim()
                        .parse::<f32>()
                        .map_err(|_| bad(format!("weight {w:?} of {v:?} is not a number")))?,
                ),
                None => (item, 1.0),
            };
            if !(weight.is_finite() && weight > 0.0) {
                return Err(bad(format!(
                    "weight of {vector:?} must be above 0, got {weight}"
                )));
            }
            if parts.iter().any(|p| p.vector == vector) {
                return Err(bad(format!("{vector:?} is named twice")));
            }
            parts.push(FusionPart {
                vector: vector.to_string(),
                weight,
            });
        }
        if parts.len() < 2 {
            return Err(bad(format!(
                "{spec:?}: a fused vector needs two or more vectors, NAME=WEIGHT,NAME=WEIGHT"
            )));
        }
        Ok(Fusion { parts })
    }

    /// The recipe as `parse` reads it.
    pub fn describe(&self) -> String {
        self.parts
            .iter()
            .map(|p| format!("{}={}", p.vector, p.weight))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `schema` with this recipe and its fused vector; every part must be a dense vector of it.
    /// A part may name a modality (`text`) instead when exactly one dense vector of the schema
    /// is of it (`text/…`): the recipe recorded then names that vector in full.
    pub fn apply_to(mut self, mut schema: Schema) -> Result<Schema, IndexError> {
        for part in &mut self.parts {
            if let Some(name) = schema.named(&part.vector).map_err(bad)? {
                part.vector = name;
            }
        }
        let mut dim = 0;
        for part in &self.parts {
            match schema.vectors.get(&part.vector) {
                Some(spec) if spec.kind == VectorKind::Dense => dim += spec.dim,
                Some(_) => {
                    return Err(bad(format!(
                        "{:?} is a multivector; only dense vectors are fused",
                        part.vector
                    )));
                }
                None => {
                    return Err(bad(format!(
                        "no vector {:?} (the plugins produce: {})",
                        part.vector,
                        schema.names()
                    )));
                }
            }
        }
        if schema.vectors.contains_key(FUSED) {
            return Err(bad(format!(
                "a plugin already produces a vector named {FUSED:?}"
            )));
        }
        schema.vectors.insert(
            FUSED.to_string(),
            VectorSpec::dense(dim, format!("fusion of {}", self.describe())),
        );
        schema.fusion = Some(self);
        Ok(schema)
    }

    /// The fused vector of `entity` under `schema`'s dimensions; `None` when it has none of
    /// the parts (or only zero vectors).
    pub fn fuse(&self, schema: &Schema, entity: &Entity) -> Option<Vec<f32>> {
        let total: f32 = self.parts.iter().map(|p| p.weight).sum();
        let mut fused = Vec::new();
        let mut any = false;
        for part in &self.parts {
            let dim = schema.vectors.get(&part.vector).map_or(0, |s| s.dim);
            let vector = entity.vectors.get(&part.vector).filter(|v| v.len() == dim);
            let norm = vector.map_or(0.0, |v| v.iter().map(|x| x * x).sum::<f32>().sqrt());
            match vector {
                Some(v) if norm > 0.0 && norm.is_finite() => {
                    any = true;
                    let scale = (part.weight / total).sqrt() / norm;
                    fused.extend(v.iter().map(|x| x * scale));
                }
                _ => fused.extend(std::iter::repeat_n(0.0, dim)),
            }
        }
        any.then_some(fused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::new([
            ("text".to_string(), VectorSpec::dense(2, "t")),
            ("image".to_string(), VectorSpec::dense(3, "i")),
            ("audio".to_string(), VectorSpec::multi(2, "a")),
        ])
    }

    fn entity(text: Option<Vec<f32>>, image: Option<Vec<f32>>) -> Entity {
        Entity {
            id: "t".into(),
            vectors: text
                .map(|v| ("text".to_string(), v))
                .into_iter()
                .chain(image.map(|v| ("image".to_string(), v)))
                .collect(),
            ..Default::default()
        }
    }

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(a) * n(b))
    }

    #[test]
    fn fused_cosine_is_the_weighted_mean_of_the_parts() -> Result<(), IndexError> {
        let fusion = Fusion::parse("text=3, image=1")?;
        let schema = fusion.clone().apply_to(schema())?;
        assert_eq!(schema.vectors[FUSED].dim, 5);
        let (ta, ia) = (vec![1.0, 2.0], vec![0.5, 0.0, 1.0]);
        let (tb, ib) = (vec![2.0, -1.0], vec![0.4, 0.3, 1.2]);
        let a = fusion
            .fuse(&schema, &entity(Some(ta.clone()), Some(ia.clone())))
            .unwrap_or_default();
        let b = fusion
            .fuse(&schema, &entity(Some(tb.clone()), Some(ib.clone())))
            .unwrap_or_default();
        let want = 0.75 * cos(&ta, &tb) + 0.25 * cos(&ia, &ib);
        assert!(
            (cos(&a, &b) - want).abs() < 1e-6,
            "{} vs {want}",
            cos(&a, &b)
        );
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
        // A missing part is zeros; no part at all, no fused vector.
        let half = fusion
            .fuse(&schema, &entity(Some(ta), None))
            .unwrap_or_default();
        assert_eq!(&half[2..], &[0.0, 0.0, 0.0]);
        assert_eq!(
            fusion.fuse(&schema, &entity(None, Some(vec![0.0; 3]))),
            None
        );
        Ok(())
    }

    #[test]
    fn a_part_may_name_a_modality_with_one_dense_vector() -> Result<(), IndexError> {
        let schema = || {
            Schema::new([
                (
                    "text/minilm@1".to_string(),
                    VectorSpec::dense(2, "minilm@1"),
                ),
                ("image/clip@a".to_string(), VectorSpec::dense(3, "clip@a")),
                ("image/clip@b".to_string(), VectorSpec::dense(3, "clip@b")),
                ("audio/w@1/tokens".to_string(), VectorSpec::multi(2, "w@1")),
            ])
        };
        let fused = Fusion::parse("text=2,image/clip@b=1")?.apply_to(schema())?;
        let recorded = fused.fusion.as_ref().map(Fusion::describe);
        assert_eq!(recorded.as_deref(), Some("text/minilm@1=2,image/clip@b=1"));
        assert_eq!(fused.vectors[FUSED].dim, 5);
        let two = Fusion::parse("text,image")?.apply_to(schema());
        let err = two.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("image/clip@a, image/clip@b"), "{err}");
        // A modality with only a multivector names nothing to fuse.
        let err = Fusion::parse("text,audio")?
            .apply_to(schema())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no vector \"audio\""), "{err}");
        Ok(())
    }

    #[test]
    fn bad_recipes_say_what_is_wrong() {
        for (spec, why) in [
            ("text", "two or more"),
            ("text=1,image=x", "not a number"),
            ("text=1,image=0", "above 0"),
            ("text=1,text=2", "named twice"),
        ] {
            let err = Fusion::parse(spec)
                .err()
                .unwrap_or_else(|| panic!("{spec} parsed"))
                .to_string();
            assert!(err.contains(why), "{spec}: {err}");
        }
        for (spec, why) in [
            ("text,poster", "no vector \"poster\""),
            ("text,audio", "multivector"),
        ] {
            let err = Fusion::parse(spec)
                .and_then(|f| f.apply_to(schema()))
                .err()
                .unwrap_or_else(|| panic!("{spec} applied"))
                .to_string();
            assert!(err.contains(why), "{spec}: {err}");
        }
    }
}
