//! Loading plugin files the way every command does: a manifest (`x.toml`) or a component
//! (`x.wasm`, governed by `x.toml` when one sits beside it).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera::manifest::{self, PluginManifest};
use tessera::runtime::{Plugin, PluginHost};

/// Loads the plugin at `path`. With a manifest, the component's sha256 is checked before it is
/// compiled, its settings (allowed models, limits, config) apply, and the loaded plugin must match
/// the manifest's name, version and contract. Without one, every model is allowed and the host's
/// limits apply, and a warning says so.
pub fn plugin(host: &Arc<PluginHost>, path: &Path) -> anyhow::Result<Plugin> {
    let is_manifest = path.extension().is_some_and(|e| e == "toml");
    let manifest_path: Option<PathBuf> = if is_manifest {
        Some(path.to_path_buf())
    } else {
        Some(manifest::path_for(path)).filter(|m| m.exists())
    };
    let Some(manifest_path) = manifest_path else {
        tracing::warn!(
            plugin = %path.display(),
            "no manifest beside the component: it may call every loaded model and gets the host's \
             limits (`tessera plugin manifest` writes one)"
        );
        let bytes =
            std::fs::read(path).with_context(|| format!("reading plugin {}", path.display()))?;
        return Ok(host.load(&path.display().to_string(), &bytes)?);
    };
    let manifest = PluginManifest::read(&manifest_path)?;
    let component = manifest.component_path(&manifest_path);
    if !is_manifest && component != path {
        bail!(
            "{} names the component {}, not {}",
            manifest_path.display(),
            component.display(),
            path.display()
        );
    }
    let bytes = manifest.read_component(&manifest_path)?;
    let plugin = host.load_with(
        &component.display().to_string(),
        &bytes,
        manifest.settings(),
    )?;
    manifest.check(&manifest_path, &plugin)?;
    tracing::info!(
        plugin = %plugin.info().name,
        manifest = %manifest_path.display(),
        models = %manifest.models.join(","),
        "loaded with its manifest"
    );
    Ok(plugin)
}
