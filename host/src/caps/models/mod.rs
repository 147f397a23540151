//! The `models` capability: plugins embed text, images and audio with the host's models and
//! score zero-shot labels.
//!
//! Shared state is the model [`Registry`] (built once); each plugin instance gets a [`ModelsCtx`]
//! that knows which plugin is calling and which models it may use. Permissions and input caps are
//! checked before any model runs. [`v1`] implements contract 1.x, [`v0`] the text-only 0.1.
//!
//! The model functions are async: a call submits to the model's batching queue and awaits its
//! batch, so a plugin waiting on a model holds no thread (decoding and preprocessing, which are
//! CPU work, run on the caller).

mod v0;
mod v1;

pub(crate) use v1::model_error;

use crate::caps::media::MediaLimits;
use crate::runtime::bindings::v1::types::ModelError;
use std::sync::Arc;
use tessera_models::Registry;
use wasmtime::component::{HasData, Linker, ResourceTable};

/// Caps on what one `embed-text` call may ask for, so a plugin cannot make the host allocate
/// without bound.
#[derive(Debug, Clone)]
pub struct ModelsLimits {
    /// Texts per call.
    pub max_texts: usize,
    /// Bytes of text per call, all texts together.
    pub max_bytes: usize,
}

impl Default for ModelsLimits {
    fn default() -> Self {
        ModelsLimits {
            max_texts: 256,
            max_bytes: 1 << 20,
        }
    }
}

/// Per-instance state of the models capability.
#[derive(Debug, Clone)]
pub struct ModelsCtx {
    /// The calling plugin, for errors and logs.
    pub plugin: String,
    /// Loaded models.
    pub registry: Arc<Registry>,
    /// Model names the plugin may call; `None` allows every loaded model.
    pub allowed: Option<Arc<Vec<String>>>,
    /// Input caps.
    pub limits: ModelsLimits,
    /// Decoding limits for the assets handed to image and audio models.
    pub media: MediaLimits,
    /// Model calls this instance made and the time they took (for the call's span and stats).
    pub usage: ModelUsage,
    /// The title's decoded assets, shared with the other plugins that run on it.
    pub decoded: std::sync::Arc<crate::caps::media::Decoded>,
}

/// Model calls made by one plugin instance.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModelUsage {
    /// Calls made (any outcome).
    pub calls: u32,
    /// Time spent in them, waiting for batches included.
    pub busy: std::time::Duration,
}

impl ModelUsage {
    /// Counts one call that started at `start`.
    pub(crate) fn record(&mut self, start: std::time::Instant) {
        self.calls += 1;
        self.busy += start.elapsed();
    }
}

impl ModelsCtx {
    /// Refuses a model outside the plugin's allowed list.
    pub(crate) fn check_allowed(&self, model: &str) -> Result<(), ModelError> {
        match &self.allowed {
            Some(allowed) if !allowed.iter().any(|m| m == model) => {
                Err(ModelError::Denied(format!(
                    "plugin {} may not call model {model:?}; its manifest allows: {}",
                    self.plugin,
                    allowed.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }

    fn unknown(&self, modality: &str, model: &str, loaded: Vec<String>) -> ModelError {
        ModelError::UnknownModel(format!(
            "no {modality} model {model:?} is loaded; {modality} models: {}",
            if loaded.is_empty() {
                "none".to_string()
            } else {
                loaded.join(", ")
            }
        ))
    }
}

/// What the 1.x models functions see: their state and the store's resource table, where the
/// asset handles they take live.
#[derive(Debug)]
pub struct ModelsView<'a> {
    /// The capability's state.
    pub ctx: &'a mut ModelsCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// `embed-text`, shared by both contract versions: permission, model, caps, then the model,
/// whose batch is awaited without holding a thread.
pub(crate) async fn embed_text(
    ctx: &ModelsCtx,
    model: &str,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, ModelError> {
    ctx.check_allowed(model)?;
    let Some(encoder) = ctx.registry.text(model) else {
        return Err(ModelError::UnknownModel(format!(
            "no text model {model:?} is loaded; loaded: {}",
            ctx.registry.text_names().join(", ")
        )));
    };
    if texts.len() > ctx.limits.max_texts {
        return Err(ModelError::InvalidInput(format!(
            "{} texts in one call; the limit is {}",
            texts.len(),
            ctx.limits.max_texts
        )));
    }
    let bytes: usize = texts.iter().map(String::len).sum();
    if bytes > ctx.limits.max_bytes {
        return Err(ModelError::InvalidInput(format!(
            "{bytes} bytes of text in one call; the limit is {}",
            ctx.limits.max_bytes
        )));
    }
    encoder.submit(texts).outcome().await.map_err(model_error)
}

struct ModelsV0;

impl HasData for ModelsV0 {
    type Data<'a> = &'a mut ModelsCtx;
}

struct ModelsV1;

impl HasData for ModelsV1 {
    type Data<'a> = ModelsView<'a>;
}

/// Links contract 0.1's `models` interface, with `get` picking the [`ModelsCtx`] out of the
/// store data.
pub fn add_to_linker_v0<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ModelsCtx,
) -> wasmtime::Result<()> {
    crate::runtime::bindings::v0::models::add_to_linker::<T, ModelsV0>(linker, get)
}

/// Links contract 1.x's `models` interface, with `get` building a [`ModelsView`].
pub fn add_to_linker_v1<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> ModelsView<'_>,
) -> wasmtime::Result<()> {
    crate::runtime::bindings::v1::models::add_to_linker::<T, ModelsV1>(linker, get)
}
