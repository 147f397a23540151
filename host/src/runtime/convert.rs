//! Conversions between the WIT types and the host's own, with the checks that keep a plugin's
//! output honest before anything reaches the store.

use super::bindings::types;
use crate::catalog::Title;
use tessera_indexes::Tag;

/// Caps on what one analysis may hold.
const MAX_TAGS: usize = 256;
const MAX_EMBEDDINGS: usize = 16;
const MAX_NAME: usize = 128;
const MAX_VALUE: usize = 1024;

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Tag names it may produce.
    pub tags: Vec<String>,
    /// Embeddings it produces: (vector name, host model).
    pub embeddings: Vec<(String, String)>,
}

/// One vector a plugin produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// Vector name in the store.
    pub name: String,
    /// Host model that produced it.
    pub model: String,
    /// The vector.
    pub vector: Vec<f32>,
}

/// A plugin's validated output for one title, tags carrying their provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Tags with provenance.
    pub tags: Vec<Tag>,
    /// Named embeddings.
    pub embeddings: Vec<Embedding>,
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("{what} name {name:?} must be 1..={MAX_NAME} bytes"));
    }
    Ok(())
}

impl PluginInfo {
    pub(crate) fn try_from_wit(info: types::PluginInfo) -> Result<Self, String> {
        check_name("plugin", &info.name)?;
        for spec in &info.embeddings {
            check_name("embedding", &spec.name)?;
        }
        Ok(PluginInfo {
            name: info.name,
            version: info.version,
            tags: info.tags,
            embeddings: info
                .embeddings
                .into_iter()
                .map(|e| (e.name, e.model))
                .collect(),
        })
    }
}

impl Analysis {
    pub(crate) fn try_from_wit(
        analysis: types::Analysis,
        info: &PluginInfo,
    ) -> Result<Self, String> {
        if analysis.tags.len() > MAX_TAGS {
            return Err(format!(
                "{} tags; at most {MAX_TAGS} per title",
                analysis.tags.len()
            ));
        }
        if analysis.embeddings.len() > MAX_EMBEDDINGS {
            return Err(format!(
                "{} embeddings; at most {MAX_EMBEDDINGS} per title",
                analysis.embeddings.len()
            ));
        }
        let mut tags = Vec::with_capacity(analysis.tags.len());
        for tag in analysis.tags {
            check_name("tag", &tag.name)?;
            if !(0.0..=1.0).contains(&tag.confidence) {
                return Err(format!(
                    "tag {:?} has confidence {} outside 0..=1",
                    tag.name, tag.confidence
                ));
            }
            if tag.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE) {
                return Err(format!(
                    "tag {:?} has a value over {MAX_VALUE} bytes",
                    tag.name
                ));
            }
            tags.push(Tag {
                name: tag.name,
                value: tag.value,
                confidence: tag.confidence,
                plugin: info.name.clone(),
                plugin_version: info.version.clone(),
            });
        }
        let mut embeddings = Vec::with_capacity(analysis.embeddings.len());
        for e in analysis.embeddings {
            if !info.embeddings.iter().any(|(name, _)| *name == e.name) {
                return Err(format!(
                    "embedding {:?} was not declared by describe()",
                    e.name
                ));
            }
            if e.vector.is_empty() || e.vector.iter().any(|x| !x.is_finite()) {
                return Err(format!(
                    "embedding {:?} is empty or holds NaN/infinity",
                    e.name
                ));
            }
            embeddings.push(Embedding {
                name: e.name,
                model: e.model,
                vector: e.vector,
            });
        }
        Ok(Analysis { tags, embeddings })
    }
}

pub(crate) fn title_to_wit(title: &Title) -> types::Title {
    types::Title {
        id: title.id.clone(),
        name: title.name.clone(),
        synopsis: title.synopsis.clone(),
        year: title.year,
        language: title.language.clone(),
        metadata: title
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        assets: title
            .assets
            .iter()
            .map(|a| types::AssetRef {
                kind: a.kind.clone(),
                uri: a.uri.clone(),
            })
            .collect(),
    }
}

pub(crate) fn plugin_error_parts(error: types::PluginError) -> (&'static str, String) {
    match error {
        types::PluginError::InvalidInput(m) => ("invalid-input", m),
        types::PluginError::Internal(m) => ("internal", m),
        types::PluginError::Model(e) => (
            "model",
            match e {
                types::ModelError::UnknownModel(m) => format!("unknown model: {m}"),
                types::ModelError::Denied(m) => format!("denied: {m}"),
                types::ModelError::InvalidInput(m) => format!("invalid input: {m}"),
                types::ModelError::Failed(m) => format!("failed: {m}"),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "p".into(),
            version: "1.0.0".into(),
            tags: vec![],
            embeddings: vec![("synopsis".into(), "text".into())],
        }
    }

    fn tag(confidence: f32) -> types::Tag {
        types::Tag {
            name: "t".into(),
            value: None,
            confidence,
        }
    }

    #[test]
    fn accepts_valid_output_and_adds_provenance() -> Result<(), String> {
        let raw = types::Analysis {
            tags: vec![tag(0.5)],
            embeddings: vec![types::NamedEmbedding {
                name: "synopsis".into(),
                model: "text".into(),
                vector: vec![0.1, 0.2],
            }],
        };
        let analysis = Analysis::try_from_wit(raw, &info())?;
        assert_eq!(analysis.tags[0].plugin, "p");
        assert_eq!(analysis.tags[0].plugin_version, "1.0.0");
        Ok(())
    }

    #[test]
    fn rejects_bad_confidence_undeclared_and_non_finite_embeddings() {
        let with = |tags, embeddings| {
            Analysis::try_from_wit(types::Analysis { tags, embeddings }, &info())
                .err()
                .unwrap_or_default()
        };
        assert!(with(vec![tag(1.5)], vec![]).contains("outside 0..=1"));
        assert!(with(vec![tag(f32::NAN)], vec![]).contains("outside 0..=1"));
        let emb = |name: &str, v: Vec<f32>| types::NamedEmbedding {
            name: name.into(),
            model: "text".into(),
            vector: v,
        };
        assert!(with(vec![], vec![emb("other", vec![1.0])]).contains("not declared"));
        assert!(with(vec![], vec![emb("synopsis", vec![f32::INFINITY])]).contains("NaN/infinity"));
        assert!(with(vec![], vec![emb("synopsis", vec![])]).contains("empty"));
    }
}
