//! The plugin contract, end to end through real components: contract 1.x's media resources,
//! models, config, chaining, time spans and token sequences; 0.1 plugins still running; a plugin
//! built against an unknown major refused with a clear message.
//!
//! The components are the workspace's guest plugins (`plugins/`): `sandbox-probe` reports what
//! each host call answered, `legacy-v0` is built against `wit/v0`.

mod common;
#[path = "contract_versions.rs"]
mod versions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera::catalog::{AssetRef, Title};
use tessera::pipeline::{Pipeline, PipelineError, order_plugins, schema_for};
use tessera::runtime::{Contract, Plugin, PluginError, PluginHost, PluginSettings, SandboxLimits};
use tessera_indexes::{EdgeStore, EntityStore, Tag};
use tessera_models::Registry;

/// A host with a tiny text model (`text`), a tiny CLIP (`clip`: text, image, zero-shot) and a
/// tiny Whisper encoder (`whisper`).
struct Fixture {
    dir: tempfile::TempDir,
    host: Arc<PluginHost>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let registry = common::media_registry(dir.path());
    // The deadline covers host calls too; decoding and embedding a 62 s clip in a debug build
    // takes seconds, and this file tests the contract, not the deadline (tests/sandbox.rs does).
    let limits = SandboxLimits {
        deadline: std::time::Duration::from_secs(120),
        ..SandboxLimits::default()
    };
    let host = PluginHost::new(Arc::new(registry), limits).unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        dir,
        host: Arc::new(host),
    }
}

