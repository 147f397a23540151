//! SigLIP's vision tower with its attention-pooling head (transformers' `SiglipVisionModel`, or
//! the vision half of a `SiglipModel`), on candle-transformers' `siglip::VisionModel`.
//! Preprocessing is the checkpoint's: an exact resize (BILINEAR), rescale, normalise.

use super::ImageEmbedder;
use crate::ModelError;
use crate::preprocess::image::ClipPreprocess;
use crate::preprocess::pooling::l2_normalize;
use crate::tower_config::{TowerConfig, read_tower_config};
use crate::weights::Checkpoint;
use candle_core::{DType, Device, Module};
use candle_transformers::models::siglip::{VisionConfig, VisionModel};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// Images per forward pass.
const MAX_BATCH: usize = 16;

/// A loaded SigLIP image encoder; unit-length vectors in the text tower's space.
pub struct SiglipVisionEncoder {
    name: String,
    dir: PathBuf,
    model: VisionModel,
    preprocess: ClipPreprocess,
    dimension: usize,
    image_size: usize,
    device: Device,
    placeholder: bool,
}

impl std::fmt::Debug for SiglipVisionEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiglipVisionEncoder")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("dimension", &self.dimension)
            .field("preprocess", &self.preprocess)
            .finish_non_exhaustive()
    }
}

impl SiglipVisionEncoder {
    /// Loads the encoder in `dir` (config.json, model.safetensors, preprocessor_config.json).
    pub fn load(dir: &Path, name: &str, device: &Device) -> Result<Self, ModelError> {
        let tower: TowerConfig<VisionConfig> = read_tower_config(
            dir,
            ["siglip", "siglip_vision_model", "vision_config"],
            "image model",
        )?;
        let config = &tower.fields;
        let preprocess = ClipPreprocess::read(&dir.join("preprocessor_config.json"))?;
        let side = config.image_size as u32;
        if preprocess.output_size() != Some((side, side)) {
            return Err(ModelError::Config {
                path: dir.join("preprocessor_config.json"),
                reason: format!(
                    "it produces {:?} images; the model takes {side}×{side}",
                    preprocess.output_size()
                ),
            });
        }
        let checkpoint = Checkpoint::read(dir, DType::F32, device)?;
        let model = VisionModel::new(config, true, checkpoint.vb.pp("vision_model"))
            .map_err(checkpoint.mismatch())?;
        if tower.tiny {
            tracing::warn!(model = name, dir = %dir.display(), "tiny random-weight model: its embeddings carry no meaning");
        }
        tracing::info!(model = name, dir = %dir.display(), dim = config.hidden_size, "loaded SigLIP image model");
        Ok(SiglipVisionEncoder {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            model,
            preprocess,
            dimension: config.hidden_size,
            image_size: config.image_size,
            device: device.clone(),
            placeholder: tower.tiny,
        })
    }
}

impl ImageEmbedder for SiglipVisionEncoder {
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
            |t| {
                let err = || ModelError::candle(&self.name);
                let pooled = self.model.forward(t).map_err(err())?;
                l2_normalize(&pooled).map_err(err())
            },
        )
    }
}
