//! CLIP's text tower with its projection (transformers' `CLIPTextModelWithProjection`, or the text
//! half of a full `CLIPModel` checkpoint), for zero-shot scoring against CLIP image embeddings.
//!
//! candle-transformers' `ClipTextTransformer` runs the causal transformer; pooling is ours: the
//! hidden state at the first `<|endoftext|>` of each row, as transformers does when the config
//! names an `eos_token_id` (the legacy argmax-of-ids rule only when it is 2). Rows are padded on
//! the right and attention is causal, so padding never changes a row's vector.

use super::TextEmbedder;
use crate::ModelError;
use crate::preprocess::pooling::{l2_normalize, to_rows};
use crate::preprocess::tokenize::{encode_batch, load_tokenizer};
use crate::tower_config::{TowerConfig, read_tower_config};
use crate::weights::Checkpoint;
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::Linear;
use candle_transformers::models::clip::text_model::{
    Activation, ClipTextConfig, ClipTextTransformer,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// Texts per forward pass.
const MAX_BATCH: usize = 64;

/// Where the text tower's config sits: `[full model type, tower model type, key in the full
/// model's config]`.
const TEXT_KEYS: [&str; 3] = ["clip", "clip_text_model", "text_config"];

#[derive(Debug, Deserialize)]
struct TextFields {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default = "seventy_seven")]
    max_position_embeddings: usize,
    vocab_size: usize,
    projection_dim: Option<usize>,
    #[serde(default = "quick_gelu")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "legacy_eos")]
    eos_token_id: u32,
}

fn seventy_seven() -> usize {
    77
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn legacy_eos() -> u32 {
    2
}

/// candle's config of the text tower `tower` describes, or why it is not supported.
fn candle_config(tower: &TowerConfig<TextFields>) -> Result<ClipTextConfig, ModelError> {
    let bad = |reason: String| tower.error(reason);
    let fields = &tower.fields;
    let projection_dim = tower
        .projection_dim
        .or(fields.projection_dim)
        .ok_or_else(|| bad("projection_dim is missing".into()))?;
    if fields.hidden_act != "quick_gelu" || (fields.layer_norm_eps - 1e-5).abs() > 1e-12 {
        return Err(bad(format!(
            "hidden_act {:?} with layer_norm_eps {} is not supported (quick_gelu, 1e-5 only)",
            fields.hidden_act, fields.layer_norm_eps
        )));
    }
    Ok(ClipTextConfig {
        vocab_size: fields.vocab_size,
        embed_dim: fields.hidden_size,
        activation: Activation::QuickGelu,
        intermediate_size: fields.intermediate_size,
        max_position_embeddings: fields.max_position_embeddings,
        pad_with: None,
        num_hidden_layers: fields.num_hidden_layers,
        num_attention_heads: fields.num_attention_heads,
        projection_dim,
    })
}

/// A loaded CLIP text encoder; its vectors are unit length, comparable with the same
/// checkpoint's [`crate::ClipVisionEncoder`] vectors.
pub struct ClipTextEncoder {
    name: String,
    dir: PathBuf,
    model: ClipTextTransformer,
    projection: Linear,
    tokenizer: Tokenizer,
    eos_token_id: u32,
    dimension: usize,
    logit_scale: Option<f32>,
    device: Device,
    placeholder: bool,
}

impl std::fmt::Debug for ClipTextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTextEncoder")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("dimension", &self.dimension)
            .field("eos_token_id", &self.eos_token_id)
            .field("logit_scale", &self.logit_scale)
            .finish_non_exhaustive()
    }
}

impl ClipTextEncoder {
    /// Loads the text tower in `dir` (config.json, model.safetensors, tokenizer.json).
    pub fn load(dir: &Path, name: &str, device: &Device) -> Result<Self, ModelError> {
        let tower: TowerConfig<TextFields> = read_tower_config(dir, TEXT_KEYS, "CLIP text model")?;
        let fields = &tower.fields;
        let config = candle_config(&tower)?;
        let projection_dim = config.projection_dim;
        let tokenizer = load_tokenizer(
            &dir.join("tokenizer.json"),
            name,
            fields.max_position_embeddings,
        )?;
        let checkpoint = Checkpoint::read(dir, DType::F32, device)?;
        let model = ClipTextTransformer::new(checkpoint.vb.pp("text_model"), &config)
            .map_err(checkpoint.mismatch())?;
        let projection = candle_nn::linear_no_bias(
            fields.hidden_size,
            projection_dim,
            checkpoint.vb.pp("text_projection"),
        )
        .map_err(checkpoint.mismatch())?;
        let logit_scale = if checkpoint.vb.contains_tensor("logit_scale") {
            let t = checkpoint
                .vb
                .get((), "logit_scale")
                .map_err(checkpoint.mismatch())?;
            Some(t.to_scalar::<f32>().map_err(checkpoint.mismatch())?)
        } else {
            None
        };
        if tower.tiny {
            tracing::warn!(model = name, dir = %dir.display(), "tiny random-weight model: its embeddings carry no meaning");
        }
        tracing::info!(model = name, dir = %dir.display(), dim = projection_dim, "loaded CLIP text model");
        Ok(ClipTextEncoder {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            model,
            projection,
            tokenizer,
            eos_token_id: fields.eos_token_id,
            dimension: projection_dim,
            logit_scale,
            device: device.clone(),
            placeholder: tower.tiny,
        })
    }

