//! The on-disk cache of compiled components: a plugin is compiled once per machine, not once
//! per run. Entries are keyed by the component's sha256 and the engine's compatibility hash
//! (wasmtime version and settings), written atomically, and a bad entry is recompiled.

use super::PluginError;
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiles `bytes`, or loads the compiled artifact from the cache. A cache that cannot be
/// read or written costs a compile and a warning, never a failed load.
pub(super) fn compile(
    engine: &Engine,
    cache: Option<&Path>,
    source: &str,
    bytes: &[u8],
) -> Result<Component, PluginError> {
    let compile = || {
        Component::from_binary(engine, bytes).map_err(|e| PluginError::Load {
            plugin: source.to_string(),
            reason: format!("{e:#}"),
        })
    };
    let Some(dir) = cache else {
        return compile();
    };
    let engine_hash = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.finish()
    };
    let key = format!("{}-{engine_hash:016x}", crate::manifest::sha256_hex(bytes));
    let path = dir.join(format!("{key}.cwasm"));
    // Read into memory rather than mapping the file: a mapped artifact that someone truncates
    // while the host runs would crash it (SIGBUS); a copy cannot be pulled from under it.
    if let Ok(artifact) = std::fs::read(&path) {
        // SAFETY: entries are written only by `serialize` below, under a name that includes the
        // source's sha256 and the engine's compatibility hash, into a directory that belongs to
        // this host; wasmtime also checks the artifact's header and refuses one from another
        // version or configuration.
        #[allow(unsafe_code)]
        let cached = unsafe { Component::deserialize(engine, &artifact) };
        match cached {
            Ok(component) => {
                tracing::debug!(plugin = source, cache = %path.display(), "compiled component loaded from the cache");
                return Ok(component);
            }
            Err(e) => {
                tracing::warn!(plugin = source, cache = %path.display(), error = %format!("{e:#}"), "ignoring an unusable compile-cache entry")
            }
        }
    }
    let component = compile()?;
    let stored = component
        .serialize()
        .map_err(|e| e.to_string())
        .and_then(|artifact| {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            // Write then rename, so a reader never sees half an artifact.
            let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, artifact).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
        });
    if let Err(e) = stored {
        tracing::warn!(plugin = source, cache = %dir.display(), error = %e, "cannot write the compile cache; the plugin will be compiled again next run");
    }
    Ok(component)
}
