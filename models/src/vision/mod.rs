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
}
