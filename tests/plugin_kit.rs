//! The plugin author's path with the real binary: `tessera plugin new` writes a crate,
//! `tessera plugin build` compiles it to a component, `tessera plugin inspect` reads it, and the
//! host runs it on a title with a real (tiny) model.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tessera::catalog::{AssetRef, Title};
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
    // The guest's small stack, which keeps a fresh instance's pages resident in the host.
    let config = std::fs::read_to_string(crate_dir.join(".cargo/config.toml"))?;
    assert!(config.contains("-zstack-size=65536"), "{config}");
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
        text.contains("world: tagger") && text.contains("tessera:plugin 1.1.0"),
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
        assets: vec![AssetRef {
            kind: "poster".into(),
            uri: "wide.png".into(),
            path: common::repo_root().join("tests/data/images/wide.png"),
        }],
    })?;
    assert_eq!(analysis.tags[0].name, "synopsis-words");
    assert_eq!(analysis.tags[0].value.as_deref(), Some("short"));
    assert_eq!(analysis.embeddings.len(), 1);
    // The template reads the poster's size through its asset handle.
    let poster = analysis
        .tags
        .iter()
        .find(|t| t.name == "poster-shape")
        .ok_or("no poster-shape tag")?;
    assert_eq!(poster.value.as_deref(), Some("landscape"));
    assert!(poster.evidence.as_deref().is_some_and(|e| e.contains('x')));
    Ok(())
}

#[test]
fn plugin_test_runs_a_catalog_deterministically_with_mock_models()
-> Result<(), Box<dyn std::error::Error>> {
    let (_, path) = tessera_plugin_artifacts::ALL
        .iter()
        .find(|(name, _)| *name == "synopsis-embedder")
        .ok_or("synopsis-embedder is not built")?;
    let catalog = example_catalog();
    let run = || {
        run_ok(
            tessera()
                .args([
                    "plugin",
                    "test",
                    path,
                    "--mock-models",
                    "--json",
                    "--catalog",
                ])
                .arg(&catalog),
        )
        .stdout
    };
    let first = run();
    assert_eq!(first, run(), "mock models make runs identical");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&first)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 15);
    let mut embedded = 0;
    for line in &lines {
        assert!(line["error"].is_null(), "{line}");
        // Titles without a synopsis get a tag and no vector.
        if let Some(vector) = line["embeddings"][0]["vector"].as_array() {
            assert_eq!(vector.len(), 16, "mock vectors are 16-d");
            embedded += 1;
        }
    }
    assert!(embedded >= 10, "{embedded} of 15 titles embedded");

    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let text = run_ok(
        tessera()
            .args(["plugin", "test", path, "--text-model"])
            .arg(&model)
            .arg("--catalog")
            .arg(&catalog),
    );
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(out.contains("15 titles, 0 failed"), "{out}");
    assert!(out.contains("synopsis-length="), "{out}");
    Ok(())
}

#[test]
fn manifests_pin_the_component_and_carry_models_limits_and_config()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let wasm = tmp.path().join("probe.wasm");
    std::fs::write(&wasm, tessera_plugin_artifacts::component("sandbox-probe")?)?;
    let written = run_ok(
        tessera()
            .args(["plugin", "manifest", "--models", "text"])
            .arg(&wasm),
    );
    let mut manifest = String::from_utf8(written.stdout)?;
    assert!(manifest.contains("name = \"sandbox-probe\""), "{manifest}");
    assert!(manifest.contains("contract = \"1.1.0\""), "{manifest}");
    manifest.push_str("labels = \"space,sea\"\n");
    let manifest_path = tmp.path().join("probe.toml");
    std::fs::write(&manifest_path, &manifest)?;
    let catalog = tmp.path().join("catalog.jsonl");
    std::fs::write(
        &catalog,
        r#"{"id":"t1","name":"Probe","synopsis":"A storm.","metadata":{"probe":"config"}}"#,
    )?;
    let test = |plugin: &Path| {
        tessera()
            .args(["plugin", "test", "--mock-models", "--json", "--catalog"])
            .arg(&catalog)
            .arg(plugin)
            .output()
    };

    // The .wasm picks up the manifest beside it; the manifest itself works too.
    for plugin in [&wasm, &manifest_path] {
        let out = test(plugin)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("labels=space,sea"),
            "config reaches the plugin: {stdout}"
        );
    }

    // A manifest for a different version of the plugin is refused by field.
    std::fs::write(
        &manifest_path,
        manifest.replace("version = \"", "version = \"9"),
    )?;
    let out = test(&wasm)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("it says version"),
        "{stderr}"
    );

    // More memory than the host grants is refused at load.
    std::fs::write(
        &manifest_path,
        manifest.replace("# memory-mib = 256", "memory-mib = 4096"),
    )?;
    let out = test(&wasm)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("4096 MiB"),
        "{stderr}"
    );

    // A component changed after the manifest was written is refused before it is compiled.
    std::fs::write(&manifest_path, &manifest)?;
    let mut bytes = std::fs::read(&wasm)?;
    bytes.push(0);
    std::fs::write(&wasm, bytes)?;
    let out = test(&wasm)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("changed since the manifest was written"),
        "{stderr}"
    );
    Ok(())
}

/// `tessera bench plugin-call` is the figure plugin authors compare against: it reports the
/// latency of a fresh instance + call and the calls per second with calls in flight, and
/// refuses a measurement time that is not one.
#[test]
fn bench_plugin_call_reports_latency_and_throughput() {
    let out = run_ok(tessera().args([
        "bench",
        "plugin-call",
        "--iterations",
        "50",
        "--in-flight",
        "1,4",
        "--seconds",
        "0.2",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("awaited, 50 calls") && stdout.contains("p50"),
        "{stdout}"
    );
    let rate = |tasks: &str| -> f64 {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("plugin calls with {tasks} in flight")))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no rate for {tasks} in flight: {stdout}"))
    };
    assert!(rate("1") > 0.0 && rate("4") > 0.0, "{stdout}");

    let out = tessera()
        .args([
            "bench",
            "plugin-call",
            "--iterations",
            "5",
            "--seconds",
            "0",
        ])
        .output()
        .unwrap_or_else(|e| panic!("tessera: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--seconds must be a positive number"),
        "{stderr}"
    );
}
