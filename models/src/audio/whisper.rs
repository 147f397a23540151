//! Whisper's audio encoder (transformers' `WhisperEncoder`) as an audio embedder.
//!
//! Written on candle-nn rather than candle-transformers' `whisper::AudioEncoder` because that one
//! uses the tanh GELU approximation where Whisper uses the exact one, ignores the checkpoint's
//! position table and hard-codes the feed-forward width; and its loader is private.

use super::{AudioEmbedder, WindowFeatures};
use crate::ModelError;
use crate::cpu_ops::gelu_erf;
use crate::packed_linear::Projection;
use crate::preprocess::mel::LogMel;
use crate::text::read_model_config;
use crate::weights::Checkpoint;
use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, VarBuilder};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Windows per forward pass; a 30 s window is 1500 positions, so memory grows fast with this.
const MAX_BATCH: usize = 4;

/// The encoder fields of a Whisper config.json.
#[derive(Debug, Clone, Deserialize)]
pub struct WhisperEncoderConfig {
    /// Hidden size.
    pub d_model: usize,
    /// Transformer layers.
    pub encoder_layers: usize,
    /// Attention heads.
    pub encoder_attention_heads: usize,
    /// Feed-forward width.
    pub encoder_ffn_dim: usize,
    /// Mel bins of the input.
    pub num_mel_bins: usize,
    /// Positions after the stride-2 convolution (1500 for 30 s windows).
    pub max_source_positions: usize,
    /// Activation; Whisper checkpoints use `gelu` (exact).
    #[serde(default = "gelu")]
    pub activation_function: String,
}

fn gelu() -> String {
    "gelu".into()
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    model_type: Option<String>,
    #[serde(default)]
    tessera_tiny: bool,
    #[serde(flatten)]
    rest: serde_json::Value,
}

#[derive(Debug)]
struct Layer {
    q: Projection,
    k: Projection,
    v: Projection,
    out: Projection,
    attn_norm: LayerNorm,
    fc1: Projection,
    fc2: Projection,
    ffn_norm: LayerNorm,
}

fn layer_norm(dim: usize, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
    candle_nn::layer_norm(dim, 1e-5, vb)
}

fn conv(inp: usize, out: usize, stride: usize, vb: VarBuilder) -> candle_core::Result<Conv1d> {
    let config = Conv1dConfig {
        padding: 1,
        stride,
        ..Default::default()
    };
    candle_nn::conv1d(inp, out, 3, config, vb)
}

impl Layer {
    fn load(c: &WhisperEncoderConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = c.d_model;
        let a = vb.pp("self_attn");
        let p = Projection::new;
        Ok(Layer {
            q: p(candle_nn::linear(d, d, a.pp("q_proj"))?)?,
            k: p(candle_nn::linear_no_bias(d, d, a.pp("k_proj"))?)?,
            v: p(candle_nn::linear(d, d, a.pp("v_proj"))?)?,
            out: p(candle_nn::linear(d, d, a.pp("out_proj"))?)?,
            attn_norm: layer_norm(d, vb.pp("self_attn_layer_norm"))?,
            fc1: p(candle_nn::linear(d, c.encoder_ffn_dim, vb.pp("fc1"))?)?,
            fc2: p(candle_nn::linear(c.encoder_ffn_dim, d, vb.pp("fc2"))?)?,
            ffn_norm: layer_norm(d, vb.pp("final_layer_norm"))?,
        })
    }

    fn forward(&self, x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let hd = d / heads;
        let h = self.attn_norm.forward(x)?;
        let split = |y: Tensor| y.reshape((b, t, heads, hd))?.transpose(1, 2)?.contiguous();
        let q = split((self.q.forward(&h)? * (hd as f64).powf(-0.5))?)?;
        let k = split(self.k.forward(&h)?)?;
        let v = split(self.v.forward(&h)?)?;
        let attn = attention(&q, &k.t()?, &v, SCORE_BLOCK_BYTES)?
            .transpose(1, 2)?
            .reshape((b, t, d))?;
        let x = (x + self.out.forward(&attn)?)?;
        let h = self.ffn_norm.forward(&x)?;
        let h = self.fc2.forward(&gelu_erf(&self.fc1.forward(&h)?)?)?;
        x + h
    }
}

/// Bytes of attention scores computed at once. A 30 s window has 1500 positions, so the full
/// `[batch, heads, 1500, 1500]` scores of whisper-base at batch 2 are 144 MiB: an allocation
/// that large is always a fresh mapping, and clearing its pages was 28% of the encoder's
/// samples. Blocks of queries under glibc's largest mmap threshold (32 MiB) reuse heap memory.
const SCORE_BLOCK_BYTES: usize = 16 << 20;

