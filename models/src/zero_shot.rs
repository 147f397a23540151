//! Zero-shot tagging with CLIP or SigLIP: a taxonomy maps each tag to prompt templates; each tag's
//! vector is the normalised mean of its prompts' text vectors (CLIP's prompt ensembling), and an
//! image or a text is scored against every tag by cosine, turned into a score the way the model
//! was trained: CLIP's softmax over `exp(logit_scale) · cosine` (scores sum to 1 over the
//! taxonomy), SigLIP's independent sigmoid of `exp(logit_scale) · cosine + logit_bias`.

use crate::{ModelError, TextEmbedder};
use serde::Deserialize;
use std::path::Path;

/// A tag vocabulary with the prompts that describe each tag.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    /// Templates for tags that list none; `{}` is replaced by the tag's label.
    #[serde(default)]
    pub templates: Vec<String>,
    /// The tags, in order.
    #[serde(rename = "tag", default)]
    pub tags: Vec<TaxonomyTag>,
}

/// One tag of a [`Taxonomy`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxonomyTag {
    /// The tag as stored (e.g. `genre/horror`).
    pub name: String,
    /// What `{}` becomes in templates; the name when absent.
    pub label: Option<String>,
    /// This tag's own templates (replacing the taxonomy's).
    #[serde(default)]
    pub prompts: Vec<String>,
}

impl Taxonomy {
    /// Parses a taxonomy from TOML; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::InvalidInput {
            model: "zero-shot".into(),
            reason: format!("taxonomy {source}: {reason}"),
        };
        let taxonomy: Taxonomy = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if taxonomy.tags.is_empty() {
            return Err(bad("no [[tag]] entries".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for tag in &taxonomy.tags {
            if !seen.insert(tag.name.as_str()) {
                return Err(bad(format!("tag {:?} appears twice", tag.name)));
            }
            if tag.prompts.is_empty() && taxonomy.templates.is_empty() {
                return Err(bad(format!(
                    "tag {:?} has no prompts and there are no default templates",
                    tag.name
                )));
            }
        }
        Ok(taxonomy)
    }

    /// Reads a taxonomy TOML file.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The prompts of each tag, templates filled in.
    pub fn prompts(&self) -> Vec<Vec<String>> {
        self.tags
            .iter()
            .map(|tag| {
                let label = tag.label.as_deref().unwrap_or(&tag.name);
                let templates = if tag.prompts.is_empty() {
                    &self.templates
                } else {
                    &tag.prompts
                };
                templates.iter().map(|t| t.replace("{}", label)).collect()
            })
            .collect()
    }
}

/// One tag's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TagScore {
    /// The tag.
    pub tag: String,
    /// Softmax probability over the taxonomy (CLIP), or this tag's own sigmoid (SigLIP).
    pub score: f32,
    /// Raw cosine between the query and the tag's vector.
    pub cosine: f32,
}

/// How cosines become scores; the logit scale is the checkpoint's, before `exp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scoring {
    /// CLIP: softmax over the taxonomy.
    Softmax {
        /// `logit_scale` (CLIP's initial value is ln(100)).
        logit_scale: f32,
    },
    /// SigLIP: an independent sigmoid per tag.
    Sigmoid {
        /// `logit_scale`.
        logit_scale: f32,
        /// `logit_bias`.
        logit_bias: f32,
    },
}

