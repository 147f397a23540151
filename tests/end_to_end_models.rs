//! The model commands end to end, through the real binary: `tessera embed` (text, images, audio
//! windows), `tessera zero-shot`, models by name from manifests and the Hugging Face cache
//! (`models list`, `models pull`, versions side by side), and their errors for bad input.

use super::*;

#[test]
fn embed_command_prints_the_model_vector() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let text = "A retired detective returns to her hometown.";
    let output = run_ok(tessera().arg("embed").arg("--model").arg(&model).args([
        "--modality",
        "text",
        "--format",
        "json",
        "--text",
        text,
    ]));
    let printed: Vec<f32> = serde_json::from_slice(&output.stdout)?;
    let direct = SentenceEncoder::load(&model, "tiny", &Device::Cpu)?
        .embed(&[text])?
        .remove(0);
    assert!(max_abs_diff(&printed, &direct) < 1e-6);

    let input = tmp.path().join("input.txt");
    std::fs::write(&input, text)?;
    let output = run_ok(
        tessera()
            .arg("embed")
            .arg("--model")
            .arg(&model)
            .arg("--input")
            .arg(&input),
    );
    let from_file: Vec<f32> = serde_json::from_slice(&output.stdout)?;
    assert_eq!(from_file, printed);

    let missing = tessera()
        .arg("embed")
        .arg("--model")
        .arg(tmp.path().join("nope"))
        .args(["--text", "x"])
        .output()?;
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("nope: no such model directory"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    Ok(())
}

#[test]
fn a_hub_model_missing_offline_is_a_clear_error() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let output = tessera()
        .arg("ingest")
        .arg(example_catalog())
        .arg("--data")
        .arg(tmp.path().join("data"))
        .args(["--text-model-hub", "acme/no-such-encoder@0123abc"])
        .env("HF_HUB_OFFLINE", "1")
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("acme/no-such-encoder@0123abc is not in the Hugging Face cache"),
        "{stderr}"
    );
    assert!(
        stderr.contains("huggingface-cli download acme/no-such-encoder --revision 0123abc"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn embed_command_handles_images_and_refuses_bad_ones() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let model = tmp.path().join("tiny-clip");
    run_ok(tessera().args(["models", "tiny-clip", "--out"]).arg(&model));
    let image = repo_root().join("tests/data/images/photo.jpg");
    let output = run_ok(
        tessera()
            .arg("embed")
            .arg("--model")
            .arg(&model)
            .args(["--modality", "image", "--input"])
            .arg(&image),
    );
    let printed: Vec<f32> = serde_json::from_slice(&output.stdout)?;
    let encoder = tessera_models::ClipVisionEncoder::load(&model, "tiny-clip", &Device::Cpu)?;
    let decoded = tessera_models::preprocess::image::read_image(&image, &Default::default())?;
    let direct = tessera_models::ImageEmbedder::embed(&encoder, &[decoded])?.remove(0);
    assert!(max_abs_diff(&printed, &direct) < 1e-6);

    let bad = repo_root().join("tests/data/images/bad/text.png");
    let output = tessera()
        .arg("embed")
        .arg("--model")
        .arg(&model)
        .args(["--modality", "image", "--input"])
        .arg(&bad)
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("text.png") && stderr.contains("not an image"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn embed_command_handles_audio_windows_and_refuses_bad_audio()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let model = tmp.path().join("tiny-whisper");
    run_ok(
        tessera()
            .args(["models", "tiny-whisper", "--out"])
            .arg(&model),
    );
    let clip = repo_root().join("tests/data/audio/long_62s.flac");
    let embed = |extra: &[&str]| {
        run_ok(
            tessera()
                .arg("embed")
                .arg("--model")
                .arg(&model)
                .args(["--modality", "audio", "--input"])
                .arg(&clip)
                .args(extra),
        )
    };
    let pooled: Vec<f32> = serde_json::from_slice(&embed(&[]).stdout)?;
    let windows: Vec<Vec<f32>> = serde_json::from_slice(&embed(&["--windows"]).stdout)?;
    assert_eq!(windows.len(), 3, "62 s is three 30 s windows");
    let encoder = tessera_models::WhisperAudioEncoder::load(&model, "tiny-whisper", &Device::Cpu)?;
    let audio = tessera_models::preprocess::audio::read_audio(&clip, 16_000, &Default::default())?;
    let direct = tessera_models::AudioEmbedder::embed(&encoder, &[&audio.samples])?.remove(0);
    assert!(max_abs_diff(&pooled, &direct.pooled) < 1e-5);
    for (printed, window) in windows.iter().zip(&direct.windows) {
        assert!(max_abs_diff(printed, window) < 1e-5);
    }

    let bad = repo_root().join("tests/data/audio/bad/lying_header.wav");
    let output = tessera()
        .arg("embed")
        .arg("--model")
        .arg(&model)
        .args(["--modality", "audio", "--input"])
        .arg(&bad)
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("lying_header.wav") && stderr.contains("header promises"),
        "{stderr}"
    );
    let output = tessera()
        .arg("embed")
        .arg("--model")
        .arg(&model)
        .args(["--modality", "audio", "--max-seconds", "10", "--input"])
        .arg(&clip)
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("longer than the 10 s limit"));
    Ok(())
}

