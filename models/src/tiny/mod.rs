//! Deterministic tiny random-weight models in Hugging Face format.
//!
//! Tests and offline demos need models with the real file layout (config.json, safetensors with
//! the checkpoint's tensor names, tokenizer or preprocessor files) but no hub. The weights come
//! from a seeded generator, so the same spec always writes byte-identical files, and `config.json`
//! carries `"tessera_tiny": true` so that loaders can warn that the embeddings carry no meaning.
//! The same directories load in Hugging Face transformers, which is how the fidelity references
//! in `tests/data/` were produced (scripts/reference/).

mod bert;
mod clip;
mod clip_tokenizer;
mod siglip;
mod whisper;

pub use bert::{TinyBertSpec, write_tiny_bert};
pub use clip::{TinyClipSpec, write_tiny_clip, write_tiny_clip_vision};
pub use siglip::{TinySiglipSpec, write_tiny_siglip};
pub use whisper::{TinyWhisperSpec, write_tiny_whisper};

use crate::ModelError;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// How a tensor is filled.
#[derive(Clone, Copy)]
pub(crate) enum Init {
    /// Normal(0, std).
    Normal(f64),
    Ones,
    Zeros,
}

/// SplitMix64 plus Box–Muller: deterministic across platforms, no dependency.
struct Normal(u64);

impl Normal {
    fn next_u01(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn sample(&mut self, std: f64) -> f32 {
        let u1 = self.next_u01().max(f64::MIN_POSITIVE);
        let u2 = self.next_u01();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
    }
}

/// A tensor of `shape` with normally distributed values (standard deviation `std`) from seed
/// `seed`: deterministic inputs for tests.
#[cfg(test)]
pub(crate) fn normal_tensor(shape: &[usize], std: f64, seed: u64) -> candle_core::Result<Tensor> {
    let mut rng = Normal(seed);
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.sample(std)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Named tensors filled from one seeded generator, in the order they are added.
pub(crate) struct Weights {
    rng: Normal,
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    pub(crate) fn new(seed: u64) -> Self {
        Weights {
            rng: Normal(seed),
            tensors: HashMap::new(),
        }
    }

    pub(crate) fn add(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
    ) -> Result<(), ModelError> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| match init {
                Init::Normal(std) => self.rng.sample(std),
                Init::Ones => 1.0,
                Init::Zeros => 0.0,
            })
            .collect();
        let tensor =
            Tensor::from_vec(data, shape, &Device::Cpu).map_err(ModelError::candle("tiny"))?;
        self.tensors.insert(name.to_string(), tensor);
        Ok(())
    }

    /// A tensor with given values (e.g. a fixed position table).
    pub(crate) fn values(
        &mut self,
        name: &str,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<(), ModelError> {
        let tensor =
            Tensor::from_vec(data, shape, &Device::Cpu).map_err(ModelError::candle("tiny"))?;
        self.tensors.insert(name.to_string(), tensor);
        Ok(())
    }

    /// A dense layer `prefix.weight` (out × in) and `prefix.bias`.
    pub(crate) fn linear(
        &mut self,
        prefix: &str,
        out: usize,
        inp: usize,
    ) -> Result<(), ModelError> {
        self.add(&format!("{prefix}.weight"), &[out, inp], Init::Normal(0.2))?;
        self.add(&format!("{prefix}.bias"), &[out], Init::Normal(0.02))
    }

    /// CLIP-style transformer layers `{tower}.encoder.layers.N` (attention, two layer norms, MLP),
    /// as CLIP and SigLIP checkpoints name them.
    pub(crate) fn encoder_layers(
        &mut self,
        tower: &str,
        hidden: usize,
        intermediate: usize,
        layers: usize,
    ) -> Result<(), ModelError> {
        let (h, i) = (hidden, intermediate);
        for l in 0..layers {
            let p = format!("{tower}.encoder.layers.{l}");
            for (name, out, inp) in [
                ("self_attn.q_proj", h, h),
                ("self_attn.k_proj", h, h),
                ("self_attn.v_proj", h, h),
                ("self_attn.out_proj", h, h),
                ("mlp.fc1", i, h),
                ("mlp.fc2", h, i),
            ] {
                self.linear(&format!("{p}.{name}"), out, inp)?;
            }
            self.norm(&format!("{p}.layer_norm1"), h)?;
            self.norm(&format!("{p}.layer_norm2"), h)?;
        }
        Ok(())
    }

    /// A layer norm `prefix.weight` (ones) and `prefix.bias` (zeros).
    pub(crate) fn norm(&mut self, prefix: &str, dim: usize) -> Result<(), ModelError> {
        self.add(&format!("{prefix}.weight"), &[dim], Init::Ones)?;
        self.add(&format!("{prefix}.bias"), &[dim], Init::Zeros)
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), ModelError> {
        candle_core::safetensors::save(&self.tensors, path).map_err(|e| ModelError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ModelError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| ModelError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub(crate) fn file_error(dir: &Path, e: std::io::Error) -> ModelError {
    ModelError::File {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    }
}
