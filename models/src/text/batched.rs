//! A text model behind a [`Batcher`]: concurrent `embed` calls (one per plugin call) merge into
//! batches on the model's own thread.

use super::TextEmbedder;
use crate::ModelError;
use crate::batching::{BatchConfig, Batcher, Lane, RunBatch, Submitted};
use std::sync::Arc;

/// A batched view of a text model. Clones share the queue; each clone submits to its own lane.
#[derive(Debug, Clone)]
pub struct BatchedText {
    inner: Arc<dyn TextEmbedder>,
    batcher: Arc<Batcher<String, Vec<f32>>>,
    lane: Lane,
}

/// Batching cost of a text: roughly its tokens (4 bytes a token, plus the special tokens), which
/// is what padding and attention cost grow with. Cheap, so it can run on the caller's thread.
// The batcher prices items through `fn(&Item)`, and the item type here is `String`.
#[allow(clippy::ptr_arg)]
fn approx_tokens(text: &String) -> usize {
    text.len() / 4 + 2
}

impl BatchedText {
    /// Starts the batching thread for `inner`; the view submits to the bulk lane.
    pub fn start(inner: Arc<dyn TextEmbedder>, config: BatchConfig) -> Result<Self, ModelError> {
        let model = inner.clone();
        let run: RunBatch<String, Vec<f32>> = Box::new(move |texts: &[String]| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.embed(&refs)
        });
        let batcher = Batcher::start(inner.name(), config, approx_tokens, run)?;
        Ok(BatchedText {
            inner,
            batcher: Arc::new(batcher),
            lane: Lane::Bulk,
        })
    }

    /// The same queue, submitting to `lane`.
    pub fn with_lane(&self, lane: Lane) -> Self {
        BatchedText {
            lane,
            ..self.clone()
        }
    }

    /// Requests waiting for this model.
    pub fn depth(&self) -> usize {
        self.batcher.depth()
    }
}

impl TextEmbedder for BatchedText {
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
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.batcher
            .call(texts.iter().map(|t| t.to_string()).collect(), self.lane)
    }
    fn submit(&self, texts: Vec<String>) -> Submitted<Vec<f32>> {
        Submitted::from_queue(self.batcher.submit(texts, self.lane))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{TinyBertSpec, write_tiny_bert};
    use crate::{Device, SentenceEncoder};

    #[test]
    fn concurrent_batched_calls_match_direct_calls() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        write_tiny_bert(dir.path(), &TinyBertSpec::default())?;
        let direct: Arc<dyn TextEmbedder> =
            Arc::new(SentenceEncoder::load(dir.path(), "tiny", &Device::Cpu)?);
        let batched = BatchedText::start(direct.clone(), BatchConfig::default())?;
        let texts: Vec<String> = (0..24)
            .map(|i| format!("title {i} returns to the city {}", "again ".repeat(i % 5)))
            .collect();
        let handles: Vec<_> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let view = if i % 3 == 0 {
                    batched.with_lane(Lane::Interactive)
                } else {
                    batched.clone()
                };
                let text = text.clone();
                std::thread::spawn(move || view.embed(&[&text]))
            })
            .collect();
        for (text, handle) in texts.iter().zip(handles) {
            let got = handle.join().map_err(|_| "thread panicked")??.remove(0);
            let want = direct.embed(&[text])?.remove(0);
            let diff = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "{text}: max abs diff {diff}");
        }
        assert_eq!(batched.depth(), 0);
        Ok(())
    }
}
