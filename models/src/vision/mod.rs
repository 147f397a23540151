//! Image encoders.

mod clip;

pub use clip::ClipVisionEncoder;

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
    /// One unit-length vector per (decoded, upright RGB) image, in order.
    fn embed(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>, ModelError>;
}
