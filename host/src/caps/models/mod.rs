//! The `models` capability: plugins embed text with the host's models.
//!
//! Shared state is the model [`Registry`] (built once); each plugin instance gets a [`ModelsCtx`]
//! that knows which plugin is calling and which models it may use. Permissions and input caps are
//! checked before any model runs.

mod host;

use crate::runtime::bindings::models;
use std::sync::Arc;
use tessera_models::Registry;
use wasmtime::component::{HasData, Linker};

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
    pub allowed: Option<Vec<String>>,
    /// Input caps.
    pub limits: ModelsLimits,
}

struct ModelsData;

impl HasData for ModelsData {
    type Data<'a> = &'a mut ModelsCtx;
}

/// Links the `models` interface, with `get` picking the [`ModelsCtx`] out of the store data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ModelsCtx,
) -> wasmtime::Result<()> {
    models::add_to_linker::<T, ModelsData>(linker, get)
}
