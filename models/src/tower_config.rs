//! Reading one tower's config out of a two-tower checkpoint (CLIP, SigLIP): the tower's
//! sub-config (`vision_config`, `text_config`) of the full model's config.json, or the whole file
//! when the directory holds that tower alone (`clip_vision_model`, `siglip_text_model`, …).

use crate::ModelError;
use crate::text::read_model_config;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A tower's config with what the top level adds to it.
#[derive(Debug)]
pub(crate) struct TowerConfig<T> {
    /// The tower's own fields.
    pub fields: T,
    /// `projection_dim` from the top level, when the full model sets it there.
    pub projection_dim: Option<usize>,
    /// Whether the directory holds one of Tessera's tiny random-weight models.
    pub tiny: bool,
    /// The config file, for errors.
    pub path: PathBuf,
}

impl<T> TowerConfig<T> {
    /// An error about this config.
    pub fn error(&self, reason: String) -> ModelError {
        ModelError::Config {
            path: self.path.clone(),
            reason,
        }
    }
}

/// Reads `dir/config.json`: `key` of a `full` model, or the whole file of a `tower` model;
/// `what` ("image model") names the tower in errors.
pub(crate) fn read_tower_config<T: DeserializeOwned>(
    dir: &Path,
    [full, tower, key]: [&str; 3],
    what: &str,
) -> Result<TowerConfig<T>, ModelError> {
    let path = dir.join("config.json");
    let bad = |reason: String| ModelError::Config {
        path: path.clone(),
        reason,
    };
    let mut value: serde_json::Value = read_model_config(&path)?;
    let model_type = value
        .get("model_type")
        .and_then(|t| t.as_str())
        .map(str::to_string);
    let projection_dim = value
        .get("projection_dim")
        .and_then(serde_json::Value::as_u64)
        .map(|p| p as usize);
    let tiny = value
        .get("tessera_tiny")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let tower_value = match model_type.as_deref() {
        Some(t) if t == full => value
            .get_mut(key)
            .map(serde_json::Value::take)
            .ok_or_else(|| bad(format!("a {full} config without {key}")))?,
        Some(t) if t == tower => value,
        other => {
            let found = other.map_or("(missing)".to_string(), |t| format!("{t:?}"));
            return Err(bad(format!(
                "model_type {found} is not a supported {what} (supported: {full}, {tower})"
            )));
        }
    };
    let fields = serde_json::from_value(tower_value).map_err(|e| bad(format!("{key}: {e}")))?;
    Ok(TowerConfig {
        fields,
        projection_dim,
        tiny,
        path,
    })
}

/// One tower's config out of a published config.json in `tests/data/published` (`name` without
/// `.config.json`), read as [`read_tower_config`] reads a model directory's.
#[cfg(test)]
pub(crate) fn read_published<T: DeserializeOwned>(
    name: &str,
    keys: [&str; 3],
    what: &str,
) -> Result<TowerConfig<T>, Box<dyn std::error::Error>> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/published")
        .join(format!("{name}.config.json"));
    let dir = tempfile::tempdir()?;
    std::fs::copy(source, dir.path().join("config.json"))?;
    Ok(read_tower_config(dir.path(), keys, what)?)
}
