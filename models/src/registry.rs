//! Loaded models, addressed by name.

use crate::TextEmbedder;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The models a host has loaded. Built once at startup and shared (`Arc`) by every plugin call.
/// Several names may point at one model (e.g. `text` as an alias of `all-MiniLM-L6-v2`).
#[derive(Debug, Default)]
pub struct Registry {
    text: BTreeMap<String, Arc<dyn TextEmbedder>>,
}

impl Registry {
    /// Registers `model` under `name`, replacing any model of that name.
    pub fn insert_text(&mut self, name: &str, model: Arc<dyn TextEmbedder>) {
        self.text.insert(name.to_string(), model);
    }

    /// The text model called `name`.
    pub fn text(&self, name: &str) -> Option<Arc<dyn TextEmbedder>> {
        self.text.get(name).cloned()
    }

    /// Names of the text models, sorted.
    pub fn text_names(&self) -> Vec<String> {
        self.text.keys().cloned().collect()
    }
}