#[test]
fn zero_shot_command_scores_images_and_texts() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let model = tmp.path().join("tiny-clip");
    run_ok(
        tessera()
            .args(["models", "tiny-clip", "--with-text", "--out"])
            .arg(&model),
    );
    let taxonomy = repo_root().join("tests/data/taxonomy.toml");
    for query in [
        vec![
            "--image".to_string(),
            repo_root()
                .join("tests/data/images/photo.jpg")
                .display()
                .to_string(),
        ],
        vec!["--text".to_string(), "a dog on a ship".to_string()],
    ] {
        let output = run_ok(
            tessera()
                .args(["zero-shot", "--model"])
                .arg(&model)
                .arg("--taxonomy")
                .arg(&taxonomy)
                .args(&query),
        );
        let scores: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout)?;
        assert_eq!(scores.len(), 6, "one score per tag");
        let probs: Vec<f64> = scores.iter().filter_map(|s| s["score"].as_f64()).collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        assert!(
            probs.windows(2).all(|w| w[0] >= w[1]),
            "best first: {probs:?}"
        );
    }
    // SigLIP scores each tag on its own (sigmoid): they need not sum to 1.
    let siglip = tmp.path().join("tiny-siglip");
    run_ok(
        tessera()
            .args(["models", "tiny-siglip", "--out"])
            .arg(&siglip),
    );
    let output = run_ok(
        tessera()
            .args(["zero-shot", "--model"])
            .arg(&siglip)
            .arg("--taxonomy")
            .arg(&taxonomy)
            .args(["--text", "a dog on a ship"]),
    );
    let scores: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout)?;
    let probs: Vec<f64> = scores.iter().filter_map(|s| s["score"].as_f64()).collect();
    assert_eq!(probs.len(), 6);
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
    assert!((probs.iter().sum::<f64>() - 1.0).abs() > 1e-3, "{probs:?}");

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[[tag]]\nname = 'x'\n")?;
    let output = tessera()
        .args(["zero-shot", "--model"])
        .arg(&model)
        .arg("--taxonomy")
        .arg(&bad)
        .args(["--text", "hello"])
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("no prompts"),
        "{stderr}"
    );
    Ok(())
}

