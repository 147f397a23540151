//! Text encoders.

mod batched;
pub mod bert;
mod clip;
mod sentence;
mod siglip;
mod st_config;

pub use batched::BatchedText;
pub use clip::ClipTextEncoder;
pub use sentence::SentenceEncoder;
pub use siglip::SiglipTextEncoder;
pub use st_config::SentenceConfig;
pub(crate) use st_config::{read_json, read_model_config};

use crate::ModelError;

/// The interface the host calls for text models: small and synchronous, like TEI's backends.
/// Implementations are shared across threads (`Send + Sync`) and may be called concurrently.
pub trait TextEmbedder: Send + Sync + std::fmt::Debug {
    /// The model's name as the host addresses it.
    fn name(&self) -> &str;
    /// Length of every vector `embed` returns.
    fn dimension(&self) -> usize;
    /// The largest number of texts one `embed` call takes.
    fn max_batch(&self) -> usize;
    /// Whether the weights are tiny random ones whose embeddings carry no meaning.
    fn is_placeholder(&self) -> bool;
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError>;
    /// Starts embedding `texts` without waiting: a batched model queues them (await the
    /// result, holding no thread); any other computes them now.
    fn submit(&self, texts: Vec<String>) -> crate::batching::Submitted<Vec<f32>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        crate::batching::Submitted::Ready(self.embed(&refs))
    }
}
