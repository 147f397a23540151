//! Helpers shared by the fidelity tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository's tests/data directory.
pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data")
}

/// The device the fidelity tests run on: `TESSERA_TEST_DEVICE` (auto, cpu, cuda[:N], metal[:N]),
/// CPU when unset. On a GPU machine, `TESSERA_TEST_DEVICE=cuda` runs the same assertions against
/// the same references there (scripts/gpu/device-run.sh does).
pub fn device() -> tessera_models::Device {
    let choice = std::env::var("TESSERA_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    let parsed: tessera_models::DeviceChoice = choice
        .parse()
        .unwrap_or_else(|e| panic!("TESSERA_TEST_DEVICE={choice}: {e}"));
    let device = tessera_models::select_device(parsed)
        .unwrap_or_else(|e| panic!("TESSERA_TEST_DEVICE={choice}: {e}"));
    eprintln!("fidelity test device: {device:?}");
    device
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// tests/data/{clip_zero_shot,siglip_tiny}_reference.json, written by
/// scripts/reference/zero_shot_reference.py.
#[derive(serde::Deserialize)]
pub struct ZeroShotReference {
    pub logit_scale: f32,
    pub logit_bias: Option<f32>,
    pub tags: Vec<String>,
    pub prompts: Vec<Prompt>,
    pub queries: Vec<Query>,
}

/// One taxonomy prompt: its token ids and normalised text embedding.
#[derive(serde::Deserialize)]
pub struct Prompt {
    pub text: String,
    pub ids: Vec<u32>,
    pub embedding: Vec<f32>,
}

/// One zero-shot query (a text or an image) with its per-tag cosines and scores.
#[derive(serde::Deserialize)]
pub struct Query {
    pub text: Option<String>,
    pub image: Option<String>,
    #[serde(default)]
    pub ids: Vec<u32>,
    pub embedding: Vec<f32>,
    pub cosines: Vec<f32>,
    pub scores: Vec<f32>,
}

/// Reads one of the zero-shot references in tests/data.
pub fn zero_shot_reference(file: &str) -> Result<ZeroShotReference, Box<dyn std::error::Error>> {
    Ok(serde_json::from_slice(&std::fs::read(data().join(file))?)?)
}
