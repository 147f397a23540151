//! Audio encoders.
//!
//! A clip is cut into the model's fixed windows (30 s for Whisper; the last one zero-padded).
//! Each window's vector is the mean of the encoder positions that cover real audio, not padding;
//! the clip's vector pools its windows weighted by those positions, so it is the mean over every
//! real position of the clip. Vectors are not normalised: stores compare them by cosine.

mod batched;
mod whisper;

pub use batched::BatchedAudio;
pub use whisper::{WhisperAudioEncoder, WhisperEncoderConfig, sinusoids};

use crate::ModelError;

/// One clip's embedding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioEmbedding {
    /// One vector per window, in time order.
    pub windows: Vec<Vec<f32>>,
    /// Encoder positions of real audio in each window (the pooling weights).
    pub window_positions: Vec<usize>,
    /// The clip-level vector.
    pub pooled: Vec<f32>,
}

/// One window ready for the model: its features and how many encoder positions are real audio.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFeatures {
    /// The model's input for the window (Whisper: `n_mels × frames` log-mel, row-major).
    pub features: Vec<f32>,
    /// Encoder positions covering real audio (the rest is padding).
    pub positions: usize,
}

/// The interface the host calls for audio models, shaped like [`crate::TextEmbedder`].
pub trait AudioEmbedder: Send + Sync + std::fmt::Debug {
    /// The model's name as the host addresses it.
    fn name(&self) -> &str;
    /// Length of every vector.
    fn dimension(&self) -> usize;
    /// The sample rate clips must have (mono).
    fn sample_rate(&self) -> u32;
    /// Samples per window.
    fn window_samples(&self) -> usize;
    /// The largest number of windows one forward pass takes.
    fn max_batch(&self) -> usize;
    /// Whether the weights are tiny random ones whose embeddings carry no meaning.
    fn is_placeholder(&self) -> bool;
    /// The features of one window (`samples.len() <= window_samples()`; shorter is padded).
    /// Pure CPU work, kept apart from [`AudioEmbedder::embed_windows`] so that it can run on the
    /// caller's thread while the model runs earlier batches.
    fn window_features(&self, samples: &[f32]) -> WindowFeatures;
    /// One vector per window: the mean of the encoder output over its real positions.
    fn embed_windows(&self, windows: &[WindowFeatures]) -> Result<Vec<Vec<f32>>, ModelError>;
    /// Embeds mono clips at [`AudioEmbedder::sample_rate`], windows of all clips batched together.
    fn embed(&self, clips: &[&[f32]]) -> Result<Vec<AudioEmbedding>, ModelError> {
        let windows = ClipWindows::of(self, clips);
        let vectors = self.embed_windows(&windows.features)?;
        Ok(windows.assemble(vectors))
    }
    /// Starts [`AudioEmbedder::embed_windows`] without waiting: a batched model queues the
    /// windows (await the result, holding no thread); any other computes them now.
    fn submit_windows(&self, windows: Vec<WindowFeatures>) -> crate::batching::Submitted<Vec<f32>> {
        crate::batching::Submitted::Ready(self.embed_windows(&windows))
    }
}

/// Every window of every clip, with the clip each belongs to: the CPU half of
/// [`AudioEmbedder::embed`] (log-mel spectrograms), which an async caller builds in a blocking
/// section before awaiting [`ClipWindows::embed_async`].
#[derive(Debug)]
pub struct ClipWindows {
    clips: usize,
    owners: Vec<usize>,
    features: Vec<WindowFeatures>,
}

impl ClipWindows {
    /// The windows of `clips` (mono, at the model's sample rate), featurised for `model`.
    pub fn of(model: &(impl AudioEmbedder + ?Sized), clips: &[&[f32]]) -> Self {
        let window = model.window_samples().max(1);
        let mut owners = Vec::new();
        let mut features = Vec::new();
        for (c, clip) in clips.iter().enumerate() {
            // An empty clip still has one (all-padding) window.
            if clip.is_empty() {
                owners.push(c);
                features.push(model.window_features(clip));
            }
            for piece in clip.chunks(window) {
                owners.push(c);
                features.push(model.window_features(piece));
            }
        }
        ClipWindows {
            clips: clips.len(),
            owners,
            features,
        }
    }

    /// [`AudioEmbedder::embed`]'s model half, without holding a thread while the windows wait
    /// for their batch.
    pub async fn embed_async(
        self,
        model: &(impl AudioEmbedder + ?Sized),
    ) -> Result<Vec<AudioEmbedding>, ModelError> {
        let positions: Vec<usize> = self.features.iter().map(|w| w.positions).collect();
        let vectors = model.submit_windows(self.features).outcome().await?;
        Ok(Self::assemble_parts(
            &self.owners,
            &positions,
            self.clips,
            vectors,
        ))
    }

    fn assemble(self, vectors: Vec<Vec<f32>>) -> Vec<AudioEmbedding> {
        let positions: Vec<usize> = self.features.iter().map(|w| w.positions).collect();
        Self::assemble_parts(&self.owners, &positions, self.clips, vectors)
    }

    /// Each clip's window vectors, their real positions, and their pooled vector.
    fn assemble_parts(
        owners: &[usize],
        positions: &[usize],
        clips: usize,
        vectors: Vec<Vec<f32>>,
    ) -> Vec<AudioEmbedding> {
        let mut out: Vec<AudioEmbedding> = (0..clips).map(|_| AudioEmbedding::default()).collect();
        for ((&clip, &position), vector) in owners.iter().zip(positions).zip(vectors) {
            out[clip].windows.push(vector);
            out[clip].window_positions.push(position);
        }
        for embedding in &mut out {
            embedding.pooled = pool_windows(&embedding.windows, &embedding.window_positions);
        }
        out
    }
}

/// The position-weighted mean of window vectors.
pub fn pool_windows(windows: &[Vec<f32>], weights: &[usize]) -> Vec<f32> {
    let Some(dim) = windows.first().map(Vec::len) else {
        return Vec::new();
    };
    let total: usize = weights.iter().sum();
    let mut out = vec![0.0f32; dim];
    for (w, &n) in windows.iter().zip(weights) {
        let share = n as f32 / total.max(1) as f32;
        for (o, v) in out.iter_mut().zip(w) {
            *o += v * share;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_weights_windows_by_real_positions() {
        let pooled = pool_windows(&[vec![1.0, 0.0], vec![0.0, 1.0]], &[1500, 500]);
        assert_eq!(pooled, vec![0.75, 0.25]);
        assert!(pool_windows(&[], &[]).is_empty());
    }
}
