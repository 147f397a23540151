//! A tiny CLIP vision encoder with projection, laid out as transformers'
//! `CLIPVisionModelWithProjection`: config.json (`model_type: clip_vision_model`),
//! model.safetensors with the checkpoint's tensor names, and preprocessor_config.json.

use super::clip_tokenizer::write_clip_tokenizer;
use super::{Init, Weights, file_error, write_json};
use crate::ModelError;
use std::path::Path;

/// Shape and seed of a tiny CLIP vision tower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyClipSpec {
    /// Hidden size.
    pub hidden: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Attention heads (must divide `hidden`).
    pub heads: usize,
    /// Feed-forward size.
    pub intermediate: usize,
    /// Input side in pixels (images are resized and cropped to this).
    pub image_size: usize,
    /// Patch side in pixels (must divide `image_size`).
    pub patch_size: usize,
    /// Output (projection) dimension.
    pub projection: usize,
    /// Weight seed.
    pub seed: u64,
}

impl Default for TinyClipSpec {
    fn default() -> Self {
        TinyClipSpec {
            hidden: 32,
            layers: 2,
            heads: 4,
            intermediate: 64,
            image_size: 32,
            patch_size: 8,
            projection: 16,
            seed: 7,
        }
    }
}

/// CLIP's published normalisation constants (openai/clip-vit-base-patch32's preprocessor).
const MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
const STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// Writes a tiny CLIP vision encoder into `dir` (created if missing).
pub fn write_tiny_clip_vision(dir: &Path, spec: &TinyClipSpec) -> Result<(), ModelError> {
    check(dir, spec)?;
    let mut w = Weights::new(spec.seed);
    add_vision(&mut w, spec)?;
    w.save(&dir.join("model.safetensors"))?;

    let mut config = vision_fields(spec);
    for (key, value) in [
        (
            "architectures",
            serde_json::json!(["CLIPVisionModelWithProjection"]),
        ),
        ("model_type", serde_json::json!("clip_vision_model")),
        ("tessera_tiny", serde_json::json!(true)),
    ] {
        config[key] = value;
    }
    write_json(&dir.join("config.json"), &config)?;
    write_preprocessor(dir, spec)
}

/// CLIP's text context length.
const TEXT_POSITIONS: usize = 77;
/// ln(1 / 0.07), CLIP's initial logit scale.
const LOGIT_SCALE: f32 = 2.6592;

/// Writes a tiny full CLIP (`CLIPModel`: text and vision towers, both projections, the logit
/// scale, a CLIP tokenizer and the image preprocessor) into `dir`. The text tower has the vision
/// tower's width, depth and heads.
pub fn write_tiny_clip(dir: &Path, spec: &TinyClipSpec) -> Result<(), ModelError> {
    check(dir, spec)?;
    let vocab = write_clip_tokenizer(dir, TEXT_POSITIONS)?;
    let (h, i) = (spec.hidden, spec.intermediate);
    let mut w = Weights::new(spec.seed);
    add_vision(&mut w, spec)?;
    let t = "text_model";
    w.add(
        &format!("{t}.embeddings.token_embedding.weight"),
        &[vocab, h],
        Init::Normal(0.5),
    )?;
    w.add(
        &format!("{t}.embeddings.position_embedding.weight"),
        &[TEXT_POSITIONS, h],
        Init::Normal(0.1),
    )?;
    w.encoder_layers(t, spec.hidden, spec.intermediate, spec.layers)?;
    w.norm(&format!("{t}.final_layer_norm"), h)?;
    w.add(
        "text_projection.weight",
        &[spec.projection, h],
        Init::Normal(0.2),
    )?;
    w.values("logit_scale", &[], vec![LOGIT_SCALE])?;
    w.save(&dir.join("model.safetensors"))?;

    let (bos, eos) = (vocab - 2, vocab - 1);
    write_json(
        &dir.join("config.json"),
        &serde_json::json!({
            "architectures": ["CLIPModel"],
            "model_type": "clip",
            "tessera_tiny": true,
            "projection_dim": spec.projection,
            "logit_scale_init_value": LOGIT_SCALE,
            "torch_dtype": "float32",
            "text_config": {
                "hidden_size": h,
                "intermediate_size": i,
                "num_hidden_layers": spec.layers,
                "num_attention_heads": spec.heads,
                "max_position_embeddings": TEXT_POSITIONS,
                "vocab_size": vocab,
                "projection_dim": spec.projection,
                "hidden_act": "quick_gelu",
                "layer_norm_eps": 1e-5,
                "bos_token_id": bos,
                "eos_token_id": eos,
                "pad_token_id": eos,
            },
            "vision_config": vision_fields(spec),
        }),
    )?;
    write_preprocessor(dir, spec)
}

