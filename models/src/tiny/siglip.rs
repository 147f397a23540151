//! A tiny SigLIP laid out as transformers' `SiglipModel`: config.json (`model_type: siglip`),
//! model.safetensors with the checkpoint's tensor names (attention-pooling head, text head,
//! `logit_scale` and `logit_bias`), preprocessor_config.json (exact BILINEAR resize, mean/std
//! 0.5) and a tokenizer. Real SigLIP tokenizes with SentencePiece; the tiny one reuses the tiny
//! CLIP's byte-level BPE (a tokenizer.json either way, read by the same code).

use super::clip_tokenizer::write_clip_tokenizer;
use super::{Init, Weights, file_error, write_json};
use crate::ModelError;
use std::path::Path;

/// Shape and seed of a tiny SigLIP; both towers share the width, depth and heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinySiglipSpec {
    /// Hidden size (= embedding dimension).
    pub hidden: usize,
    /// Layers per tower.
    pub layers: usize,
    /// Attention heads (must divide `hidden`).
    pub heads: usize,
    /// Feed-forward size.
    pub intermediate: usize,
    /// Input side in pixels.
    pub image_size: usize,
    /// Patch side in pixels (must divide `image_size`).
    pub patch_size: usize,
    /// Text context (every text is padded to it).
    pub context: usize,
    /// Weight seed.
    pub seed: u64,
}

impl Default for TinySiglipSpec {
    fn default() -> Self {
        TinySiglipSpec {
            hidden: 32,
            layers: 2,
            heads: 4,
            intermediate: 64,
            image_size: 32,
            patch_size: 8,
            context: 24,
            seed: 13,
        }
    }
}

/// Writes a tiny SigLIP into `dir` (created if missing).
pub fn write_tiny_siglip(dir: &Path, spec: &TinySiglipSpec) -> Result<(), ModelError> {
    if spec.heads == 0
        || !spec.hidden.is_multiple_of(spec.heads)
        || spec.patch_size == 0
        || !spec.image_size.is_multiple_of(spec.patch_size)
    {
        return Err(ModelError::Config {
            path: dir.join("config.json"),
            reason: format!("inconsistent tiny SigLIP spec {spec:?}"),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    let vocab = write_clip_tokenizer(dir, spec.context)?;
    let (h, i) = (spec.hidden, spec.intermediate);
    let patches = (spec.image_size / spec.patch_size).pow(2);
    let mut w = Weights::new(spec.seed);
    let v = "vision_model";
    w.add(
        &format!("{v}.embeddings.patch_embedding.weight"),
        &[h, 3, spec.patch_size, spec.patch_size],
        Init::Normal(0.1),
    )?;
    w.add(
        &format!("{v}.embeddings.patch_embedding.bias"),
        &[h],
        Init::Normal(0.02),
    )?;
    w.add(
        &format!("{v}.embeddings.position_embedding.weight"),
        &[patches, h],
        Init::Normal(0.1),
    )?;
    w.encoder_layers(v, spec.hidden, spec.intermediate, spec.layers)?;
    w.norm(&format!("{v}.post_layernorm"), h)?;
    w.add(&format!("{v}.head.probe"), &[1, 1, h], Init::Normal(0.5))?;
    w.add(
        &format!("{v}.head.attention.in_proj_weight"),
        &[3 * h, h],
        Init::Normal(0.2),
    )?;
    w.add(
        &format!("{v}.head.attention.in_proj_bias"),
        &[3 * h],
        Init::Normal(0.02),
    )?;
    w.linear(&format!("{v}.head.attention.out_proj"), h, h)?;
    w.norm(&format!("{v}.head.layernorm"), h)?;
    w.linear(&format!("{v}.head.mlp.fc1"), i, h)?;
    w.linear(&format!("{v}.head.mlp.fc2"), h, i)?;
    let t = "text_model";
    w.add(
        &format!("{t}.embeddings.token_embedding.weight"),
        &[vocab, h],
        Init::Normal(0.5),
    )?;
    w.add(
        &format!("{t}.embeddings.position_embedding.weight"),
        &[spec.context, h],
        Init::Normal(0.1),
    )?;
    w.encoder_layers(t, spec.hidden, spec.intermediate, spec.layers)?;
    w.norm(&format!("{t}.final_layer_norm"), h)?;
    w.linear(&format!("{t}.head"), h, h)?;
    // SigLIP's initial values: scale ln(10), bias -10.
    w.values("logit_scale", &[1], vec![10f32.ln()])?;
    w.values("logit_bias", &[1], vec![-10.0])?;
    w.save(&dir.join("model.safetensors"))?;

    let eos = vocab - 1;
    let tower = |extra: serde_json::Value| {
        let mut c = serde_json::json!({
            "hidden_size": h,
            "intermediate_size": i,
            "num_hidden_layers": spec.layers,
            "num_attention_heads": spec.heads,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        });
        if let (Some(c), serde_json::Value::Object(extra)) = (c.as_object_mut(), extra) {
            c.extend(extra);
        }
        c
    };
    write_json(
        &dir.join("config.json"),
        &serde_json::json!({
            "architectures": ["SiglipModel"],
            "model_type": "siglip",
            "tessera_tiny": true,
            "torch_dtype": "float32",
            "text_config": tower(serde_json::json!({
                "vocab_size": vocab,
                "max_position_embeddings": spec.context,
                "pad_token_id": eos,
                "bos_token_id": vocab - 2,
                "eos_token_id": eos,
            })),
            "vision_config": tower(serde_json::json!({
                "num_channels": 3,
                "image_size": spec.image_size,
                "patch_size": spec.patch_size,
            })),
        }),
    )?;
    write_json(
        &dir.join("preprocessor_config.json"),
        &serde_json::json!({
            "image_processor_type": "SiglipImageProcessor",
            "do_resize": true,
            "size": {"height": spec.image_size, "width": spec.image_size},
            "resample": 2,
            "do_rescale": true,
            "rescale_factor": 1.0 / 255.0,
            "do_normalize": true,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "do_convert_rgb": true,
        }),
    )
}
