//! The Tessera plugin SDK: everything a plugin author needs to write a tagger in a few dozen lines.
//!
//! A plugin is a `cdylib` crate compiled for `wasm32-wasip2`. It implements [`Plugin`] (two
//! functions: `describe` and `analyze`) and calls [`export_plugin!`] once:
//!
//! ```ignore
//! use tessera_plugin_sdk::{export_plugin, models, Analysis, Input, Plugin, PluginError, PluginInfo, Title};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("hello", env!("CARGO_PKG_VERSION")).with_tags(&["greeting"])
//!     }
//!     fn analyze(title: Title, input: Input) -> Result<Analysis, PluginError> {
//!         let vector = models::embed_one("text", &title.synopsis)?;
//!         Ok(Analysis::new().tag("greeting", Some("hello"), 1.0).embedding("synopsis", "text", vector))
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! The SDK wraps the `wit-bindgen` output of `wit/v1` (the `tessera:plugin@1` contract) the way
//! the host wraps `bindgen!`: authors use the re-exported types and the helpers below, and rarely
//! see the generated modules. It adds no dependency besides `wit-bindgen`, so plugins stay small.
//!
//! What it must not do: hide host errors (every model and media error reaches the plugin as a
//! value it can handle), or do work behind the plugin's back (no hidden model calls, no global
//! state).
#![deny(missing_docs)]

/// The raw `wit-bindgen` output for the `tagger` world. Prefer the re-exports at the crate root.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "tagger",
        path: "../../wit/v1",
        pub_export_macro: true,
        export_macro_name: "__export_tagger",
        default_bindings_module: "tessera_plugin_sdk::bindings",
    });
}

pub use bindings::tessera::plugin::media::{Asset, RgbImage};
pub use bindings::tessera::plugin::types::{
    Analysis, MediaError, MediaKind, Modality, ModelError, ModelInfo, NamedEmbedding, OutputSpec,
    PluginError, PluginInfo, PriorTag, Tag, TimeSpan, Title, TokenSequence,
};

/// A tagger: what a plugin implements.
pub trait Plugin {
    /// Describes the plugin: name, version, what it produces, whose tags it reads.
    fn describe() -> PluginInfo;
    /// Analyses one title, with its media and the tags of the plugins it reads.
    fn analyze(title: Title, input: Input) -> Result<Analysis, PluginError>;
}

/// What a plugin gets besides the title: handles to its media assets and the tags that the
/// plugins named in [`PluginInfo::after`] produced for it.
pub struct Input {
    /// The title's assets, in catalog order. Nothing is read until a method asks.
    pub assets: Vec<Asset>,
    /// Tags from earlier plugins (only those the plugin declared in `after`).
    pub prior_tags: Vec<PriorTag>,
}

impl Input {
    #[doc(hidden)]
    pub fn new(assets: Vec<Asset>, prior_tags: Vec<PriorTag>) -> Self {
        Input { assets, prior_tags }
    }

    /// The first asset with catalog role `role` (`poster`, `trailer`, ...).
    pub fn asset(&self, role: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.role() == role)
    }

    /// Every asset holding `kind` of media.
    pub fn assets_of(&self, kind: MediaKind) -> impl Iterator<Item = &Asset> {
        self.assets.iter().filter(move |a| a.media_kind() == kind)
    }

    /// Earlier plugins' tags named `name`.
    pub fn prior(&self, name: &str) -> impl Iterator<Item = &PriorTag> {
        self.prior_tags.iter().filter(move |t| t.tag.name == name)
    }
}

/// Exports a type implementing [`Plugin`] as the component's `tagger` world.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident) => {
        struct __TesseraExport;

        impl $crate::bindings::Guest for __TesseraExport {
            fn describe() -> $crate::PluginInfo {
                <$plugin as $crate::Plugin>::describe()
            }
            fn analyze(
                title: $crate::Title,
                assets: ::std::vec::Vec<$crate::Asset>,
                prior_tags: ::std::vec::Vec<$crate::PriorTag>,
            ) -> ::std::result::Result<$crate::Analysis, $crate::PluginError> {
                <$plugin as $crate::Plugin>::analyze(title, $crate::Input::new(assets, prior_tags))
            }
        }

        $crate::bindings::__export_tagger!(__TesseraExport with_types_in $crate::bindings);
    };
}

/// The host's models.
pub mod models {
    use crate::bindings::tessera::plugin::models as raw;
    use crate::{Asset, ModelError, ModelInfo};
    pub use raw::{AudioEmbedding, AudioOptions, AudioWindow, LabelScore, ZeroShotLabel};

    /// Name under which the host serves its default text encoder.
    pub const DEFAULT_TEXT: &str = "text";

    /// The models this plugin may call.
    pub fn list() -> Vec<ModelInfo> {
        raw::list_models()
    }

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

    /// Embeds an image asset with the image model `model`.
    pub fn embed_image(model: &str, image: &Asset) -> Result<Vec<f32>, ModelError> {
        raw::embed_image(model, image)
    }

    /// Embeds an audio asset with `model`: the clip's vector, and with `windows` one vector per
    /// 30 s window with its time span.
    pub fn embed_audio(
        model: &str,
        audio: &Asset,
        windows: bool,
        max_seconds: Option<f32>,
    ) -> Result<AudioEmbedding, ModelError> {
        raw::embed_audio(
            model,
            audio,
            AudioOptions {
                windows,
                max_seconds,
            },
        )
    }

    /// Scores a text against `labels` (name, prompts) with the two-tower model `model`, best
    /// first.
    pub fn zero_shot_text(
        model: &str,
        text: &str,
        labels: &[ZeroShotLabel],
    ) -> Result<Vec<LabelScore>, ModelError> {
        raw::zero_shot(model, &raw::ZeroShotInput::Text(text.to_string()), labels)
    }

