//! `legacy-v0`: a plugin built against contract 0.1 (`wit/v0`), as plugins were before 1.0.
//!
//! It uses `wit-bindgen` directly, not the SDK (which follows the current contract), and is kept
//! so that the host's tests prove that 0.1 plugins still load and run. It tags the catalog
//! language, counts assets (0.1 saw them as plain references), logs, and embeds the synopsis.

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "tagger",
        path: "../../wit/v0",
    });
}

use bindings::Guest;
use bindings::tessera::plugin::types::{
    Analysis, EmbeddingSpec, NamedEmbedding, PluginError, PluginInfo, Tag, Title,
};
use bindings::tessera::plugin::{log, models};

struct Legacy;

impl Guest for Legacy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy-v0".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            tags: vec!["legacy-language".into(), "legacy-assets".into()],
            embeddings: vec![EmbeddingSpec {
                name: "legacy-synopsis".into(),
                model: "text".into(),
            }],
        }
    }

    fn analyze(title: Title) -> Result<Analysis, PluginError> {
        log::log(log::Level::Info, "legacy plugin analysing");
        let vector = models::embed_text("text", std::slice::from_ref(&title.synopsis))
            .map_err(PluginError::Model)?
            .pop()
            .ok_or_else(|| PluginError::Internal("no vector".into()))?;
        let tag = |name: &str, value: String| Tag {
            name: name.into(),
            value: Some(value),
            confidence: 1.0,
        };
        Ok(Analysis {
            tags: vec![
                tag("legacy-language", title.language.clone()),
                tag("legacy-assets", title.assets.len().to_string()),
            ],
            embeddings: vec![NamedEmbedding {
                name: "legacy-synopsis".into(),
                model: "text".into(),
                vector,
            }],
        })
    }
}

bindings::export!(Legacy with_types_in bindings);
