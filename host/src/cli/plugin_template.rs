//! The files `tessera plugin new` writes: a tagger plugin crate that builds as it is.

/// Cargo.toml; `{name}` and `{sdk}` are filled in.
pub const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A plugin is its own workspace: it builds for wasm32-wasip2 only (`tessera plugin build`).
[workspace]

[lib]
crate-type = ["cdylib"]

[dependencies]
tessera-plugin-sdk = { path = "{sdk}" }

[profile.release]
opt-level = "s"
debug = false
strip = "debuginfo"
panic = "unwind"
"#;

/// src/lib.rs; `{name}` is filled in.
pub const LIB_RS: &str = r#"//! `{name}`: a Tessera tagger plugin.
//!
//! `describe` declares what the plugin produces; `analyze` runs once per title, in a fresh
//! sandboxed instance, and may call the host's models. Build with `tessera plugin build`, look at
//! the result with `tessera plugin inspect`, run it on a catalog with `tessera ingest --plugin`.

use tessera_plugin_sdk::{
    Analysis, Input, MediaKind, Plugin, PluginError, PluginInfo, Title, export_plugin, log, models,
};

struct Tagger;

/// The name of the vector this plugin stores.
const EMBEDDING: &str = "synopsis";

impl Plugin for Tagger {
    fn describe() -> PluginInfo {
        PluginInfo::new("{name}", env!("CARGO_PKG_VERSION"))
            .with_tags(&["synopsis-words", "poster-shape"])
            .with_embedding(EMBEDDING, models::DEFAULT_TEXT)
    }

    // `input.assets` holds handles to the title's media (posters, trailers, subtitles): ask them
    // for what you need (`image_size`, `thumbnail`, `text`) or hand them to `models::embed_image`
    // and `models::embed_audio`. Nothing is read until you ask.
    fn analyze(title: Title, input: Input) -> Result<Analysis, PluginError> {
        let mut analysis = Analysis::new();
        let synopsis = title.synopsis.trim();
        if synopsis.is_empty() {
            log::warn("no synopsis; nothing to embed");
        } else {
            let words = synopsis.split_whitespace().count();
            let bucket = if words < 25 { "short" } else { "long" };
            let vector = models::embed_one(models::DEFAULT_TEXT, synopsis)?;
            analysis = analysis
                .tag("synopsis-words", Some(bucket), 1.0)
                .embedding(EMBEDDING, models::DEFAULT_TEXT, vector);
        }
        if let Some(poster) = input.assets_of(MediaKind::Image).next() {
            let (w, h) = poster.image_size()?;
            let shape = if h > w { "portrait" } else { "landscape" };
            let evidence = format!("{w}x{h}");
            analysis = analysis.tag_with("poster-shape", Some(shape), 1.0, None, Some(&evidence));
        }
        Ok(analysis)
    }
}

export_plugin!(Tagger);
"#;

/// README.md; `{name}` is filled in.
pub const README: &str = r#"# {name}

A Tessera tagger plugin.

    tessera plugin build .                 # -> target/wasm32-wasip2/release/*.wasm
    tessera plugin inspect target/wasm32-wasip2/release/{file}.wasm
    tessera ingest CATALOG.jsonl --plugin target/wasm32-wasip2/release/{file}.wasm

Needs the wasm32-wasip2 target (`rustup target add wasm32-wasip2`).
"#;

/// .gitignore.
pub const GITIGNORE: &str = "/target\n";

/// .cargo/config.toml: the guest's stack size (see plugins/.cargo/config.toml, the same setting
/// for the project's own plugins).
pub const CARGO_CONFIG: &str = r#"# A 64 KiB stack (wasm-ld's default; Rust's is 1 MiB) keeps a fresh instance's stack, static
# data and first heap pages in the first 128 KiB of its memory, which the host keeps resident
# between instances: each call starts about twice as fast. Overflowing it is reported as a stack
# overflow; raise the size here if your plugin recurses deeply.
[target.wasm32-wasip2]
rustflags = ["-C", "link-arg=-zstack-size=65536"]
"#;
