//! The plugin author's path with the real binary: `tessera plugin new` writes a crate,
//! `tessera plugin build` compiles it to a component, `tessera plugin inspect` reads it, and the
//! host runs it on a title with a real (tiny) model.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use tessera::catalog::Title;
use tessera::runtime::{PluginHost, SandboxLimits};
use tessera_models::{Device, Registry, SentenceEncoder, TextEmbedder};

#[test]
fn new_build_inspect_and_run_a_plugin() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    run_ok(
        tessera()
            .args(["plugin", "new", "hello-tags", "--dir"])
            .arg(tmp.path()),
    );
    let crate_dir = tmp.path().join("hello-tags");
    for file in ["Cargo.toml", "src/lib.rs", "README.md"] {
        assert!(crate_dir.join(file).is_file(), "{file} missing");
    }
    let again = tessera()
        .args(["plugin", "new", "hello-tags", "--dir"])
        .arg(tmp.path())
        .output()?;
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = tessera()
        .args(["plugin", "new", "Hello Tags", "--dir"])
        .arg(tmp.path())
        .output()?;
    assert_eq!(bad.status.code(), Some(2));

    let built = run_ok(
        tessera()
            .args(["plugin", "build"])
            .arg(&crate_dir)
            .env("CARGO_TARGET_DIR", tmp.path().join("target")),
    );
    let wasm = String::from_utf8_lossy(&built.stdout).trim().to_string();
    assert!(wasm.ends_with("hello_tags.wasm"), "{wasm}");

    let inspected = run_ok(tessera().args(["plugin", "inspect", &wasm]));
    let text = String::from_utf8_lossy(&inspected.stdout);
    assert!(
        text.contains("world: tagger") && text.contains("tessera:plugin 0.1.0"),
        "{text}"
    );

    let model = tiny_model(tmp.path());
    let encoder = SentenceEncoder::load(&model, "tiny", &Device::Cpu)?;
    let mut registry = Registry::default();
    registry.insert_text("text", Arc::new(encoder) as Arc<dyn TextEmbedder>);
    let host = Arc::new(PluginHost::new(
        Arc::new(registry),
        SandboxLimits::default(),
    )?);
    let plugin = host.load("hello-tags", &std::fs::read(&wasm)?)?;
    assert_eq!(plugin.info().name, "hello-tags");
    let analysis = plugin.analyze(&Title {
        id: "t1".into(),
        name: "A title".into(),
        synopsis: "A lighthouse keeper records the storms.".into(),
        year: None,
        language: "en".into(),
        metadata: BTreeMap::new(),
        assets: vec![],
    })?;
    assert_eq!(analysis.tags[0].name, "synopsis-words");
    assert_eq!(analysis.tags[0].value.as_deref(), Some("short"));
    assert_eq!(analysis.embeddings.len(), 1);
    Ok(())
}
