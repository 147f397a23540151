//! CLIP's vision tower with its projection (transformers' `CLIPVisionModelWithProjection`, or the
//! vision half of a full `CLIPModel` checkpoint), on candle-transformers' `ClipVisionTransformer`.

use super::ImageEmbedder;
use crate::ModelError;
use crate::preprocess::image::ClipPreprocess;
use crate::preprocess::pooling::l2_normalize;
use crate::tower_config::{TowerConfig, read_tower_config};
use crate::weights::Checkpoint;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use candle_transformers::models::clip::text_model::Activation;
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};
use image::RgbImage;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Images per forward pass.
const MAX_BATCH: usize = 16;

/// Where the vision tower's config sits: `[full model type, tower model type, key in the full
/// model's config]`.
const VISION_KEYS: [&str; 3] = ["clip", "clip_vision_model", "vision_config"];

/// The vision fields of a CLIP config.json, wherever they sit.
#[derive(Debug, Deserialize)]
struct VisionFields {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default = "three")]
    num_channels: usize,
    image_size: usize,
    patch_size: usize,
    projection_dim: Option<usize>,
    #[serde(default = "quick_gelu")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
}

fn three() -> usize {
    3
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

/// candle's config of the vision tower `tower` describes, or why it is not supported.
fn candle_config(tower: &TowerConfig<VisionFields>) -> Result<ClipVisionConfig, ModelError> {
    let bad = |reason: String| tower.error(reason);
    let fields = &tower.fields;
    let projection_dim = tower
        .projection_dim
        .or(fields.projection_dim)
        .ok_or_else(|| bad("projection_dim is missing".into()))?;
    if fields.hidden_act != "quick_gelu" {
        return Err(bad(format!(
            "hidden_act {:?} is not supported (quick_gelu only)",
            fields.hidden_act
        )));
    }
    if (fields.layer_norm_eps - 1e-5).abs() > 1e-12 {
        return Err(bad(format!(
            "layer_norm_eps {} is not supported (1e-5 only)",
            fields.layer_norm_eps
        )));
    }
    Ok(ClipVisionConfig {
        embed_dim: fields.hidden_size,
        activation: Activation::QuickGelu,
        intermediate_size: fields.intermediate_size,
        num_hidden_layers: fields.num_hidden_layers,
        num_attention_heads: fields.num_attention_heads,
        projection_dim,
        num_channels: fields.num_channels,
        image_size: fields.image_size,
        patch_size: fields.patch_size,
    })
}

/// A loaded CLIP image encoder.
pub struct ClipVisionEncoder {
    name: String,
    dir: PathBuf,
    model: ClipVisionTransformer,
    projection: Linear,
    preprocess: ClipPreprocess,
    dimension: usize,
    image_size: usize,
    device: Device,
    placeholder: bool,
}

impl std::fmt::Debug for ClipVisionEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipVisionEncoder")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("dimension", &self.dimension)
            .field("preprocess", &self.preprocess)
            .finish_non_exhaustive()
    }
}

impl ClipVisionEncoder {
    /// Loads the encoder in `dir` (config.json, model.safetensors, preprocessor_config.json).
    pub fn load(dir: &Path, name: &str, device: &Device) -> Result<Self, ModelError> {
        let tower: TowerConfig<VisionFields> = read_tower_config(dir, VISION_KEYS, "image model")?;
        let fields = &tower.fields;
        let config = candle_config(&tower)?;
        let projection_dim = config.projection_dim;
        let prefix = "vision_model";
        let preprocess = ClipPreprocess::read(&dir.join("preprocessor_config.json"))?;
        if preprocess.output_size() != Some((fields.image_size as u32, fields.image_size as u32)) {
            return Err(ModelError::Config {
                path: dir.join("preprocessor_config.json"),
                reason: format!(
                    "crop size {:?} does not produce the model's {0}×{0} input",
                    fields.image_size
                ),
            });
        }

        let checkpoint = Checkpoint::read(dir, DType::F32, device)?;
        let model = ClipVisionTransformer::new(checkpoint.vb.pp(prefix), &config)
            .map_err(checkpoint.mismatch())?;
        let projection = candle_nn::linear_no_bias(
            config.embed_dim,
            projection_dim,
            checkpoint.vb.pp("visual_projection"),
        )
        .map_err(checkpoint.mismatch())?;
        if tower.tiny {
            tracing::warn!(model = name, dir = %dir.display(), "tiny random-weight model: its embeddings carry no meaning");
        }
        tracing::info!(model = name, dir = %dir.display(), dim = projection_dim, image_size = fields.image_size, "loaded image model");
        Ok(ClipVisionEncoder {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            model,
            projection,
            preprocess,
            dimension: projection_dim,
            image_size: fields.image_size,
            device: device.clone(),
            placeholder: tower.tiny,
        })
    }