    /// Scores an image asset against `labels` with the two-tower model `model`, best first.
    pub fn zero_shot_image(
        model: &str,
        image: &Asset,
        labels: &[ZeroShotLabel],
    ) -> Result<Vec<LabelScore>, ModelError> {
        raw::zero_shot(model, &raw::ZeroShotInput::Image(image), labels)
    }

    /// A zero-shot label from a name and its prompts.
    pub fn label(name: &str, prompts: &[&str]) -> ZeroShotLabel {
        ZeroShotLabel {
            name: name.to_string(),
            prompts: prompts.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// A zero-shot label from a name and prompts separated by `|`, as manifests write them
    /// (`"a horror film | a frightening scene"`); empty prompts are dropped.
    pub fn label_from(name: &str, prompts: &str) -> ZeroShotLabel {
        ZeroShotLabel {
            name: name.to_string(),
            prompts: prompts
                .split('|')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The plugin's configuration: the `[config]` table of its manifest.
pub mod config {
    use crate::bindings::tessera::plugin::config as raw;

    /// The value of `key`, if set.
    pub fn get(key: &str) -> Option<String> {
        raw::get(key)
    }

    /// Every key and value, sorted by key.
    pub fn all() -> Vec<(String, String)> {
        raw::all()
    }

    /// The value of `key` parsed as `T`, `default` when unset; a value that does not parse is
    /// an `invalid-input` error naming the key.
    pub fn parse<T: std::str::FromStr>(key: &str, default: T) -> Result<T, crate::PluginError> {
        match raw::get(key) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|_| {
                crate::PluginError::InvalidInput(format!(
                    "config {key} = {value:?} is not a valid {}",
                    std::any::type_name::<T>()
                ))
            }),
        }
    }
}

/// What is left of the current call's time (contract 1.1): a plugin with long work checks it
/// between steps and answers with what it has before the host stops it at its deadline.
pub mod budget {
    use crate::bindings::tessera::plugin::budget as raw;

    /// Time until the call's deadline (zero once it has passed).
    pub fn time_left() -> std::time::Duration {
        std::time::Duration::from_millis(raw::time_left_ms())
    }
}

/// Logging into the host's log, attributed to the plugin and the current title.
pub mod log {
    use crate::bindings::tessera::plugin::log as raw;
    pub use raw::Level;

    /// Logs `message` at `level` with key/value `fields`.
    pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        raw::log(level, message, &fields);
    }
    /// Logs at debug level.
    pub fn debug(message: &str) {
        raw::log(Level::Debug, message, &[]);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        raw::log(Level::Info, message, &[]);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        raw::log(Level::Warn, message, &[]);
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
            token_sequences: Vec::new(),
            after: Vec::new(),
        }
    }

    /// Declares the tag names the plugin may produce.
    pub fn with_tags(mut self, tags: &[&str]) -> Self {
        self.tags.extend(tags.iter().map(|t| t.to_string()));
        self
    }

    /// Declares an embedding output `name`, computed with host model `model` (`clip:image` or
    /// `clip:text` for a model serving both). The store names the vector after the model and
    /// its revision (`text/all-MiniLM-L6-v2@c9745ed1d9f2`); `name` labels the output.
    pub fn with_embedding(mut self, name: &str, model: &str) -> Self {
        self.embeddings.push(OutputSpec {
            name: name.to_string(),
            model: model.to_string(),
        });
        self
    }

    /// Declares a token sequence output `name` (stored as a multivector named after `model`, with
    /// `/tokens`), computed with `model`.
    pub fn with_token_sequence(mut self, name: &str, model: &str) -> Self {
        self.token_sequences.push(OutputSpec {
            name: name.to_string(),
            model: model.to_string(),
        });
        self
    }

    /// Declares that this plugin reads the tags of `plugin`, which then runs first.
    pub fn after(mut self, plugin: &str) -> Self {
        self.after.push(plugin.to_string());
        self
    }
}

impl Analysis {
    /// An empty analysis: no tags, no embeddings, no token sequences.
    pub fn new() -> Self {
        Analysis {
            tags: Vec::new(),
            embeddings: Vec::new(),
            token_sequences: Vec::new(),
        }
    }

    /// Adds a tag for the whole title. `confidence` must lie in 0..=1; the host rejects the
    /// analysis otherwise.
    pub fn tag(self, name: &str, value: Option<&str>, confidence: f32) -> Self {
        self.tag_with(name, value, confidence, None, None)
    }

    /// Adds a tag with an optional time span (seconds into an audio or video asset) and the
    /// evidence for it.
    pub fn tag_with(
        mut self,
        name: &str,
        value: Option<&str>,
        confidence: f32,
        span: Option<TimeSpan>,
        evidence: Option<&str>,
    ) -> Self {
        self.tags.push(Tag {
            name: name.to_string(),
            value: value.map(str::to_string),
            confidence,
            span,
            evidence: evidence.map(str::to_string),
        });
        self
    }

    /// Adds the embedding output `name`; `model` must be the one declared for it.
    pub fn embedding(mut self, name: &str, model: &str, vector: Vec<f32>) -> Self {
        self.embeddings.push(NamedEmbedding {
            name: name.to_string(),
            model: model.to_string(),
            vector,
        });
        self
    }

    /// Adds the token sequence output `name`; `model` must be the one declared for it.
    pub fn token_sequence(mut self, name: &str, model: &str, vectors: Vec<Vec<f32>>) -> Self {
        self.token_sequences.push(TokenSequence {
            name: name.to_string(),
            model: model.to_string(),
            vectors,
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

impl From<MediaError> for PluginError {
    fn from(error: MediaError) -> Self {
        PluginError::Media(error)
    }
}
