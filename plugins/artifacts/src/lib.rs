//! Tessera's guest plugins, compiled for wasm32-wasip2 by this crate's build script.
//!
//! The host uses [`SYNOPSIS_EMBEDDER_WASM`] for `tessera demo`; tests load components from the
//! path constants and use [`foreach_plugin!`] so that every plugin has a test. When the guest build
//! failed (most often: the wasm32-wasip2 target is not installed), [`component`] returns the
//! compiler's message instead of a confusing "file not found" later.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// Reads a built plugin component by name (`synopsis-embedder`, `sandbox-probe`).
pub fn component(name: &str) -> Result<Vec<u8>, String> {
    if let Some(error) = BUILD_ERROR {
        return Err(error.to_string());
    }
    let (_, path) = ALL.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        format!(
            "no plugin named {name:?} is built here; known: {:?}",
            ALL.iter().map(|(n, _)| n).collect::<Vec<_>>()
        )
    })?;
    std::fs::read(path).map_err(|e| format!("cannot read plugin {name} at {path}: {e}"))
}
