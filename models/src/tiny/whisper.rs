//! A tiny Whisper encoder laid out as transformers' `WhisperForConditionalGeneration`:
//! config.json (`model_type: whisper`), model.safetensors with the checkpoint's `model.encoder.*`
//! tensor names, and preprocessor_config.json for `WhisperFeatureExtractor`. Only the encoder is
//! written: transformers initialises the (unused) decoder itself when it loads the directory.

use super::{Init, Weights, file_error, write_json};
use crate::ModelError;
use crate::audio::sinusoids;
use std::path::Path;

/// Shape and seed of a tiny Whisper encoder. Windows stay Whisper's 30 s (1500 positions):
/// the feature extractor and the model agree on that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyWhisperSpec {
    /// Hidden size.
    pub d_model: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Attention heads (must divide `d_model`).
    pub heads: usize,
    /// Feed-forward width.
    pub ffn: usize,
    /// Mel bins.
    pub mel_bins: usize,
    /// Weight seed.
    pub seed: u64,
}

impl Default for TinyWhisperSpec {
    fn default() -> Self {
        TinyWhisperSpec {
            d_model: 64,
            layers: 2,
            heads: 4,
            ffn: 128,
            mel_bins: 80,
            seed: 11,
        }
    }
}

const POSITIONS: usize = 1500;

/// Writes a tiny Whisper encoder into `dir` (created if missing).
pub fn write_tiny_whisper(dir: &Path, spec: &TinyWhisperSpec) -> Result<(), ModelError> {
    if spec.heads == 0 || !spec.d_model.is_multiple_of(spec.heads) || spec.d_model < 4 {
        return Err(ModelError::Config {
            path: dir.join("config.json"),
            reason: format!(
                "{} heads do not divide d_model {} (at least 4)",
                spec.heads, spec.d_model
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    let (d, f) = (spec.d_model, spec.ffn);
    let mut w = Weights::new(spec.seed);
    let e = "model.encoder";
    w.add(
        &format!("{e}.conv1.weight"),
        &[d, spec.mel_bins, 3],
        Init::Normal(0.15),
    )?;
    w.add(&format!("{e}.conv1.bias"), &[d], Init::Normal(0.02))?;
    w.add(&format!("{e}.conv2.weight"), &[d, d, 3], Init::Normal(0.1))?;
    w.add(&format!("{e}.conv2.bias"), &[d], Init::Normal(0.02))?;
    w.values(
        &format!("{e}.embed_positions.weight"),
        &[POSITIONS, d],
        sinusoids(POSITIONS, d),
    )?;
    for l in 0..spec.layers {
        let p = format!("{e}.layers.{l}");
        for (name, out, inp) in [
            ("self_attn.q_proj", d, d),
            ("self_attn.v_proj", d, d),
            ("self_attn.out_proj", d, d),
            ("fc1", f, d),
            ("fc2", d, f),
        ] {
            w.linear(&format!("{p}.{name}"), out, inp)?;
        }
        w.add(
            &format!("{p}.self_attn.k_proj.weight"),
            &[d, d],
            Init::Normal(0.2),
        )?;
        w.norm(&format!("{p}.self_attn_layer_norm"), d)?;
        w.norm(&format!("{p}.final_layer_norm"), d)?;
    }
    w.norm(&format!("{e}.layer_norm"), d)?;
    w.save(&dir.join("model.safetensors"))?;

    write_json(
        &dir.join("config.json"),
        &serde_json::json!({
            "architectures": ["WhisperForConditionalGeneration"],
            "model_type": "whisper",
            "tessera_tiny": true,
            "d_model": d,
            "encoder_layers": spec.layers,
            "encoder_attention_heads": spec.heads,
            "encoder_ffn_dim": f,
            "decoder_layers": 1,
            "decoder_attention_heads": spec.heads,
            "decoder_ffn_dim": f,
            "num_mel_bins": spec.mel_bins,
            "max_source_positions": POSITIONS,
            "max_target_positions": 32,
            "vocab_size": 64,
            "activation_function": "gelu",
            "scale_embedding": false,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "decoder_start_token_id": 1,
            "torch_dtype": "float32"
        }),
    )?;
    write_json(
        &dir.join("preprocessor_config.json"),
        &serde_json::json!({
            "feature_extractor_type": "WhisperFeatureExtractor",
            "feature_size": spec.mel_bins,
            "sampling_rate": 16000,
            "hop_length": 160,
            "chunk_length": 30,
            "n_fft": 400,
            "n_samples": 480000,
            "nb_max_frames": 3000,
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": false
        }),
    )
}