/// `softmax(q · kᵀ) · v` for `q` `[b, heads, t, d]`, `k_t` `[b, heads, d, t]`, `v`
/// `[b, heads, t, d]`, in blocks of queries whose scores take at most `block_bytes` (each query's
/// row is computed alone, so blocking changes no value beyond the matmul's rounding).
fn attention(
    q: &Tensor,
    k_t: &Tensor,
    v: &Tensor,
    block_bytes: usize,
) -> candle_core::Result<Tensor> {
    let (b, heads, t, _) = q.dims4()?;
    let keys = k_t.dim(3)?;
    let per_row = b * heads * keys * std::mem::size_of::<f32>();
    let rows = (block_bytes / per_row.max(1)).clamp(1, t.max(1));
    let blocks = (0..t)
        .step_by(rows)
        .map(|start| {
            let q = q.narrow(2, start, rows.min(t - start))?;
            candle_nn::ops::softmax_last_dim(&q.matmul(k_t)?)?.matmul(v)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&blocks, 2)
}

/// A loaded Whisper encoder with its feature extractor.
pub struct WhisperAudioEncoder {
    name: String,
    dir: PathBuf,
    config: WhisperEncoderConfig,
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    mel: LogMel,
    device: Device,
    placeholder: bool,
}

impl std::fmt::Debug for WhisperAudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperAudioEncoder")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("config", &self.config)
            .field("mel", &self.mel)
            .finish_non_exhaustive()
    }
}

/// Whisper's fixed sinusoidal position table (what real checkpoints store as `embed_positions`).
pub fn sinusoids(length: usize, channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let step = (10_000f64).ln() / (half.max(2) - 1) as f64;
    let mut out = vec![0.0f32; length * channels];
    for t in 0..length {
        for i in 0..half {
            let angle = t as f64 * (-step * i as f64).exp();
            out[t * channels + i] = angle.sin() as f32;
            out[t * channels + half + i] = angle.cos() as f32;
        }
    }
    out
}

impl WhisperAudioEncoder {
    /// Loads the encoder in `dir` (config.json with `model_type: whisper`, model.safetensors of a
    /// `WhisperModel` or `WhisperForConditionalGeneration`, preprocessor_config.json).
    pub fn load(dir: &Path, name: &str, device: &Device) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        let bad = |reason: String| ModelError::Config {
            path: config_path.clone(),
            reason,
        };
        let file: ConfigFile = read_model_config(&config_path)?;
        if file.model_type.as_deref() != Some("whisper") {
            return Err(bad(format!(
                "model_type {:?} is not a supported audio model (supported: whisper)",
                file.model_type
            )));
        }
        let config: WhisperEncoderConfig =
            serde_json::from_value(file.rest).map_err(|e| bad(e.to_string()))?;
        if config.activation_function != "gelu" {
            return Err(bad(format!(
                "activation_function {:?} is not supported (gelu only)",
                config.activation_function
            )));
        }
        if config.encoder_attention_heads == 0
            || !config
                .d_model
                .is_multiple_of(config.encoder_attention_heads)
        {
            return Err(bad(format!(
                "{} heads do not divide d_model {}",
                config.encoder_attention_heads, config.d_model
            )));
        }
        let mel = LogMel::read(&dir.join("preprocessor_config.json"))?;
        if mel.n_mels() != config.num_mel_bins || mel.frames() != 2 * config.max_source_positions {
            return Err(ModelError::Config {
                path: dir.join("preprocessor_config.json"),
                reason: format!(
                    "{} mel bins × {} frames do not fit the encoder's {} bins × {} frames",
                    mel.n_mels(),
                    mel.frames(),
                    config.num_mel_bins,
                    2 * config.max_source_positions
                ),
            });
        }
        let checkpoint = Checkpoint::read(dir, DType::F32, device)?;
        let vb = if checkpoint.vb.contains_tensor("model.encoder.conv1.weight") {
            checkpoint.vb.pp("model.encoder")
        } else {
            checkpoint.vb.pp("encoder")
        };
        let load = || -> candle_core::Result<_> {
            let conv1 = conv(config.num_mel_bins, config.d_model, 1, vb.pp("conv1"))?;
            let conv2 = conv(config.d_model, config.d_model, 2, vb.pp("conv2"))?;
            let table = (config.max_source_positions, config.d_model);
            let positions = if vb.contains_tensor("embed_positions.weight") {
                vb.get(table, "embed_positions.weight")?
            } else {
                Tensor::from_vec(sinusoids(table.0, table.1), table, device)?
            };
            let layers = (0..config.encoder_layers)
                .map(|i| Layer::load(&config, vb.pp(format!("layers.{i}"))))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let final_norm = layer_norm(config.d_model, vb.pp("layer_norm"))?;
            Ok((conv1, conv2, positions, layers, final_norm))
        };
        let (conv1, conv2, positions, layers, final_norm) =
            load().map_err(checkpoint.mismatch())?;
        if file.tessera_tiny {
            tracing::warn!(model = name, dir = %dir.display(), "tiny random-weight model: its embeddings carry no meaning");
        }
        tracing::info!(model = name, dir = %dir.display(), dim = config.d_model, layers = config.encoder_layers, "loaded audio model");
        Ok(WhisperAudioEncoder {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            config,
            conv1,
            conv2,
            positions,
            layers,
            final_norm,
            mel,
            device: device.clone(),
            placeholder: file.tessera_tiny,
        })
    }

    /// The encoder's config.
    pub fn config(&self) -> &WhisperEncoderConfig {
        &self.config
    }

    /// The feature extractor.
    pub fn mel(&self) -> &LogMel {
        &self.mel
    }

    /// Runs the encoder on `batch × n_mels × frames` features: `batch × positions × d_model`.
    pub fn forward(&self, features: &Tensor) -> Result<Tensor, ModelError> {
        let run = || -> candle_core::Result<Tensor> {
            let x = gelu_erf(&self.conv1.forward(features)?)?;
            let x = gelu_erf(&self.conv2.forward(&x)?)?.transpose(1, 2)?;
            let mut x = x.broadcast_add(&self.positions)?;
            for layer in &self.layers {
                x = layer.forward(&x, self.config.encoder_attention_heads)?;
            }
            self.final_norm.forward(&x)
        };
        run().map_err(ModelError::candle(&self.name))
    }

    /// Encoder positions covering `samples` real samples of a window (at least one).
    fn real_positions(&self, samples: usize) -> usize {
        let per_position = 2 * self.mel.hop();
        samples
            .div_ceil(per_position)
            .clamp(1, self.config.max_source_positions)
    }
}

