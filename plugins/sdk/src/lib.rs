//! The Tessera plugin SDK: everything a plugin author needs to write a tagger in a few dozen lines.
//!
//! A plugin is a `cdylib` crate compiled for `wasm32-wasip2`. It implements [`Plugin`] (two
//! functions: `describe` and `analyze`) and calls [`export_plugin!`] once:
//!
//! ```ignore
//! use tessera_plugin_sdk::{export_plugin, models, Analysis, Plugin, PluginError, PluginInfo, Title};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("hello", env!("CARGO_PKG_VERSION")).with_tags(&["greeting"])
//!     }
//!     fn analyze(title: Title) -> Result<Analysis, PluginError> {
//!         let vector = models::embed_one("text", &title.synopsis)?;
//!         Ok(Analysis::new().tag("greeting", Some("hello"), 1.0).embedding("synopsis", "text", vector))
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! The SDK wraps the `wit-bindgen` output of `wit/` (the `tessera:plugin` package) the way the host
//! wraps `bindgen!`: authors use the re-exported types and the helpers below, and rarely see the
//! generated modules. It adds no dependency besides `wit-bindgen`, so plugins stay small.
//!
//! What it must not do: hide host errors (every model error reaches the plugin as a value it can
//! handle), or do work behind the plugin's back (no hidden model calls, no global state).
#![deny(missing_docs)]

/// The raw `wit-bindgen` output for the `tagger` world. Prefer the re-exports at the crate root.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "tagger",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_tagger",
        default_bindings_module: "tessera_plugin_sdk::bindings",
    });
}

pub use bindings::Guest as Plugin;
pub use bindings::tessera::plugin::types::{
    Analysis, AssetRef, EmbeddingSpec, ModelError, NamedEmbedding, PluginError, PluginInfo, Tag,
    Title,
};

/// Exports a type implementing [`Plugin`] as the component's `tagger` world.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident) => {
        $crate::bindings::__export_tagger!($plugin with_types_in $crate::bindings);
    };
}

/// The host's models.
pub mod models {
    use crate::ModelError;
    use crate::bindings::tessera::plugin::models as raw;

    /// Name under which the host serves its default text encoder.
    pub const DEFAULT_TEXT: &str = "text";

    /// Embeds every text with `model`, one vector per text, in order.
    pub fn embed_text(model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        raw::embed_text(model, texts)
    }

    /// Embeds a single text with `model`.
    pub fn embed_one(model: &str, text: &str) -> Result<Vec<f32>, ModelError> {
        let mut vectors = raw::embed_text(model, &[text.to_string()])?;
        match vectors.pop() {
            Some(v) if vectors.is_empty() => Ok(v),
            _ => Err(ModelError::Failed(format!(
                "model {model} returned a different number of vectors than texts"
            ))),
        }
    }
}

/// Logging into the host's log, attributed to the plugin and the current title.
pub mod log {
    use crate::bindings::tessera::plugin::log as raw;
    pub use raw::Level;

    /// Logs `message` at `level`.
    pub fn log(level: Level, message: &str) {
        raw::log(level, message);
    }
    /// Logs at debug level.
    pub fn debug(message: &str) {
        raw::log(Level::Debug, message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        raw::log(Level::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        raw::log(Level::Warn, message);
    }
}

impl Title {
    /// The value of metadata key `key`, if the catalog gave one.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl PluginInfo {
    /// A plugin description with a name and version that produces nothing yet.
    pub fn new(name: &str, version: &str) -> Self {
        PluginInfo {
            name: name.to_string(),
            version: version.to_string(),
            tags: Vec::new(),
            embeddings: Vec::new(),
        }
    }

    /// Declares the tag names the plugin may produce.
    pub fn with_tags(mut self, tags: &[&str]) -> Self {
        self.tags.extend(tags.iter().map(|t| t.to_string()));
        self
    }

    /// Declares an embedding stored as `name`, computed with host model `model`.
    pub fn with_embedding(mut self, name: &str, model: &str) -> Self {
        self.embeddings.push(EmbeddingSpec {
            name: name.to_string(),
            model: model.to_string(),
        });
        self
    }
}

impl Analysis {
    /// An empty analysis: no tags, no embeddings.
    pub fn new() -> Self {
        Analysis {
            tags: Vec::new(),
            embeddings: Vec::new(),
        }
    }

    /// Adds a tag. `confidence` must lie in 0..=1; the host rejects the analysis otherwise.
    pub fn tag(mut self, name: &str, value: Option<&str>, confidence: f32) -> Self {
        self.tags.push(Tag {
            name: name.to_string(),
            value: value.map(str::to_string),
            confidence,
        });
        self
    }

    /// Adds an embedding stored as `name`, computed with host model `model`.
    pub fn embedding(mut self, name: &str, model: &str, vector: Vec<f32>) -> Self {
        self.embeddings.push(NamedEmbedding {
            name: name.to_string(),
            model: model.to_string(),
            vector,
        });
        self
    }
}

impl Default for Analysis {
    fn default() -> Self {
        Self::new()
    }
}

impl From<ModelError> for PluginError {
    fn from(error: ModelError) -> Self {
        PluginError::Model(error)
    }
}
