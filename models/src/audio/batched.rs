//! An audio model behind a [`Batcher`]: each caller computes its clips' window features (log-mel)
//! on its own thread, and windows from concurrent calls are merged into fixed-shape batches on
//! the model's thread, so spectrograms overlap with inference.

use super::{AudioEmbedder, WindowFeatures};
use crate::ModelError;
use crate::batching::{BatchConfig, Batcher, Lane, RunBatch, Submitted};
use std::sync::Arc;

/// A batched view of an audio model. Clones share the queue; each submits to its own lane.
#[derive(Debug, Clone)]
pub struct BatchedAudio {
    inner: Arc<dyn AudioEmbedder>,
    batcher: Arc<Batcher<WindowFeatures, Vec<f32>>>,
    lane: Lane,
}

// Every window has the same shape, so every window costs the same.
fn one(_: &WindowFeatures) -> usize {
    1
}

impl BatchedAudio {
    /// Starts the batching thread for `inner`; batches hold at most `inner.max_batch()` windows.
    /// The view submits to the bulk lane.
    pub fn start(inner: Arc<dyn AudioEmbedder>, config: BatchConfig) -> Result<Self, ModelError> {
        let model = inner.clone();
        let run: RunBatch<WindowFeatures, Vec<f32>> =
            Box::new(move |windows: &[WindowFeatures]| model.embed_windows(windows));
        let config = BatchConfig {
            max_items: config.max_items.min(inner.max_batch()).max(1),
            max_cost: usize::MAX,
            ..config
        };
        let batcher = Batcher::start(inner.name(), config, one, run)?;
        Ok(BatchedAudio {
            inner,
            batcher: Arc::new(batcher),
            lane: Lane::Bulk,
        })
    }

    /// The same queue, submitting to `lane`.
    pub fn with_lane(&self, lane: Lane) -> Self {
        BatchedAudio {
            lane,
            ..self.clone()
        }
    }

    /// Requests waiting for this model.
    pub fn depth(&self) -> usize {
        self.batcher.depth()
    }
}

impl AudioEmbedder for BatchedAudio {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }
    fn window_samples(&self) -> usize {
        self.inner.window_samples()
    }
    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }
    fn is_placeholder(&self) -> bool {
        self.inner.is_placeholder()
    }
    fn window_features(&self, samples: &[f32]) -> WindowFeatures {
        self.inner.window_features(samples)
    }
    fn embed_windows(&self, windows: &[WindowFeatures]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.batcher.call(windows.to_vec(), self.lane)
    }
    fn submit_windows(&self, windows: Vec<WindowFeatures>) -> Submitted<Vec<f32>> {
        Submitted::from_queue(self.batcher.submit(windows, self.lane))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{TinyWhisperSpec, write_tiny_whisper};
    use crate::{Device, WhisperAudioEncoder};

    #[test]
    fn concurrent_batched_clips_match_direct_ones() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        write_tiny_whisper(dir.path(), &TinyWhisperSpec::default())?;
        let direct: Arc<dyn AudioEmbedder> = Arc::new(WhisperAudioEncoder::load(
            dir.path(),
            "tiny-whisper",
            &Device::Cpu,
        )?);
        let batched = BatchedAudio::start(direct.clone(), BatchConfig::default())?;
        let clips: Vec<Vec<f32>> = (0..5)
            .map(|c| {
                (0..4_000 * (c + 1))
                    .map(|i| ((i * (c + 3)) as f32 * 0.01).sin() * 0.3)
                    .collect()
            })
            .collect();
        let handles: Vec<_> = clips
            .iter()
            .enumerate()
            .map(|(i, clip)| {
                let view = if i == 2 {
                    batched.with_lane(Lane::Interactive)
                } else {
                    batched.clone()
                };
                let clip = clip.clone();
                std::thread::spawn(move || view.embed(&[&clip]))
            })
            .collect();
        for (clip, handle) in clips.iter().zip(handles) {
            let got = handle.join().map_err(|_| "thread panicked")??.remove(0);
            let want = direct.embed(&[clip])?.remove(0);
            assert_eq!(got.window_positions, want.window_positions);
            let diff = got
                .pooled
                .iter()
                .zip(&want.pooled)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "max abs diff {diff}");
        }
        Ok(())
    }
}
