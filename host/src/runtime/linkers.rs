//! One linker per supported contract line: the capabilities each version's plugins import.

use super::PluginState;
use super::bindings::{v0, v1};
use crate::caps::media::MediaView;
use crate::caps::models::ModelsView;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

/// Contract 1.x: WASI and every capability (`budget` since 1.1; plugins built against 1.0 do
/// not import it).
pub(super) fn linker_v1(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::<PluginState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    v1::types::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
    crate::caps::media::add_to_linker(&mut linker, |s: &mut PluginState| MediaView {
        ctx: &mut s.media,
        table: &mut s.table,
    })?;
    crate::caps::models::add_to_linker_v1(&mut linker, |s: &mut PluginState| ModelsView {
        ctx: &mut s.models,
        table: &mut s.table,
    })?;
    crate::caps::log::add_to_linker_v1(&mut linker, |s: &mut PluginState| &mut s.log)?;
    crate::caps::config::add_to_linker(&mut linker, |s: &mut PluginState| &mut s.config)?;
    crate::caps::budget::add_to_linker(&mut linker, |s: &mut PluginState| &mut s.budget)?;
    Ok(linker)
}

/// Contract 0.1: WASI, text models and log.
pub(super) fn linker_v0(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::<PluginState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    v0::types::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
    crate::caps::models::add_to_linker_v0(&mut linker, |s: &mut PluginState| &mut s.models)?;
    crate::caps::log::add_to_linker_v0(&mut linker, |s: &mut PluginState| &mut s.log)?;
    Ok(linker)
}