    /// The checkpoint's learned temperature `logit_scale` (before `exp`), when it has one.
    pub fn logit_scale(&self) -> Option<f32> {
        self.logit_scale
    }

    /// Token ids of `text` as this model sees it (special tokens, truncation).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let batch = encode_batch(&self.tokenizer, &self.name, &[text])?;
        Ok(batch.ids)
    }

    /// The pooling position of each row: its first end-of-text token (the legacy rule, for
    /// configs whose eos id is 2, is the position of the largest id).
    fn eos_positions(&self, ids: &[u32], rows: usize, seq_len: usize) -> Vec<usize> {
        (0..rows)
            .map(|r| {
                let row = &ids[r * seq_len..(r + 1) * seq_len];
                if self.eos_token_id == 2 {
                    row.iter()
                        .enumerate()
                        .max_by_key(|(i, id)| (**id, std::cmp::Reverse(*i)))
                        .map_or(0, |(i, _)| i)
                } else {
                    row.iter()
                        .position(|id| *id == self.eos_token_id)
                        .unwrap_or(seq_len.saturating_sub(1))
                }
            })
            .collect()
    }
}

impl TextEmbedder for ClipTextEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn is_placeholder(&self) -> bool {
        self.placeholder
    }

    #[tracing::instrument(level = "debug", skip_all, fields(model = %self.name, texts = texts.len()))]
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let err = || ModelError::candle(&self.name);
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MAX_BATCH) {
            let batch = encode_batch(&self.tokenizer, &self.name, chunk)?;
            let positions = self.eos_positions(&batch.ids, batch.rows, batch.seq_len);
            let ids = Tensor::from_vec(batch.ids, (batch.rows, batch.seq_len), &self.device)
                .map_err(err())?;
            let hidden = self
                .model
                .forward_with_mask(&ids, usize::MAX)
                .map_err(err())?;
            let pooled = positions
                .iter()
                .enumerate()
                .map(|(r, &p)| hidden.i((r, p)))
                .collect::<candle_core::Result<Vec<_>>>()
                .and_then(|rows| Tensor::stack(&rows, 0))
                .map_err(err())?;
            let projected = self.projection.forward(&pooled).map_err(err())?;
            let unit = l2_normalize(&projected).map_err(err())?;
            out.extend(to_rows(&unit).map_err(err())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{TinyClipSpec, write_tiny_clip};

    #[test]
    fn the_published_clip_vit_base_patch32_config_builds_its_text_tower()
    -> Result<(), Box<dyn std::error::Error>> {
        let tower: TowerConfig<TextFields> = crate::tower_config::read_published(
            "openai-clip-vit-base-patch32",
            TEXT_KEYS,
            "CLIP text model",
        )?;
        // This checkpoint predates the real end-of-text id in its config (2, not 49407).
        assert_eq!(tower.fields.eos_token_id, 2);
        let c = candle_config(&tower)?;
        assert_eq!(
            (c.vocab_size, c.embed_dim, c.intermediate_size),
            (49408, 512, 2048)
        );
        assert_eq!(
            (c.num_hidden_layers, c.num_attention_heads, c.projection_dim),
            (12, 8, 512)
        );
        assert_eq!(c.max_position_embeddings, 77);
        let vb = candle_nn::VarBuilder::zeros(DType::F32, &Device::Cpu);
        let model = ClipTextTransformer::new(vb.pp("text_model"), &c)?;
        let ids = Tensor::zeros((1, 77), DType::U32, &Device::Cpu)?;
        assert_eq!(model.forward(&ids)?.dims(), &[1, 512]);
        Ok(())
    }

    #[test]
    fn padding_and_batching_do_not_change_a_prompt() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        write_tiny_clip(dir.path(), &TinyClipSpec::default())?;
        let encoder = ClipTextEncoder::load(dir.path(), "tiny-clip", &Device::Cpu)?;
        assert_eq!(encoder.logit_scale(), Some(2.6592));
        let alone = encoder.embed(&["a photo of a dog"])?;
        let batch = encoder.embed(&[
            "a very long description of a dark horror film at night in the forest",
            "a photo of a dog",
        ])?;
        let diff = alone[0]
            .iter()
            .zip(&batch[1])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "batch invariance: {diff}");
        let norm: f32 = alone[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        Ok(())
    }
}