fn check(dir: &Path, spec: &TinyClipSpec) -> Result<(), ModelError> {
    let bad = |reason: String| ModelError::Config {
        path: dir.join("config.json"),
        reason,
    };
    if spec.heads == 0 || !spec.hidden.is_multiple_of(spec.heads) {
        return Err(bad(format!(
            "{} heads do not divide hidden size {}",
            spec.heads, spec.hidden
        )));
    }
    if spec.patch_size == 0 || !spec.image_size.is_multiple_of(spec.patch_size) {
        return Err(bad(format!(
            "patch size {} does not divide image size {}",
            spec.patch_size, spec.image_size
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))
}

/// The vision tower's config.json fields.
fn vision_fields(spec: &TinyClipSpec) -> serde_json::Value {
    let (h, i) = (spec.hidden, spec.intermediate);
    serde_json::json!({
            "hidden_size": h,
            "intermediate_size": i,
            "num_hidden_layers": spec.layers,
            "num_attention_heads": spec.heads,
            "num_channels": 3,
            "image_size": spec.image_size,
            "patch_size": spec.patch_size,
            "projection_dim": spec.projection,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "initializer_factor": 1.0,
            "torch_dtype": "float32",
    })
}

fn write_preprocessor(dir: &Path, spec: &TinyClipSpec) -> Result<(), ModelError> {
    write_json(
        &dir.join("preprocessor_config.json"),
        &serde_json::json!({
            "image_processor_type": "CLIPImageProcessor",
            "do_resize": true,
            "size": {"shortest_edge": spec.image_size},
            "resample": 3,
            "do_center_crop": true,
            "crop_size": {"height": spec.image_size, "width": spec.image_size},
            "do_rescale": true,
            "rescale_factor": 1.0 / 255.0,
            "do_normalize": true,
            "image_mean": MEAN,
            "image_std": STD,
            "do_convert_rgb": true,
        }),
    )
}

/// The vision tower and its projection, in the order the vision-only model has always used (its
/// reference embeddings depend on the generator's sequence).
fn add_vision(w: &mut Weights, spec: &TinyClipSpec) -> Result<(), ModelError> {
    let h = spec.hidden;
    let positions = (spec.image_size / spec.patch_size).pow(2) + 1;
    let v = "vision_model";
    w.add(
        &format!("{v}.embeddings.class_embedding"),
        &[h],
        Init::Normal(0.5),
    )?;
    w.add(
        &format!("{v}.embeddings.patch_embedding.weight"),
        &[h, 3, spec.patch_size, spec.patch_size],
        Init::Normal(0.1),
    )?;
    w.add(
        &format!("{v}.embeddings.position_embedding.weight"),
        &[positions, h],
        Init::Normal(0.1),
    )?;
    w.norm(&format!("{v}.pre_layrnorm"), h)?;
    w.norm(&format!("{v}.post_layernorm"), h)?;
    w.encoder_layers(v, spec.hidden, spec.intermediate, spec.layers)?;
    w.add(
        "visual_projection.weight",
        &[spec.projection, h],
        Init::Normal(0.2),
    )?;
    Ok(())
}
