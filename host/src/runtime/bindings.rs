//! The `bindgen!` output for `wit/`, generated once, here. Callers use the re-exports below, never
//! the generated modules directly, so a future second WIT version can sit beside this one.

mod generated {
    wasmtime::component::bindgen!({
        world: "tagger",
        path: "../wit",
    });
}

pub use generated::tessera::plugin::{log, models, types};
pub use generated::{Tagger, TaggerPre};
