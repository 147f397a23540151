//! The `bindgen!` output for each contract major the host supports, generated once, here:
//! [`v1`] (`wit/v1`, the current contract) and [`v0`] (`wit/v0`, kept so that plugins built
//! against 0.1 keep working). Callers use these modules, never `bindgen!` elsewhere.

/// `tessera:plugin@1.x` (wit/v1): media resources, image/audio/zero-shot models, config, chaining;
/// since 1.1, the call's time budget. Plugins built against 1.0 link to the same bindings.
pub mod v1 {
    mod generated {
        wasmtime::component::bindgen!({
            world: "tagger",
            path: "../wit/v1",
            with: {
                "tessera:plugin/media.asset": crate::caps::media::Asset,
            },
            // Model calls wait for batches: async, so a waiting plugin holds no thread. The
            // other imports answer at once and stay plain functions.
            imports: { "tessera:plugin/models": async },
            exports: { default: async },
        });
    }

    pub use generated::tessera::plugin::{budget, config, log, media, models, types};
    pub use generated::{Tagger, TaggerPre};

    /// The contract version these bindings were generated from (wit/v1's package version).
    pub const VERSION: semver::Version = semver::Version::new(1, 1, 0);
}

/// `tessera:plugin@0.1.x` (wit/v0): the first contract, text models and log only.
pub mod v0 {
    mod generated {
        wasmtime::component::bindgen!({
            world: "tagger",
            path: "../wit/v0",
            imports: { "tessera:plugin/models": async },
            exports: { default: async },
        });
    }

    pub use generated::tessera::plugin::{log, models, types};
    pub use generated::{Tagger, TaggerPre};

    /// The contract version these bindings were generated from (wit/v0's package version).
    pub const VERSION: semver::Version = semver::Version::new(0, 1, 0);
}
