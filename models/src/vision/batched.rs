//! An image model behind a [`Batcher`]: images from concurrent calls are preprocessed on the
//! callers' threads (decoding already happened there) and merged into fixed-shape batches on the
//! model's own thread, so preprocessing overlaps with inference.

use super::ImageEmbedder;
use crate::ModelError;
use crate::batching::{BatchConfig, Batcher, Lane, RunBatch, Submitted};
use image::RgbImage;
use std::sync::Arc;

/// A batched view of an image model. Clones share the queue; each submits to its own lane.
#[derive(Debug, Clone)]
pub struct BatchedImage {
    inner: Arc<dyn ImageEmbedder>,
    batcher: Arc<Batcher<Vec<f32>, Vec<f32>>>,
    lane: Lane,
}

// Every image has the same shape, so every image costs the same.
#[allow(clippy::ptr_arg)]
fn one(_: &Vec<f32>) -> usize {
    1
}

impl BatchedImage {
    /// Starts the batching thread for `inner`; batches hold at most `inner.max_batch()` images.
    /// The view submits to the bulk lane.
    pub fn start(inner: Arc<dyn ImageEmbedder>, config: BatchConfig) -> Result<Self, ModelError> {
        let model = inner.clone();
        let run: RunBatch<Vec<f32>, Vec<f32>> =
            Box::new(move |pixels: &[Vec<f32>]| model.embed_pixels(pixels));
        let config = BatchConfig {
            max_items: config.max_items.min(inner.max_batch()).max(1),
            max_cost: usize::MAX,
            ..config
        };
        let batcher = Batcher::start(inner.name(), config, one, run)?;
        Ok(BatchedImage {
            inner,
            batcher: Arc::new(batcher),
            lane: Lane::Bulk,
        })
    }

    /// The same queue, submitting to `lane`.
    pub fn with_lane(&self, lane: Lane) -> Self {
        BatchedImage {
            lane,
            ..self.clone()
        }
    }

    /// Requests waiting for this model.
    pub fn depth(&self) -> usize {
        self.batcher.depth()
    }
}

impl ImageEmbedder for BatchedImage {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }
    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }
    fn is_placeholder(&self) -> bool {
        self.inner.is_placeholder()
    }
    fn preprocess(&self, image: &RgbImage) -> Vec<f32> {
        self.inner.preprocess(image)
    }
    fn embed_pixels(&self, pixels: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.batcher.call(pixels.to_vec(), self.lane)
    }
    fn submit_pixels(&self, pixels: Vec<Vec<f32>>) -> Submitted<Vec<f32>> {
        Submitted::from_queue(self.batcher.submit(pixels, self.lane))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{TinyClipSpec, write_tiny_clip_vision};
    use crate::{ClipVisionEncoder, Device};

    #[test]
    fn concurrent_batched_images_match_direct_ones() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        write_tiny_clip_vision(dir.path(), &TinyClipSpec::default())?;
        let direct: Arc<dyn ImageEmbedder> = Arc::new(ClipVisionEncoder::load(
            dir.path(),
            "tiny-clip",
            &Device::Cpu,
        )?);
        let batched = BatchedImage::start(direct.clone(), BatchConfig::default())?;
        let images: Vec<RgbImage> = (0..12u32)
            .map(|i| {
                RgbImage::from_fn(20 + i * 7, 40 - i, |x, y| {
                    image::Rgb([(x * 9 + i) as u8, (y * 5) as u8, (i * 20) as u8])
                })
            })
            .collect();
        let handles: Vec<_> = images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let view = if i % 4 == 0 {
                    batched.with_lane(Lane::Interactive)
                } else {
                    batched.clone()
                };
                let image = image.clone();
                std::thread::spawn(move || view.embed(&[image]))
            })
            .collect();
        for (image, handle) in images.iter().zip(handles) {
            let got = handle.join().map_err(|_| "thread panicked")??.remove(0);
            let want = direct.embed(std::slice::from_ref(image))?.remove(0);
            let diff = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "max abs diff {diff}");
        }
        let wrong = batched.embed_pixels(&[vec![0.0; 5]]);
        assert!(wrong.is_err_and(|e| e.to_string().contains("expected 3×32×32")));
        Ok(())
    }
}