/// A taxonomy embedded once, ready to score many queries.
#[derive(Debug, Clone)]
pub struct ZeroShot {
    tags: Vec<String>,
    vectors: Vec<Vec<f32>>,
    scoring: Scoring,
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl ZeroShot {
    /// Embeds every prompt with `text` (a CLIP or SigLIP text tower) and pools them per tag.
    pub fn new(
        text: &dyn TextEmbedder,
        taxonomy: &Taxonomy,
        scoring: Scoring,
    ) -> Result<Self, ModelError> {
        let prompts = taxonomy.prompts();
        let flat: Vec<&str> = prompts.iter().flatten().map(String::as_str).collect();
        let embedded = text.embed(&flat)?;
        Self::from_prompt_vectors(text, taxonomy, &prompts, embedded, scoring)
    }

    /// [`ZeroShot::new`] without holding a thread while the prompts wait for their batch.
    pub async fn new_async(
        text: &dyn TextEmbedder,
        taxonomy: &Taxonomy,
        scoring: Scoring,
    ) -> Result<Self, ModelError> {
        let prompts = taxonomy.prompts();
        let flat: Vec<String> = prompts.iter().flatten().cloned().collect();
        let embedded = text.submit(flat).outcome().await?;
        Self::from_prompt_vectors(text, taxonomy, &prompts, embedded, scoring)
    }

    /// Pools `embedded` (one vector per prompt of `prompts`, `taxonomy`'s [`Taxonomy::prompts`])
    /// per tag.
    fn from_prompt_vectors(
        text: &dyn TextEmbedder,
        taxonomy: &Taxonomy,
        prompts: &[Vec<String>],
        embedded: Vec<Vec<f32>>,
        scoring: Scoring,
    ) -> Result<Self, ModelError> {
        let mut vectors = Vec::with_capacity(prompts.len());
        let mut next = embedded.into_iter();
        for tag_prompts in prompts {
            let mut sum = vec![0.0f32; text.dimension()];
            for _ in tag_prompts {
                let mut v = next.next().ok_or_else(|| ModelError::InvalidInput {
                    model: text.name().to_string(),
                    reason: "the text model returned fewer vectors than prompts".into(),
                })?;
                normalize(&mut v);
                sum.iter_mut().zip(&v).for_each(|(s, x)| *s += x);
            }
            normalize(&mut sum);
            vectors.push(sum);
        }
        Ok(ZeroShot {
            tags: taxonomy.tags.iter().map(|t| t.name.clone()).collect(),
            vectors,
            scoring,
        })
    }

    /// Scores `query` (an image or text vector from the same CLIP checkpoint) against every tag,
    /// in taxonomy order.
    pub fn score(&self, query: &[f32]) -> Result<Vec<TagScore>, ModelError> {
        let mut q = query.to_vec();
        if self.vectors.first().is_some_and(|v| v.len() != q.len()) {
            return Err(ModelError::InvalidInput {
                model: "zero-shot".into(),
                reason: format!(
                    "a {}-d query against {}-d tag vectors (different checkpoints?)",
                    q.len(),
                    self.vectors[0].len()
                ),
            });
        }
        normalize(&mut q);
        let cosines: Vec<f32> = self
            .vectors
            .iter()
            .map(|v| v.iter().zip(&q).map(|(a, b)| a * b).sum())
            .collect();
        let scores: Vec<f32> = match self.scoring {
            Scoring::Softmax { logit_scale } => {
                let logits: Vec<f32> = cosines.iter().map(|c| c * logit_scale.exp()).collect();
                let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
                let total: f32 = exps.iter().sum();
                exps.iter().map(|e| e / total).collect()
            }
            Scoring::Sigmoid {
                logit_scale,
                logit_bias,
            } => cosines
                .iter()
                .map(|c| 1.0 / (1.0 + (-(c * logit_scale.exp() + logit_bias)).exp()))
                .collect(),
        };
        Ok(self
            .tags
            .iter()
            .zip(cosines)
            .zip(scores)
            .map(|((tag, cosine), score)| TagScore {
                tag: tag.clone(),
                score,
                cosine,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_templates_and_refuses_bad_taxonomies() -> Result<(), ModelError> {
        let t = Taxonomy::from_toml(
            r#"
templates = ["a photo of {}", "a film about {}"]
[[tag]]
name = "genre/horror"
label = "horror"
[[tag]]
name = "dog"
prompts = ["a dog"]
"#,
            "inline",
        )?;
        assert_eq!(
            t.prompts(),
            vec![
                vec![
                    "a photo of horror".to_string(),
                    "a film about horror".into()
                ],
                vec!["a dog".to_string()]
            ]
        );
        let dup = Taxonomy::from_toml(
            "[[tag]]\nname='a'\nprompts=['x']\n[[tag]]\nname='a'\nprompts=['y']",
            "dup",
        );
        assert!(
            dup.err()
                .is_some_and(|e| e.to_string().contains("appears twice"))
        );
        let empty = Taxonomy::from_toml("templates = ['{}']", "empty");
        assert!(
            empty
                .err()
                .is_some_and(|e| e.to_string().contains("no [[tag]]"))
        );
        let bare = Taxonomy::from_toml("[[tag]]\nname = 'x'", "bare");
        assert!(
            bare.err()
                .is_some_and(|e| e.to_string().contains("no prompts"))
        );
        Ok(())
    }
}