/// Puts the tiny Whisper of `seed` into an HF cache as `acme/whisper-tiny@revision` and writes a
/// manifest for it named `name`.
fn cached_whisper(cache: &Path, manifests: &Path, name: &str, revision: &str, seed: u64) {
    let snapshot = cache.join(format!("models--acme--whisper-tiny/snapshots/{revision}"));
    run_ok(
        tessera()
            .args([
                "models",
                "tiny-whisper",
                "--seed",
                &seed.to_string(),
                "--out",
            ])
            .arg(&snapshot),
    );
    let mut files = String::new();
    for file in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        let sha = tessera_models::manifest::sha256_file(&snapshot.join(file))
            .unwrap_or_else(|e| panic!("{e}"));
        files.push_str(&format!("\"{file}\" = \"{sha}\"\n"));
    }
    let manifest = format!(
        "name = \"{name}\"\nmodality = \"audio\"\nrepo = \"acme/whisper-tiny\"\n\
         revision = \"{revision}\"\ndimension = 64\n[files]\n{files}"
    );
    std::fs::create_dir_all(manifests).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(manifests.join(format!("{name}.toml")), manifest)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn embed_by_model_name_resolves_verifies_and_keeps_versions_apart()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let (cache, manifests) = (tmp.path().join("hub"), tmp.path().join("manifests"));
    cached_whisper(&cache, &manifests, "whisper-a", "1111111", 11);
    cached_whisper(&cache, &manifests, "whisper-b", "2222222", 12);
    let clip = repo_root().join("tests/data/audio/short_0_2s.wav");
    let embed = |model: &str| {
        tessera()
            .args([
                "embed",
                "--modality",
                "audio",
                "--model",
                model,
                "--manifests",
            ])
            .arg(&manifests)
            .arg("--input")
            .arg(&clip)
            .env("HF_HUB_CACHE", &cache)
            .env("HF_HUB_OFFLINE", "1")
            .output()
    };
    let a: Vec<f32> = serde_json::from_slice(&embed("whisper-a")?.stdout)?;
    let a_rev: Vec<f32> = serde_json::from_slice(&embed("whisper-a@1111")?.stdout)?;
    let b: Vec<f32> = serde_json::from_slice(&embed("whisper-b")?.stdout)?;
    assert_eq!(a.len(), 64);
    assert_eq!(a, a_rev, "NAME@REVISION picks the same model");
    assert!(max_abs_diff(&a, &b) > 1e-3, "two versions, two models");

    let unknown = embed("whisper-c")?;
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("neither a model directory nor a model name")
            && stderr.contains("whisper-a, whisper-b"),
        "{stderr}"
    );
    let text = tessera()
        .args([
            "embed",
            "--text",
            "hello",
            "--model",
            "whisper-a",
            "--manifests",
        ])
        .arg(&manifests)
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .output()?;
    assert_eq!(text.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&text.stderr).contains("has no text encoder; use --modality audio")
    );

    // A file that differs from its manifest is refused, never used.
    let weights = cache.join("models--acme--whisper-tiny/snapshots/1111111/model.safetensors");
    let mut bytes = std::fs::read(&weights)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&weights, bytes)?;
    let tampered = embed("whisper-a")?;
    assert_eq!(tampered.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&tampered.stderr);
    assert!(stderr.contains("model.safetensors has sha256"), "{stderr}");
    Ok(())
}

#[test]
fn models_list_and_pull_work_offline_with_clear_errors() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let output = run_ok(
        tessera()
            .args(["models", "list"])
            .env("HF_HUB_CACHE", tmp.path()),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("all-minilm-l6-v2")
            && stdout.contains("384d")
            && stdout.contains("not in cache"),
        "{stdout}"
    );

    let output = tessera()
        .args(["models", "pull", "all-minilm-l6-v2"])
        .env("HF_HUB_CACHE", tmp.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sentence-transformers/all-MiniLM-L6-v2@")
            && stderr.contains("not in the Hugging Face cache"),
        "{stderr}"
    );

    let output = tessera()
        .args(["models", "pull", "no-such-model"])
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("known: all-minilm-l6-v2"));
    Ok(())
}
