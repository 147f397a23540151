//! The example plugins in `plugins/`, run through the real host with tiny models: what they tag,
//! with which evidence and spans, and how they use their config. Tiny models carry random
//! weights, so the tests check structure and self-consistency (a clip matches its own prototype),
//! not that a poster "looks like horror".

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tessera::catalog::{AssetRef, Title};
use tessera::pipeline::{Pipeline, schema_for};
use tessera::runtime::{Plugin, PluginError, PluginHost, PluginSettings, SandboxLimits};
use tessera_indexes::{EdgeStore, EntityStore, Tag, VectorKind};
use tessera_models::Registry;
use tessera_models::preprocess::audio::{AudioLimits, read_audio};

struct Fixture {
    _dir: tempfile::TempDir,
    registry: Arc<Registry>,
    host: Arc<PluginHost>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let registry = Arc::new(common::media_registry(dir.path()));
    let limits = SandboxLimits {
        deadline: std::time::Duration::from_secs(120),
        ..SandboxLimits::default()
    };
    let host = PluginHost::new(registry.clone(), limits).unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        _dir: dir,
        registry,
        host: Arc::new(host),
    }
}

impl Fixture {
    fn load(&self, name: &str, config: &[(&str, String)]) -> Plugin {
        let bytes = tessera_plugin_artifacts::component(name).unwrap_or_else(|e| panic!("{e}"));
        let settings = PluginSettings {
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..PluginSettings::default()
        };
        self.host
            .load_with(name, &bytes, settings)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn data(rel: &str) -> std::path::PathBuf {
    common::repo_root().join("tests/data").join(rel)
}

fn title(synopsis: &str, assets: &[(&str, &Path)]) -> Title {
    Title {
        id: "t1".into(),
        name: "A title".into(),
        synopsis: synopsis.into(),
        year: None,
        language: "en".into(),
        metadata: BTreeMap::new(),
        assets: assets
            .iter()
            .map(|(role, path)| AssetRef {
                kind: role.to_string(),
                uri: path.display().to_string(),
                path: path.to_path_buf(),
            })
            .collect(),
    }
}

fn tags(plugin: &Plugin, title: &Title) -> Vec<Tag> {
    plugin.analyze(title).unwrap_or_else(|e| panic!("{e}")).tags
}

#[test]
fn genre_tagger_scores_poster_and_synopsis_against_the_configured_taxonomy() {
    let f = fixture();
    let config = [
        (
            "genre.space",
            "a film set in space | astronauts in orbit".to_string(),
        ),
        ("genre.sea", "a film set at sea".to_string()),
        ("genre.city", "a film in a big city".to_string()),
        ("min-score", "0".to_string()),
    ];
    let tagger = f.load("genre-tagger", &config);
    let poster = data("images/photo.jpg");
    let both = tags(
        &tagger,
        &title("Astronauts stranded on Mars.", &[("poster", &poster)]),
    );
    assert_eq!(both.len(), 2, "top 2 by default: {both:?}");
    for tag in &both {
        assert_eq!(tag.name, "genre");
        let genre = tag.value.as_deref().unwrap_or_default();
        assert!(["space", "sea", "city"].contains(&genre), "{genre}");
        assert!((0.0..=1.0).contains(&tag.confidence));
        let evidence = tag.evidence.as_deref().unwrap_or_default();
        assert!(
            evidence.contains("poster") && evidence.contains("synopsis"),
            "{evidence}"
        );
    }
    assert!(both[0].confidence >= both[1].confidence, "best first");

    let text_only = tags(&tagger, &title("Astronauts stranded on Mars.", &[]));
    assert!(
        text_only
            .iter()
            .all(|t| t.evidence.as_deref().is_some_and(|e| !e.contains("poster")))
    );

    let defaults = f.load(
        "genre-tagger",
        &[("top", "8".to_string()), ("min-score", "0".to_string())],
    );
    let all = tags(&defaults, &title("A detective hunts a killer.", &[]));
    assert_eq!(all.len(), 8, "the built-in taxonomy has eight genres");
    let sum: f32 = all.iter().map(|t| t.confidence).sum();
    assert!(
        (sum - 1.0).abs() < 1e-3,
        "CLIP's scores over the taxonomy sum to 1: {sum}"
    );

    let broken = f.load("genre-tagger", &[("top", "many".to_string())]);
    let err = broken.analyze(&title("x", &[])).err();
    assert!(
        matches!(&err, Some(PluginError::Guest { kind: "invalid-input", message, .. }) if message.contains("top")),
        "{err:?}"
    );
}

/// The pooled vector of an audio fixture under the fixture's `whisper` model, as config text.
fn prototype(f: &Fixture, file: &str) -> String {
    let model = f
        .registry
        .audio("whisper")
        .unwrap_or_else(|| panic!("no whisper"));
    let audio = read_audio(&data(file), model.sample_rate(), &AudioLimits::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let embedding = model
        .embed(&[&audio.samples])
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
    embedding
        .pooled
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn plugins_on_one_title_share_each_decoded_asset() {
    let f = fixture();
    let config = [
        ("genre.space", "a film set in space".to_string()),
        ("genre.sea", "a film set at sea".to_string()),
        ("min-score", "0".to_string()),
    ];
    let tagger = f.load("genre-tagger", &config);
    let poster = data("images/photo.jpg");
    let t = title("Astronauts stranded on Mars.", &[("poster", &poster)]);
    // Two plugin runs on the same title (as two plugins in a pipeline would): the poster is
    // decoded once, and the second run gets the same tags from the shared decode.
    let decoded = tessera::caps::media::Decoded::new();
    let first = tagger
        .analyze_shared(&t, &[], &decoded)
        .unwrap_or_else(|e| panic!("{e}"));
    let second = tagger
        .analyze_shared(&t, &[], &decoded)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.tags, second.tags);
    let counts = decoded.counts();
    assert_eq!((counts.decodes, counts.reuses), (1, 1), "{counts:?}");
    // Separate titles do not share.
    let alone = tessera::caps::media::Decoded::new();
    tagger
        .analyze_shared(&t, &[], &alone)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alone.counts().decodes, 1);
}

#[test]
fn audio_mood_tags_windows_with_spans_against_prototypes() {
    let f = fixture();
    let config = [
        ("prototype.tone", prototype(&f, "audio/tone_16k_mono.wav")),
        ("prototype.music", prototype(&f, "audio/music_44k1.mp3")),
    ];
    let mood = f.load("audio-mood", &config);
    for (file, expected) in [
        ("audio/tone_16k_mono.wav", "tone"),
        ("audio/music_44k1.mp3", "music"),
    ] {
        let clip = data(file);
        let found = tags(&mood, &title("", &[("trailer", &clip)]));
        println!("{file}: {found:?}");
        assert_eq!(found.len(), 2, "one window and the title: {found:?}");
        let window = &found[0];
        assert_eq!(
            window.value.as_deref(),
            Some(expected),
            "a clip matches its own prototype"
        );
        let (start, end) = window.span.unwrap_or_default();
        assert!(start == 0.0 && end > 0.0 && end <= 30.0, "{start}..{end}");
        assert!(
            window
                .evidence
                .as_deref()
                .is_some_and(|e| e.contains("cosine 1.000"))
        );
        let overall = &found[1];
        assert_eq!(overall.span, None);
        assert_eq!(overall.value.as_deref(), Some(expected));
        assert_eq!(overall.evidence.as_deref(), Some("1 of 1 windows"));
    }

    // A 62 s clip has three windows, each with its own span.
    let long = data("audio/long_62s.flac");
    let windows = tags(&mood, &title("", &[("trailer", &long)]));
    let spans: Vec<(f64, f64)> = windows.iter().filter_map(|t| t.span).collect();
    assert_eq!(spans.len(), 3, "{windows:?}");
    assert_eq!(spans[1], (30.0, 60.0));

    // The windows as a token sequence, when the manifest asks for them.
    let mut with_windows = config.to_vec();
    with_windows.push(("store-windows", "true".to_string()));
    let storing = f.load("audio-mood", &with_windows);
    assert_eq!(storing.info().token_sequences.len(), 1);
    let analysis = storing
        .analyze(&title("", &[("trailer", &long)]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(analysis.token_sequences[0].vectors.len(), 3);

    // Ingested, the windows are stored as a multivector that MaxSim search finds again.
    let schema = schema_for(std::slice::from_ref(&storing), f.host.registry())
        .unwrap_or_else(|e| panic!("{e}"));
    // Stored under the audio model's identity (a digest of its files): `audio/…/tokens`.
    let windows_vector = storing
        .store_name("audio-windows", VectorKind::Multi)
        .unwrap_or_else(|| panic!("no store name for audio-windows"));
    assert!(
        windows_vector.starts_with("audio/whisper") && windows_vector.ends_with("/tokens"),
        "{windows_vector}"
    );
    assert_eq!(schema.names(), windows_vector);
    assert_eq!(schema.vectors[&windows_vector].kind, VectorKind::Multi);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(EdgeStore::open(dir.path(), schema).unwrap_or_else(|e| panic!("{e}")));
    let pipeline = Pipeline::new(vec![storing], store.clone() as Arc<dyn EntityStore>)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut short = title("", &[("trailer", &data("audio/tone_16k_mono.wav"))]);
    short.id = "short".into();
    let report = pipeline
        .ingest(&[title("", &[("trailer", &long)]), short], |_, _| {})
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.stored, 2, "{:?}", report.failures);
    // Each title's trailer was decoded for the model, never twice at one rate.
    let counts = pipeline.decode_counts();
    assert!(counts.decodes >= 2, "{counts:?}");
    let stored = store
        .get(&["t1".to_string()])
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0)
        .unwrap_or_else(|| panic!("t1 not stored"));
    let windows = &stored.multivectors[&windows_vector];
    assert_eq!(windows.len(), 3);
    let hits = store
        .nearest_multi(&windows_vector, windows, 2, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hits[0].id, "t1", "{hits:?}");
    assert!(
        (hits[0].score - 3.0).abs() < 1e-3,
        "three exact token matches: {hits:?}"
    );

    // A prototype of the wrong length is an input error naming it.
    let wrong = f.load("audio-mood", &[("prototype.calm", "0.1,0.2".to_string())]);
    let err = wrong
        .analyze(&title("", &[("trailer", &long)]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("prototype.calm has 2 numbers"), "{err}");
    // No audio asset: nothing to tag, no error.
    assert!(tags_empty_for(&mood, "no audio here"));
}

#[test]
fn content_advisory_flags_each_advisory_on_its_own_score() {
    let f = fixture();
    // SigLIP by default: independent sigmoid scores; threshold 0 tags every advisory.
    let all = f.load("content-advisory", &[("threshold", "0".to_string())]);
    let flagged = tags(
        &all,
        &title("A gangster's war on the streets of Naples.", &[]),
    );
    let names: Vec<&str> = flagged.iter().filter_map(|t| t.value.as_deref()).collect();
    assert_eq!(flagged.len(), 5, "{names:?}");
    assert!(
        names.contains(&"violence") && names.contains(&"frightening"),
        "{names:?}"
    );
    assert!(flagged.iter().all(|t| {
        t.evidence
            .as_deref()
            .is_some_and(|e| e.starts_with("siglip"))
    }));
    let sum: f32 = flagged.iter().map(|t| t.confidence).sum();
    assert!(sum > 0.0);
    // Scores are independent: a threshold of 1 keeps only those at the ceiling (none here).
    let strict = f.load("content-advisory", &[("threshold", "1.01".to_string())]);
    assert!(tags_empty_for(&strict, "A gangster's war."));
    // Custom advisories replace the built-in ones.
    let custom = f.load(
        "content-advisory",
        &[
            (
                "advisory.gambling",
                "characters gamble in casinos".to_string(),
            ),
            ("threshold", "0".to_string()),
            ("model", "clip".to_string()),
        ],
    );
    let gambling = tags(&custom, &title("A card shark in Las Vegas.", &[]));
    assert_eq!(gambling.len(), 1);
    assert_eq!(gambling[0].value.as_deref(), Some("gambling"));
    assert!(
        (gambling[0].confidence - 1.0).abs() < 1e-6,
        "a softmax over one label is 1"
    );
}

/// Whether the plugin succeeds on a title with this synopsis and no assets, tagging nothing.
fn tags_empty_for(plugin: &Plugin, synopsis: &str) -> bool {
    plugin
        .analyze(&title(synopsis, &[]))
        .map(|a| a.tags.is_empty())
        .unwrap_or(false)
}

#[test]
fn a_plugin_written_in_python_runs_through_the_same_contract() {
    let f = fixture();
    let out = f._dir.path().join("synopsis-keywords.wasm");
    let script = common::repo_root().join("plugins/python-keywords/build.sh");
    let built = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        built.status.success(),
        "building the Python plugin needs python3 and PyPI (componentize-py): {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let bytes = std::fs::read(&out).unwrap_or_else(|e| panic!("{e}"));
    let settings = PluginSettings {
        config: BTreeMap::from([("top".to_string(), "3".to_string())]),
        ..PluginSettings::default()
    };
    let plugin = f
        .host
        .load_with("synopsis-keywords (Python)", &bytes, settings)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plugin.info().name, "synopsis-keywords");
    assert_eq!(plugin.info().contract.to_string(), "1.1.0");
    let keywords = tags(
        &plugin,
        &title(
            "A storm batters the lighthouse. The keeper records each storm and waits.",
            &[],
        ),
    );
    assert_eq!(keywords.len(), 3, "top = 3 from the config: {keywords:?}");
    assert_eq!(keywords[0].value.as_deref(), Some("storm"));
    assert_eq!(keywords[0].confidence, 1.0);
    assert_eq!(
        keywords[0].evidence.as_deref(),
        Some("2 of 7 counted words")
    );

    let broken = f
        .host
        .load_with(
            "synopsis-keywords (Python)",
            &bytes,
            PluginSettings {
                config: BTreeMap::from([("top".to_string(), "lots".to_string())]),
                ..PluginSettings::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let err = broken.analyze(&title("A storm.", &[])).err();
    assert!(
        matches!(&err, Some(PluginError::Guest { kind: "invalid-input", message, .. }) if message.contains("top")),
        "a Python exception carrying a plugin-error reaches the host as that error: {err:?}"
    );
}

#[test]
fn an_output_on_a_two_tower_model_names_its_modality() {
    let f = fixture();
    let of = |spec: &str| tessera::runtime::output_model(&f.registry, spec);
    // CLIP embeds texts and images into one space, but a poster vector is not a text vector:
    // the declaration must say which, or it is refused with the two ways to say it.
    let err = of("clip").err().unwrap_or_default();
    assert!(
        err.contains("declare the output's model as clip:text or clip:image"),
        "{err}"
    );
    let (modality, dim, identity) = of("clip:image").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(modality.as_str(), "image");
    assert!(dim > 0 && identity.starts_with("clip@"), "{identity}");
    let text = of("clip:text").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (text.0.as_str(), text.2.as_str()),
        ("text", identity.as_str())
    );
    // One-tower models need no qualifier; a modality a model lacks, or an unknown model, is named.
    assert_eq!(of("whisper").map(|m| m.0.as_str()), Ok("audio"));
    let err = of("whisper:text").err().unwrap_or_default();
    assert!(err.contains("serves audio, not text"), "{err}");
    let err = of("nope:image").err().unwrap_or_default();
    assert!(err.contains("\"nope\" is not loaded"), "{err}");
}