impl AudioEmbedder for WhisperAudioEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.config.d_model
    }

    fn sample_rate(&self) -> u32 {
        self.mel.sample_rate()
    }

    fn window_samples(&self) -> usize {
        self.mel.window_samples()
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn is_placeholder(&self) -> bool {
        self.placeholder
    }

    fn window_features(&self, samples: &[f32]) -> WindowFeatures {
        WindowFeatures {
            features: self.mel.compute(samples),
            positions: self.real_positions(samples.len()),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(model = %self.name, windows = windows.len()))]
    fn embed_windows(&self, windows: &[WindowFeatures]) -> Result<Vec<Vec<f32>>, ModelError> {
        let (n_mels, frames) = (self.mel.n_mels(), self.mel.frames());
        if let Some(bad) = windows.iter().find(|w| w.features.len() != n_mels * frames) {
            return Err(ModelError::InvalidInput {
                model: self.name.clone(),
                reason: format!(
                    "{} feature values, expected {n_mels}×{frames}",
                    bad.features.len()
                ),
            });
        }
        let mut out = Vec::with_capacity(windows.len());
        for chunk in windows.chunks(MAX_BATCH) {
            let data: Vec<f32> = chunk
                .iter()
                .flat_map(|w| w.features.iter().copied())
                .collect();
            let features = Tensor::from_vec(data, (chunk.len(), n_mels, frames), &self.device)
                .map_err(ModelError::candle(&self.name))?;
            let hidden = self.forward(&features)?;
            for (i, window) in chunk.iter().enumerate() {
                let real = window.positions.clamp(1, self.config.max_source_positions);
                let mean = hidden
                    .i((i, 0..real))
                    .and_then(|h| h.mean(D::Minus2))
                    .and_then(|m| m.to_vec1::<f32>())
                    .map_err(ModelError::candle(&self.name))?;
                out.push(mean);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_in_query_blocks_matches_attention_at_once() -> candle_core::Result<()> {
        // 37 positions: blocks of 5 rows (the last one ragged), of 1 row, and all at once.
        let (b, heads, t, d) = (2, 3, 37, 8);
        let values = |seed| crate::tiny::normal_tensor(&[b, heads, t, d], 0.5, seed);
        let q = values(1)?;
        let k_t = values(2)?.t()?;
        let v = values(3)?;
        let whole = attention(&q, &k_t, &v, usize::MAX)?;
        let row_bytes = b * heads * t * 4;
        for block in [5 * row_bytes, row_bytes, 0] {
            let blocked = attention(&q, &k_t, &v, block)?;
            assert_eq!(blocked.dims(), whole.dims());
            let diff = (&blocked - &whole)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-6, "blocks of {block} bytes: max abs diff {diff}");
        }
        Ok(())
    }
}
