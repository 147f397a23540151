//! `legacy-v1-0`: a plugin built against contract 1.0.0, as plugins were before 1.1 added
//! `budget`.
//!
//! It is generated from `wit/tessera-plugin.wit` beside it: the 1.0.0 contract as released,
//! frozen (the host's tests check that it is `wit/v1` without the items marked
//! `@since(version = 1.1.0)`, so 1.1 only added). It uses `wit-bindgen` directly, not the SDK
//! (which follows the current contract), and is kept so that the host's tests prove that 1.0
//! plugins still load and run on a 1.1 host. It reads config, looks at its assets through the
//! media resources, logs, and embeds the synopsis.

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "tagger",
        path: "wit",
    });
}

use bindings::Guest;
use bindings::tessera::plugin::media::Asset;
use bindings::tessera::plugin::types::{
    Analysis, NamedEmbedding, OutputSpec, PluginError, PluginInfo, PriorTag, Tag, Title,
};
use bindings::tessera::plugin::{config, log, models};

struct Legacy;

impl Guest for Legacy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy-v1-0".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            tags: vec!["legacy10-assets".into(), "legacy10-greeting".into()],
            embeddings: vec![OutputSpec {
                name: "legacy10-synopsis".into(),
                model: "text".into(),
            }],
            token_sequences: vec![],
            after: vec![],
        }
    }

    fn analyze(
        title: Title,
        assets: Vec<Asset>,
        _prior: Vec<PriorTag>,
    ) -> Result<Analysis, PluginError> {
        log::log(log::Level::Info, "1.0 plugin analysing", &[]);
        let vector = models::embed_text("text", std::slice::from_ref(&title.synopsis))
            .map_err(PluginError::Model)?
            .pop()
            .ok_or_else(|| PluginError::Internal("no vector".into()))?;
        let tag = |name: &str, value: String| Tag {
            name: name.into(),
            value: Some(value),
            confidence: 1.0,
            span: None,
            evidence: None,
        };
        let roles: Vec<String> = assets.iter().map(|a| a.role()).collect();
        let greeting = config::get("greeting").unwrap_or_else(|| "hello".into());
        Ok(Analysis {
            tags: vec![
                tag("legacy10-assets", roles.join(",")),
                tag("legacy10-greeting", greeting),
            ],
            embeddings: vec![NamedEmbedding {
                name: "legacy10-synopsis".into(),
                model: "text".into(),
                vector,
            }],
            token_sequences: vec![],
        })
    }
}

bindings::export!(Legacy with_types_in bindings);
