//! Image encoders.

mod batched;
mod clip;
mod siglip;

pub use batched::BatchedImage;
pub use clip::ClipVisionEncoder;
pub use siglip::SiglipVisionEncoder;

use crate::ModelError;
use image::RgbImage;

/// The interface the host calls for image models, shaped like [`crate::TextEmbedder`].
pub trait ImageEmbedder: Send + Sync + std::fmt::Debug {
    /// The model's name as the host addresses it.
    fn name(&self) -> &str;
    /// Length of every vector `embed` returns.
    fn dimension(&self) -> usize;
    /// The largest number of images one forward pass takes.
    fn max_batch(&self) -> usize;
    /// Whether the weights are tiny random ones whose embeddings carry no meaning.
    fn is_placeholder(&self) -> bool;
    /// The model's input for one (decoded, upright RGB) image: a fixed-shape pixel tensor,
    /// channel-major. Pure CPU work, kept apart from [`ImageEmbedder::embed_pixels`] so that it
    /// can run on the caller's thread while the model runs earlier batches.
    fn preprocess(&self, image: &RgbImage) -> Vec<f32>;
    /// One unit-length vector per preprocessed image, in order.
    fn embed_pixels(&self, pixels: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ModelError>;
    /// One unit-length vector per image, in order.
    fn embed(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>, ModelError> {
        let pixels: Vec<Vec<f32>> = images.iter().map(|i| self.preprocess(i)).collect();
        self.embed_pixels(&pixels)
    }
    /// Starts [`ImageEmbedder::embed_pixels`] without waiting: a batched model queues the
    /// images (await the result, holding no thread); any other computes them now.
    fn submit_pixels(&self, pixels: Vec<Vec<f32>>) -> crate::batching::Submitted<Vec<f32>> {
        crate::batching::Submitted::Ready(self.embed_pixels(&pixels))
    }
}

/// Runs `forward` over `pixels` (each `3 × side × side`) in batches of at most `max_batch`:
/// checks every tensor's length first, so a wrong one is a typed error naming `model`.
pub(crate) fn embed_in_batches(
    model: &str,
    pixels: &[Vec<f32>],
    side: usize,
    max_batch: usize,
    device: &candle_core::Device,
    forward: impl Fn(&candle_core::Tensor) -> Result<candle_core::Tensor, ModelError>,
) -> Result<Vec<Vec<f32>>, ModelError> {
    if let Some(bad) = pixels.iter().find(|p| p.len() != 3 * side * side) {
        return Err(ModelError::InvalidInput {
            model: model.to_string(),
            reason: format!("{} pixel values, expected 3×{side}×{side}", bad.len()),
        });
    }
    let err = || ModelError::candle(model);
    let mut out = Vec::with_capacity(pixels.len());
    for chunk in pixels.chunks(max_batch.max(1)) {
        let data: Vec<f32> = chunk.iter().flatten().copied().collect();
        let tensor = candle_core::Tensor::from_vec(data, (chunk.len(), 3, side, side), device)
            .map_err(err())?;
        out.extend(crate::preprocess::pooling::to_rows(&forward(&tensor)?).map_err(err())?);
    }
    Ok(out)
}