impl Fixture {
    fn load(&self, name: &str, settings: PluginSettings) -> Plugin {
        let bytes = tessera_plugin_artifacts::component(name).unwrap_or_else(|e| panic!("{e}"));
        self.host
            .load_with(name, &bytes, settings)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn probe(&self) -> Plugin {
        self.load("sandbox-probe", PluginSettings::default())
    }
}

fn data(rel: &str) -> PathBuf {
    common::repo_root().join("tests/data").join(rel)
}

fn asset(role: &str, path: &Path) -> AssetRef {
    AssetRef {
        kind: role.into(),
        uri: path.display().to_string(),
        path: path.to_path_buf(),
    }
}

fn title(probe: &str, target: &str, assets: Vec<AssetRef>) -> Title {
    Title {
        id: format!("t-{probe}"),
        name: "Probe".into(),
        synopsis: "Astronauts stranded on Mars must grow food to survive.".into(),
        year: Some(2015),
        language: "en".into(),
        metadata: BTreeMap::from([
            ("probe".to_string(), probe.to_string()),
            ("target".to_string(), target.to_string()),
        ]),
        assets,
    }
}

fn probe_tags(plugin: &Plugin, title: &Title) -> Vec<Tag> {
    plugin
        .analyze(title)
        .unwrap_or_else(|e| panic!("{e}"))
        .tags
        .into_iter()
        .filter(|t| t.name == "probe")
        .collect()
}

#[test]
fn media_handles_answer_what_the_plugin_asks_and_refuse_what_they_must() {
    let f = fixture();
    let subtitles = f.dir.path().join("subs.srt");
    let srt = "1\n00:00:01,000 --> 00:00:02,000\nHello.\n";
    std::fs::write(&subtitles, srt).unwrap_or_else(|e| panic!("{e}"));
    let assets = vec![
        asset("poster", &data("images/photo.jpg")),
        asset("trailer", &data("audio/short_0_2s.wav")),
        asset("subtitles", &subtitles),
        asset("bomb", &data("images/bad/bomb.png")),
        asset("missing", &f.dir.path().join("nope.png")),
    ];
    let tags = probe_tags(&f.probe(), &title("media", "", assets));
    let by_role = |role: &str| -> String {
        tags.iter()
            .find(|t| {
                t.value
                    .as_deref()
                    .is_some_and(|v| v.starts_with(&format!("{role}:")))
            })
            .and_then(|t| t.evidence.clone())
            .unwrap_or_else(|| panic!("no answer for {role}: {tags:?}"))
    };
    for t in &tags {
        println!(
            "{}: {}",
            t.value.as_deref().unwrap_or(""),
            t.evidence.as_deref().unwrap_or("")
        );
    }

    let poster = by_role("poster");
    let (w, h) = image_size(&data("images/photo.jpg"));
    assert!(poster.contains(&format!("image={w}x{h}")), "{poster}");
    // A thumbnail keeps the aspect ratio within 16 px and is RGB.
    let (tw, th) = if w >= h {
        (16, ((16.0 * h as f64 / w as f64).round() as u32).max(1))
    } else {
        (((16.0 * w as f64 / h as f64).round() as u32).max(1), 16)
    };
    assert!(
        poster.contains(&format!("thumb={tw}x{th}:{}", tw * th * 3)),
        "{poster}"
    );
    assert!(poster.contains("audio=err:MediaError::Invalid"), "{poster}");
    assert!(
        poster.contains("text=err:MediaError::Invalid"),
        "a JPEG is not UTF-8 text: {poster}"
    );
    assert!(poster.contains("read=4"), "{poster}");

    let trailer = by_role("trailer");
    assert!(trailer.contains("audio=0.20"), "{trailer}");
    assert!(
        trailer.contains("image=err:MediaError::Invalid"),
        "{trailer}"
    );

    let subs = by_role("subtitles");
    assert!(
        subs.contains(&format!("text={}", srt.len()))
            && subs.contains("image=err:MediaError::Invalid"),
        "{subs}"
    );

    let bomb = by_role("bomb");
    assert!(
        bomb.contains("image=err:MediaError::TooLarge"),
        "a decompression bomb is over the pixel limit: {bomb}"
    );
    assert!(bomb.contains("thumb=err:MediaError::TooLarge"), "{bomb}");

    let missing = by_role("missing");
    assert!(
        missing.contains("size=err:MediaError::Unavailable") && missing.contains("nope.png"),
        "{missing}"
    );
    assert!(
        tags.iter()
            .any(|t| t.value.as_deref() == Some("poster:MediaKind::Image")),
        "media kinds from file names: {tags:?}"
    );
}

fn image_size(path: &Path) -> (u32, u32) {
    let image = tessera_models::preprocess::image::read_image(
        path,
        &tessera_models::preprocess::image::ImageLimits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (image.width(), image.height())
}

#[test]
fn models_list_zero_shot_and_embed_images_and_audio_with_spans() {
    let f = fixture();
    let probe = f.probe();

    let listed = probe_tags(&probe, &title("models", "clip", vec![]));
    let list = listed[0].value.clone().unwrap_or_default();
    assert!(
        list.contains("clip:Modality::Text:") && list.contains(":true"),
        "{list}"
    );
    assert!(list.contains("clip:Modality::Image:16:true"), "{list}");
    assert!(list.contains("whisper:Modality::Audio:"), "{list}");
    let analysis = probe
        .analyze(&title("models", "clip", vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    let scores: Vec<&Tag> = analysis
        .tags
        .iter()
        .filter(|t| t.name == "zero-shot")
        .collect();
    assert_eq!(scores.len(), 2, "{scores:?}");
    let sum: f32 = scores.iter().map(|t| t.confidence).sum();
    assert!(
        (sum - 1.0).abs() < 1e-4,
        "CLIP's scores are a softmax: {sum}"
    );
    assert!(scores[0].confidence >= scores[1].confidence, "best first");
    assert!(
        scores[0]
            .evidence
            .as_deref()
            .is_some_and(|e| e.starts_with("cosine"))
    );

    // zero-shot with a model that has no text tower is a typed model error
    let err = probe.analyze(&title("models", "whisper", vec![])).err();
    assert!(
        matches!(&err, Some(PluginError::Guest { kind: "model", message, .. }) if message.contains("not a two-tower")),
        "{err:?}"
    );

    let image = probe_tags(
        &probe,
        &title(
            "image",
            "clip",
            vec![asset("poster", &data("images/photo.jpg"))],
        ),
    );
    assert_eq!(image[0].value.as_deref(), Some("16-d"));

    let audio = probe_tags(
        &probe,
        &title(
            "audio",
            "whisper",
            vec![asset("trailer", &data("audio/long_62s.flac"))],
        ),
    );
    assert_eq!(audio.len(), 4, "the clip and its three windows: {audio:?}");
    let spans: Vec<(f64, f64)> = audio.iter().filter_map(|t| t.span).collect();
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0], (0.0, 30.0));
    assert_eq!(spans[1], (30.0, 60.0));
    assert!(
        (spans[2].0 - 60.0).abs() < 1e-9 && (spans[2].1 - 62.0).abs() < 0.01,
        "{spans:?}"
    );

    // A corrupt image handed to a model is a media error naming the file.
    let bad = probe.analyze(&title(
        "image",
        "clip",
        vec![asset("poster", &data("images/bad/truncated.jpg"))],
    ));
    match bad {
        Err(PluginError::Guest {
            kind: "model",
            message,
            ..
        }) => {
            assert!(
                message.contains("media") && message.contains("truncated.jpg"),
                "{message}"
            )
        }
        other => panic!("expected a model/media error, got {other:?}"),
    }
}

#[test]
fn manifest_settings_deny_models_and_feed_config() {
    let f = fixture();
    let settings = PluginSettings {
        allowed_models: Some(vec!["text".into()]),
        config: BTreeMap::from([
            ("threshold".to_string(), "0.4".to_string()),
            ("labels".to_string(), "space,sea".to_string()),
        ]),
        ..PluginSettings::default()
    };
    let probe = f.load("sandbox-probe", settings);
    let config = probe_tags(&probe, &title("config", "", vec![]));
    assert_eq!(
        config[0].value.as_deref(),
        Some("labels=space,sea;threshold=0.4")
    );

    let listed = probe_tags(&probe, &title("models", "", vec![]));
    assert_eq!(
        listed[0]
            .value
            .as_deref()
            .map(|v| v.starts_with("text:Modality::Text:")),
        Some(true),
        "list-models shows only allowed models: {listed:?}"
    );
    let denied = probe.analyze(&title("models", "clip", vec![])).err();
    assert!(
        matches!(&denied, Some(PluginError::Guest { message, .. }) if message.contains("denied") && message.contains("\"clip\"")),
        "{denied:?}"
    );
}

#[test]
fn chained_plugins_run_in_declared_order_and_see_earlier_tags() {
    let f = fixture();
    let reader = f.load(
        "sandbox-probe",
        PluginSettings {
            config: BTreeMap::from([("after".to_string(), "legacy-v0".to_string())]),
            ..PluginSettings::default()
        },
    );
    assert_eq!(reader.info().after, ["legacy-v0"]);
    let writer = f.load("legacy-v0", PluginSettings::default());
    // Given reader first, the pipeline still runs legacy-v0 first.
    let ordered = order_plugins(vec![reader, writer]).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = ordered.iter().map(|p| p.info().name.as_str()).collect();
    assert_eq!(names, ["legacy-v0", "sandbox-probe"]);

    let store_dir = f.dir.path().join("store");
    let schema = schema_for(&ordered, f.host.registry()).unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(EdgeStore::open(&store_dir, schema).unwrap_or_else(|e| panic!("{e}")));
    let pipeline = Pipeline::new(ordered, store.clone() as Arc<dyn EntityStore>)
        .unwrap_or_else(|e| panic!("{e}"));
    let entity = pipeline
        .analyze(&title("prior", "", vec![]))
        .unwrap_or_else(|(p, e)| panic!("{p}: {e}"));
    let seen = entity
        .tags
        .iter()
        .find(|t| t.name == "probe")
        .and_then(|t| t.value.clone())
        .unwrap_or_default();
    assert_eq!(
        seen,
        "legacy-v0/legacy-language=en;legacy-v0/legacy-assets=0"
    );

    // A reader of a plugin that is not loaded is refused by name.
    let reading = |name: &str, after: &str| {
        f.load(
            name,
            PluginSettings {
                config: BTreeMap::from([("after".to_string(), after.to_string())]),
                ..PluginSettings::default()
            },
        )
    };
    let alone = order_plugins(vec![reading("sandbox-probe", "synopsis-embedder")]).err();
    assert!(
        matches!(&alone, Some(PipelineError::Ordering(m)) if m.contains("not loaded")),
        "{alone:?}"
    );
}

#[test]
fn time_spans_evidence_and_token_sequences_are_validated_and_kept() {
    let f = fixture();
    let probe = f.load(
        "sandbox-probe",
        PluginSettings {
            config: BTreeMap::from([("tokens".to_string(), "text".to_string())]),
            ..PluginSettings::default()
        },
    );
    assert_eq!(
        probe.info().token_sequences,
        [("probe-tokens".to_string(), "text".to_string())]
    );
    let analysis = probe
        .analyze(&title("spans", "", vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    let tag = &analysis.tags[0];
    assert_eq!(tag.span, Some((30.0, 45.5)));
    assert_eq!(
        tag.evidence.as_deref(),
        Some("a fixed span for the host's tests")
    );
    assert_eq!(
        analysis.token_sequences[0].vectors,
        [vec![1.0, 0.0], vec![0.0, 1.0]]
    );
    // The store keeps token sequences as multivectors of the model's dimension; the probe's 2-d
    // tokens do not fit the text model, so storing them is refused with the vector named, and
    // nothing is written.
    let schema = schema_for(std::slice::from_ref(&probe), f.host.registry())
        .unwrap_or_else(|e| panic!("{e}"));
    // Stored under the text model's identity, as a multivector.
    let (_, _, identity) =
        tessera::runtime::output_model(f.host.registry(), "text").unwrap_or_else(|e| panic!("{e}"));
    let tokens = format!("text/{identity}/tokens");
    assert_eq!(
        probe.store_name("probe-tokens", tessera_indexes::VectorKind::Multi),
        Some(tokens.clone())
    );
    let spec = &schema.vectors[&tokens];
    assert_eq!(spec.kind, tessera_indexes::VectorKind::Multi);
    assert_ne!(spec.dim, 2);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(EdgeStore::open(dir.path(), schema).unwrap_or_else(|e| panic!("{e}")));
    let pipeline = Pipeline::new(vec![probe], store.clone() as Arc<dyn EntityStore>)
        .unwrap_or_else(|e| panic!("{e}"));
    let report = pipeline
        .ingest(&[title("spans", "", vec![])], |_, _| {})
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.stored, 0);
    let failure = &report.failures[0];
    assert_eq!(failure.kind, "store");
    assert!(
        failure
            .message
            .contains(&format!("{tokens:?} has dimension 2")),
        "{}",
        failure.message
    );
    assert_eq!(store.count().unwrap_or_else(|e| panic!("{e}")), 0);
    // Without the declaration, emitting no tokens is fine and the tag still carries its span.
    let plain = f.probe();
    let tags = probe_tags(&plain, &title("spans", "", vec![]));
    assert_eq!(tags[0].span, Some((30.0, 45.5)));
}

#[test]
fn compiled_components_are_cached_on_disk_and_a_bad_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = dir.path().join("cache");
    let bytes =
        tessera_plugin_artifacts::component("sandbox-probe").unwrap_or_else(|e| panic!("{e}"));
    let host = || {
        Arc::new(
            PluginHost::new(Arc::new(Registry::default()), SandboxLimits::default())
                .unwrap_or_else(|e| panic!("{e}"))
                .with_compile_cache(cache.clone()),
        )
    };
    let entries = || -> Vec<PathBuf> {
        std::fs::read_dir(&cache)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let first = host()
        .load("probe", &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    let stored = entries();
    assert_eq!(stored.len(), 1, "one artifact per component: {stored:?}");
    let name = stored[0]
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        name.starts_with(&tessera::manifest::sha256_hex(&bytes)) && name.ends_with(".cwasm"),
        "keyed by the component's sha256: {name}"
    );
    let second = host()
        .load("probe", &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.info(), second.info());
    // A corrupt entry costs a compile, not a failed load, and is replaced.
    std::fs::write(&stored[0], b"not native code").unwrap_or_else(|e| panic!("{e}"));
    let third = host()
        .load("probe", &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.info(), third.info());
    // The host holds its own copy: overwriting the file under a running plugin is harmless.
    assert!(second.analyze(&title("ok", "", vec![])).is_ok());
    let replaced = std::fs::read(&stored[0]).unwrap_or_default();
    assert!(replaced.len() > 1000, "the entry was rewritten");
    assert!(third.analyze(&title("ok", "", vec![])).is_ok());
}

#[test]
fn concurrent_ingest_stores_what_sequential_ingest_stores() {
    let f = fixture();
    let titles =
        tessera::catalog::read_jsonl(&common::example_catalog()).unwrap_or_else(|e| panic!("{e}"));
    let run = |workers: usize| {
        let plugins = vec![f.load("synopsis-embedder", PluginSettings::default())];
        let schema = schema_for(&plugins, f.host.registry()).unwrap_or_else(|e| panic!("{e}"));
        let dir = f.dir.path().join(format!("store-{workers}"));
        let store = Arc::new(EdgeStore::open(&dir, schema).unwrap_or_else(|e| panic!("{e}")));
        let pipeline = Pipeline::new(plugins, store.clone() as Arc<dyn EntityStore>)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_workers(workers)
            .with_run("same-run");
        let mut seen = 0;
        let report = pipeline
            .ingest(&titles, |_, _| seen += 1)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, titles.len(), "one callback per title");
        // Every call is counted: describe at load, then one analyze per title, each synopsis
        // embedded with one model call.
        let stats = pipeline.plugins()[0].stats();
        assert_eq!(stats.calls, titles.len() as u64 + 1, "{stats}");
        let with_synopsis = titles
            .iter()
            .filter(|t| !t.synopsis.trim().is_empty())
            .count();
        assert_eq!(stats.model_calls, with_synopsis as u64, "{stats}");
        assert!(stats.instantiate_s > 0.0 && stats.guest_s > 0.0 && stats.failures == 0);
        let ids: Vec<String> = titles.iter().map(|t| t.id.clone()).collect();
        (report, store.get(&ids).unwrap_or_else(|e| panic!("{e}")))
    };
    let (one, sequential) = run(1);
    let (many, concurrent) = run(6);
    assert_eq!(one, many, "same report");
    assert_eq!(one.stored, titles.len());
    for (a, b) in sequential.iter().zip(&concurrent) {
        let (a, b) = (
            a.as_ref().unwrap_or_else(|| panic!("missing")),
            b.as_ref().unwrap_or_else(|| panic!("missing")),
        );
        assert_eq!(a.tags, b.tags, "{}", a.id);
        for (name, v) in &a.vectors {
            let w = &b.vectors[name];
            let diff = v
                .iter()
                .zip(w)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(
                diff < 1e-5,
                "{}: {name} differs by {diff} between batch sizes",
                a.id
            );
        }
    }
}
