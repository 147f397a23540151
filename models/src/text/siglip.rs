//! SigLIP's text tower (transformers' `SiglipTextModel`, or the text half of a `SiglipModel`) on
//! candle-transformers' `siglip::TextModel`. SigLIP was trained on texts padded to the full
//! context with the pad token and pools the last position, so every text is padded (or cut) to
//! `max_position_embeddings` tokens — which also makes batching trivially invariant.

use super::TextEmbedder;
use crate::ModelError;
use crate::preprocess::pooling::{l2_normalize, to_rows};
use crate::tower_config::{TowerConfig, read_tower_config};
use crate::weights::Checkpoint;
use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::models::siglip::{TextConfig, TextModel};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Texts per forward pass.
const MAX_BATCH: usize = 64;

/// A loaded SigLIP text encoder, with the checkpoint's `logit_scale` and `logit_bias`.
pub struct SiglipTextEncoder {
    name: String,
    dir: PathBuf,
    model: TextModel,
    tokenizer: Tokenizer,
    context: usize,
    dimension: usize,
    logits: Option<(f32, f32)>,
    device: Device,
    placeholder: bool,
}

impl std::fmt::Debug for SiglipTextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiglipTextEncoder")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("dimension", &self.dimension)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl SiglipTextEncoder {
    /// Loads the text tower in `dir` (config.json, model.safetensors, tokenizer.json).
    pub fn load(dir: &Path, name: &str, device: &Device) -> Result<Self, ModelError> {
        let tower: TowerConfig<TextConfig> = read_tower_config(
            dir,
            ["siglip", "siglip_text_model", "text_config"],
            "SigLIP text model",
        )?;
        let config = &tower.fields;
        let path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| ModelError::File {
            path: path.clone(),
            reason: format!("not a readable tokenizer.json: {e}"),
        })?;
        let context = config.max_position_embeddings;
        let pad_token = tokenizer
            .id_to_token(config.pad_token_id)
            .unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(context),
            pad_id: config.pad_token_id,
            pad_token,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: context,
                ..TruncationParams::default()
            }))
            .map_err(|e| ModelError::Tokenizer {
                model: name.to_string(),
                reason: e.to_string(),
            })?;
        let checkpoint = Checkpoint::read(dir, DType::F32, device)?;
        let model = TextModel::new(config, checkpoint.vb.pp("text_model"))
            .map_err(checkpoint.mismatch())?;
        let scalar = |key: &str| -> Result<Option<f32>, ModelError> {
            if !checkpoint.vb.contains_tensor(key) {
                return Ok(None);
            }
            let t = checkpoint.vb.get(1, key).map_err(checkpoint.mismatch())?;
            let v = t.to_vec1::<f32>().map_err(checkpoint.mismatch())?;
            Ok(v.first().copied())
        };
        let logits = match (scalar("logit_scale")?, scalar("logit_bias")?) {
            (Some(scale), Some(bias)) => Some((scale, bias)),
            _ => None,
        };
        if tower.tiny {
            tracing::warn!(model = name, dir = %dir.display(), "tiny random-weight model: its embeddings carry no meaning");
        }
        tracing::info!(model = name, dir = %dir.display(), dim = config.hidden_size, context, "loaded SigLIP text model");
        Ok(SiglipTextEncoder {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            context,
            dimension: config.hidden_size,
            logits,
            device: device.clone(),
            placeholder: tower.tiny,
        })
    }

    /// The checkpoint's `(logit_scale, logit_bias)` (scale before `exp`), when it has them.
    pub fn logits(&self) -> Option<(f32, f32)> {
        self.logits
    }

    /// Token ids of `text` as the model sees it: padded or cut to the full context.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Tokenizer {
                model: self.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }
}

impl TextEmbedder for SiglipTextEncoder {
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
            let mut ids = Vec::with_capacity(chunk.len() * self.context);
            for text in chunk {
                // The tokenizer pads and truncates to the context (set at load).
                let row = self.token_ids(text)?;
                if row.len() != self.context {
                    return Err(ModelError::Tokenizer {
                        model: self.name.clone(),
                        reason: format!("{} tokens, expected {}", row.len(), self.context),
                    });
                }
                ids.extend(row);
            }
            let ids =
                Tensor::from_vec(ids, (chunk.len(), self.context), &self.device).map_err(err())?;
            let pooled = self.model.forward(&ids).map_err(err())?;
            out.extend(to_rows(&l2_normalize(&pooled).map_err(err())?).map_err(err())?);
        }
        Ok(out)
    }
}