    /// The preprocessing this model expects.
    pub fn preprocess(&self) -> &ClipPreprocess {
        &self.preprocess
    }

    /// Runs the network on a `batch × 3 × S × S` pixel tensor: unit-length embeddings.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor, ModelError> {
        let err = || ModelError::candle(&self.name);
        let pooled = self.model.forward(pixels).map_err(err())?;
        let projected = self.projection.forward(&pooled).map_err(err())?;
        l2_normalize(&projected).map_err(err())
    }
}

impl ImageEmbedder for ClipVisionEncoder {
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

    fn preprocess(&self, image: &RgbImage) -> Vec<f32> {
        self.preprocess.pixels(image).0
    }

    #[tracing::instrument(level = "debug", skip_all, fields(model = %self.name, images = pixels.len()))]
    fn embed_pixels(&self, pixels: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        super::embed_in_batches(
            &self.name,
            pixels,
            self.image_size,
            MAX_BATCH,
            &self.device,
            |t| self.forward(t),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{TinyClipSpec, write_tiny_clip_vision};

    #[test]
    fn embeds_unit_vectors_and_is_batch_invariant() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        write_tiny_clip_vision(dir.path(), &TinyClipSpec::default())?;
        let encoder = ClipVisionEncoder::load(dir.path(), "tiny-clip", &Device::Cpu)?;
        let red = RgbImage::from_pixel(50, 30, image::Rgb([220, 20, 20]));
        let stripes = RgbImage::from_fn(64, 64, |x, _| {
            image::Rgb([(x * 4) as u8, 90, 255 - (x * 4) as u8])
        });
        let alone = encoder.embed(std::slice::from_ref(&red))?;
        let batch = encoder.embed(&[stripes, red])?;
        assert_eq!(alone[0].len(), 16);
        let norm: f32 = alone[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        let diff = alone[0]
            .iter()
            .zip(&batch[1])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "batch invariance: max abs diff {diff}");
        Ok(())
    }

    #[test]
    fn the_published_clip_vit_base_patch32_config_builds_its_vision_tower()
    -> Result<(), Box<dyn std::error::Error>> {
        let tower: TowerConfig<VisionFields> = crate::tower_config::read_published(
            "openai-clip-vit-base-patch32",
            VISION_KEYS,
            "image model",
        )?;
        assert!(!tower.tiny);
        let c = candle_config(&tower)?;
        assert_eq!(
            (c.embed_dim, c.intermediate_size, c.num_hidden_layers),
            (768, 3072, 12)
        );
        assert_eq!((c.num_attention_heads, c.projection_dim), (12, 512));
        assert_eq!((c.num_channels, c.image_size, c.patch_size), (3, 224, 32));
        // Every weight the config implies has a consistent shape (zeros stand in for them).
        let vb = candle_nn::VarBuilder::zeros(DType::F32, &Device::Cpu);
        let model = ClipVisionTransformer::new(vb.pp("vision_model"), &c)?;
        let pixels = Tensor::zeros((1, 3, 224, 224), DType::F32, &Device::Cpu)?;
        assert_eq!(model.forward(&pixels)?.dims(), &[1, 768]);
        Ok(())
    }

    #[test]
    fn refuses_text_models_and_unsupported_activations() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        crate::tiny::write_tiny_bert(dir.path(), &crate::tiny::TinyBertSpec::default())?;
        let msg = ClipVisionEncoder::load(dir.path(), "x", &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("\"bert\"") && msg.contains("not a supported image model"),
            "{msg}"
        );
        let dir = tempfile::tempdir()?;
        write_tiny_clip_vision(dir.path(), &TinyClipSpec::default())?;
        let config =
            std::fs::read_to_string(dir.path().join("config.json"))?.replace("quick_gelu", "gelu");
        std::fs::write(dir.path().join("config.json"), config)?;
        let msg = ClipVisionEncoder::load(dir.path(), "x", &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("hidden_act \"gelu\""), "{msg}");
        Ok(())
    }
}
