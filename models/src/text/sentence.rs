//! A BERT-family sentence encoder: our CPU-tuned [`Bert`] (candle-transformers' config) plus the tokenizer, pooling
//! and normalisation of the sentence-transformers pipeline it was trained with.

use super::TextEmbedder;
use super::bert::Bert;
use super::st_config::{SentenceConfig, read_json};
use crate::ModelError;
use crate::preprocess::pooling::{l2_normalize, pool, to_rows};
use crate::preprocess::tokenize::{TokenBatch, encode_batch, load_tokenizer};
use crate::weights::Checkpoint;
use candle_core::{Device, Tensor};
use candle_transformers::models::bert::{Config, DTYPE};
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// Texts per forward pass; larger inputs are split. 32 is where CPU throughput stops improving
/// for MiniLM-sized models (see BENCHMARKS.md).
const MAX_BATCH: usize = 32;

/// A loaded sentence encoder. Cheap to share (`Arc`) and safe to call from many threads.
pub struct SentenceEncoder {
    name: String,
    dir: PathBuf,
    model: Bert,
    device: Device,
    tokenizer: Tokenizer,
    sentence: SentenceConfig,
    max_len: usize,
    dimension: usize,
    placeholder: bool,
}

/// The parts of config.json that decide whether we can run the model at all.
#[derive(serde::Deserialize)]
struct Architecture {
    model_type: Option<String>,
    #[serde(default)]
    tessera_tiny: bool,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("dimension", &self.dimension)
            .field("max_len", &self.max_len)
            .field("sentence", &self.sentence)
            .finish_non_exhaustive()
    }
}

impl SentenceEncoder {
    /// Loads the model in `dir` (config.json, model.safetensors, tokenizer.json, and the
    /// sentence-transformers files when present) onto `device`, addressed as `name`.
    pub fn load(dir: &Path, name: &str, device: &Device) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        let arch: Architecture = read_json(&config_path)?.ok_or_else(|| ModelError::File {
            path: config_path.clone(),
            reason: "missing: a Hugging Face model directory holds config.json".into(),
        })?;
        match arch.model_type.as_deref() {
            Some("bert") | None => {}
            Some(other) => {
                return Err(ModelError::Config {
                    path: config_path,
                    reason: format!(
                        "model_type {other:?} is not supported for text (supported: bert)"
                    ),
                });
            }
        }
        let config: Config = read_json(&config_path)?.ok_or_else(|| ModelError::File {
            path: config_path.clone(),
            reason: "missing".into(),
        })?;

        let sentence = SentenceConfig::read(dir)?;
        let max_len = sentence
            .max_seq_length
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"), name, max_len)?;

        let checkpoint = Checkpoint::read(dir, DTYPE, device)?;
        let model = Bert::load(checkpoint.vb.clone(), &config).map_err(checkpoint.mismatch())?;

        if arch.tessera_tiny {
            tracing::warn!(model = name, dir = %dir.display(), "tiny random-weight model: its embeddings carry no meaning");
        }
        tracing::info!(model = name, dir = %dir.display(), dim = config.hidden_size, max_len, pooling = ?sentence.pooling, normalize = sentence.normalize, "loaded text model");
        Ok(SentenceEncoder {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            model,
            device: device.clone(),
            tokenizer,
            sentence,
            max_len,
            dimension: config.hidden_size,
            placeholder: arch.tessera_tiny,
        })
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Maximum tokens per text (longer texts are truncated).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Runs the network on a tokenized batch: `rows × dimension` sentence vectors.
    pub fn forward(&self, batch: &TokenBatch) -> Result<Tensor, ModelError> {
        let err = ModelError::candle(&self.name);
        let device = &self.device;
        let shape = (batch.rows, batch.seq_len);
        let ids = Tensor::from_slice(&batch.ids, shape, device).map_err(err)?;
        let mask = Tensor::from_slice(&batch.mask, shape, device)
            .map_err(ModelError::candle(&self.name))?;
        let type_ids = ids.zeros_like().map_err(ModelError::candle(&self.name))?;
        let hidden = self
            .model
            .forward(&ids, &type_ids, &mask)
            .map_err(ModelError::candle(&self.name))?;
        let pooled =
            pool(&hidden, &mask, self.sentence.pooling).map_err(ModelError::candle(&self.name))?;
        if self.sentence.normalize {
            l2_normalize(&pooled).map_err(ModelError::candle(&self.name))
        } else {
            Ok(pooled)
        }
    }
}

impl TextEmbedder for SentenceEncoder {
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
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MAX_BATCH) {
            let batch = encode_batch(&self.tokenizer, &self.name, chunk)?;
            let vectors = self.forward(&batch)?;
            out.extend(to_rows(&vectors).map_err(ModelError::candle(&self.name))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{TinyBertSpec, write_tiny_bert};

    fn tiny() -> Result<(tempfile::TempDir, SentenceEncoder), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        write_tiny_bert(dir.path(), &TinyBertSpec::default())?;
        let encoder = SentenceEncoder::load(dir.path(), "tiny", &Device::Cpu)?;
        Ok((dir, encoder))
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn embeds_unit_vectors_of_the_model_dimension() -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, encoder) = tiny()?;
        assert!(encoder.is_placeholder());
        let vectors = encoder.embed(&["a detective returns home", "the recipe needs flour"])?;
        assert_eq!(vectors.len(), 2);
        for v in &vectors {
            assert_eq!(v.len(), encoder.dimension());
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
        assert!(
            max_abs_diff(&vectors[0], &vectors[1]) > 1e-3,
            "different texts, different vectors"
        );
        Ok(())
    }

    #[test]
    fn batch_invariance_with_padding() -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, encoder) = tiny()?;
        let text = "a short one";
        let alone = encoder.embed(&[text])?;
        let batch = encoder.embed(&[
            "a much longer text that forces a lot of padding onto the short one in the same batch",
            text,
            "another long sentence, with punctuation; and more words to pad against",
        ])?;
        let diff = max_abs_diff(&alone[0], &batch[1]);
        assert!(diff < 1e-5, "max abs diff {diff}");
        Ok(())
    }

    #[test]
    fn truncates_long_text_instead_of_failing() -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, encoder) = tiny()?;
        let long = "word ".repeat(10 * encoder.max_len());
        let v = encoder.embed(&[&long])?;
        assert_eq!(v[0].len(), encoder.dimension());
        Ok(())
    }

    #[test]
    fn rejects_unsupported_architecture_and_missing_files() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let msg = SentenceEncoder::load(dir.path(), "x", &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("config.json") && msg.contains("missing"),
            "{msg}"
        );
        std::fs::write(dir.path().join("config.json"), r#"{"model_type": "llama"}"#)?;
        let msg = SentenceEncoder::load(dir.path(), "x", &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("\"llama\" is not supported"), "{msg}");

        write_tiny_bert(dir.path(), &TinyBertSpec::default())?;
        std::fs::write(dir.path().join("model.safetensors"), b"garbage")?;
        let msg = SentenceEncoder::load(dir.path(), "x", &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("model.safetensors") && msg.contains("safetensors"),
            "{msg}"
        );
        Ok(())
    }
}
