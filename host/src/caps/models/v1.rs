//! `models::Host` of contract 1.x on [`ModelsView`]: text, image and audio embeddings, zero-shot
//! scoring and the model list. Permission and input caps are checked before anything is read or
//! run; assets are decoded under the media limits.

use super::ModelsView;
use crate::caps::media::{Asset, media_error};
use crate::runtime::bindings::v1::models::{
    self, AudioEmbedding, AudioOptions, AudioWindow, LabelScore, ZeroShotInput, ZeroShotLabel,
};
use crate::runtime::bindings::v1::types::{Modality, ModelError, ModelInfo, TimeSpan};
use tessera_models::zero_shot::{Taxonomy, TaxonomyTag, ZeroShot};
use wasmtime::component::Resource;

/// Labels per `zero-shot` call, and prompts over all labels.
const MAX_LABELS: usize = 256;
const MAX_PROMPTS: usize = 1024;

/// A models-crate error as the guest sees it.
pub(crate) fn model_error(e: tessera_models::ModelError) -> ModelError {
    use tessera_models::ModelError as E;
    match e {
        E::Media { .. } | E::MediaLimit { .. } => ModelError::Media(media_error(e)),
        E::InvalidInput { .. } | E::Tokenizer { .. } => ModelError::InvalidInput(e.to_string()),
        E::Overloaded { .. } => ModelError::Overloaded(e.to_string()),
        other => ModelError::Failed(other.to_string()),
    }
}

impl ModelsView<'_> {
    fn asset(&self, handle: &Resource<Asset>) -> Result<Asset, ModelError> {
        self.table.get(handle).cloned().map_err(|e| {
            ModelError::InvalidInput(format!("plugin {}: bad asset handle: {e}", self.ctx.plugin))
        })
    }
}

/// Decodes and preprocesses the image on the caller (CPU work), then awaits the model's batch.
async fn embed_image_asset(
    ctx: &super::ModelsCtx,
    model: &str,
    asset: &Asset,
) -> Result<Vec<f32>, ModelError> {
    let encoder = ctx
        .registry
        .image(model)
        .ok_or_else(|| ctx.unknown("image", model, ctx.registry.image_names()))?;
    let image = ctx
        .decoded
        .image(&asset.path, &ctx.media.image)
        .map_err(model_error)?;
    let pixels = crate::caps::media::blocking(|| encoder.preprocess(&image));
    let mut vectors = encoder
        .submit_pixels(vec![pixels])
        .outcome()
        .await
        .map_err(model_error)?;
    vectors
        .pop()
        .ok_or_else(|| ModelError::Failed(format!("model {model} returned no vector")))
}

impl models::Host for ModelsView<'_> {
    async fn list_models(&mut self) -> Vec<ModelInfo> {
        self.list()
    }

    async fn embed_text(
        &mut self,
        model: String,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let start = std::time::Instant::now();
        let out = super::embed_text(self.ctx, &model, texts).await;
        self.ctx.usage.record(start);
        out
    }

    async fn embed_image(
        &mut self,
        model: String,
        image: Resource<Asset>,
    ) -> Result<Vec<f32>, ModelError> {
        let start = std::time::Instant::now();
        let out = self.image(model, image).await;
        self.ctx.usage.record(start);
        out
    }

    async fn embed_audio(
        &mut self,
        model: String,
        audio: Resource<Asset>,
        options: AudioOptions,
    ) -> Result<AudioEmbedding, ModelError> {
        let start = std::time::Instant::now();
        let out = self.audio(model, audio, options).await;
        self.ctx.usage.record(start);
        out
    }

    async fn zero_shot(
        &mut self,
        model: String,
        input: ZeroShotInput,
        labels: Vec<ZeroShotLabel>,
    ) -> Result<Vec<LabelScore>, ModelError> {
        let start = std::time::Instant::now();
        let out = self.score(model, input, labels).await;
        self.ctx.usage.record(start);
        out
    }
}

/// The calls' bodies; the trait methods above time them.
impl ModelsView<'_> {
    fn list(&mut self) -> Vec<ModelInfo> {
        let registry = &self.ctx.registry;
        let mut out = Vec::new();
        let dim = |d: usize| u32::try_from(d).unwrap_or(u32::MAX);
        for name in registry.text_names() {
            if let Some(m) = registry.text(&name) {
                out.push(ModelInfo {
                    zero_shot: registry.scoring(&name).is_some(),
                    name,
                    modality: Modality::Text,
                    dimension: dim(m.dimension()),
                });
            }
        }
        for name in registry.image_names() {
            if let Some(m) = registry.image(&name) {
                out.push(ModelInfo {
                    zero_shot: registry.scoring(&name).is_some(),
                    name,
                    modality: Modality::Image,
                    dimension: dim(m.dimension()),
                });
            }
        }
        for name in registry.audio_names() {
            if let Some(m) = registry.audio(&name) {
                out.push(ModelInfo {
                    name,
                    modality: Modality::Audio,
                    dimension: dim(m.dimension()),
                    zero_shot: false,
                });
            }
        }
        out.retain(|m| self.ctx.check_allowed(&m.name).is_ok());
        out
    }

    async fn image(
        &mut self,
        model: String,
        image: Resource<Asset>,
    ) -> Result<Vec<f32>, ModelError> {
        self.ctx.check_allowed(&model)?;
        let asset = self.asset(&image)?;
        embed_image_asset(self.ctx, &model, &asset).await
    }

    async fn audio(
        &mut self,
        model: String,
        audio: Resource<Asset>,
        options: AudioOptions,
    ) -> Result<AudioEmbedding, ModelError> {
        let ctx = &self.ctx;
        ctx.check_allowed(&model)?;
        let asset = self.asset(&audio)?;
        let encoder = ctx
            .registry
            .audio(&model)
            .ok_or_else(|| ctx.unknown("audio", &model, ctx.registry.audio_names()))?;
        if let Some(max) = options.max_seconds
            && !(max.is_finite() && max > 0.0)
        {
            return Err(ModelError::InvalidInput(format!(
                "max-seconds must be a positive number, not {max}"
            )));
        }
        // The whole file is decoded (under the host's duration limit) and then cut: symphonia
        // cannot stop at a time without decoding up to it anyway.
        let decoded = ctx
            .decoded
            .audio(&asset.path, encoder.sample_rate(), &ctx.media.audio)
            .map_err(model_error)?;
        let keep = match options.max_seconds {
            Some(max) => ((f64::from(max) * f64::from(decoded.sample_rate)) as usize)
                .min(decoded.samples.len()),
            None => decoded.samples.len(),
        };
        let samples = &decoded.samples[..keep];
        let seconds = keep as f64 / f64::from(decoded.sample_rate.max(1));
        // Log-mel spectrograms are CPU work: a blocking section, like image preprocessing.
        let windows = crate::caps::media::blocking(|| {
            tessera_models::audio::ClipWindows::of(encoder.as_ref(), &[samples])
        });
        let mut out = windows
            .embed_async(encoder.as_ref())
            .await
            .map_err(model_error)?
            .pop()
            .ok_or_else(|| ModelError::Failed(format!("model {model} returned no vector")))?;
        let window = encoder.window_samples() as f64 / f64::from(encoder.sample_rate());
        let windows = if options.windows {
            out.windows
                .drain(..)
                .enumerate()
                .map(|(i, vector)| AudioWindow {
                    span: TimeSpan {
                        start: i as f64 * window,
                        end: ((i + 1) as f64 * window).min(seconds),
                    },
                    vector,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(AudioEmbedding {
            vector: out.pooled,
            windows,
        })
    }

    async fn score(
        &mut self,
        model: String,
        input: ZeroShotInput,
        labels: Vec<ZeroShotLabel>,
    ) -> Result<Vec<LabelScore>, ModelError> {
        let ctx = &self.ctx;
        ctx.check_allowed(&model)?;
        let (Some(text), Some(scoring)) = (ctx.registry.text(&model), ctx.registry.scoring(&model))
        else {
            return Err(ModelError::InvalidInput(format!(
                "model {model:?} is not a two-tower (CLIP or SigLIP) model; zero-shot models: {}",
                ctx.registry.zero_shot_names().join(", ")
            )));
        };
        let prompts: usize = labels.iter().map(|l| l.prompts.len()).sum();
        if labels.is_empty() || labels.len() > MAX_LABELS || prompts > MAX_PROMPTS {
            return Err(ModelError::InvalidInput(format!(
                "{} labels with {prompts} prompts; give 1..={MAX_LABELS} labels and at most \
                 {MAX_PROMPTS} prompts",
                labels.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for label in &labels {
            if label.prompts.is_empty() || !seen.insert(label.name.as_str()) {
                return Err(ModelError::InvalidInput(format!(
                    "label {:?} is repeated or has no prompts",
                    label.name
                )));
            }
        }
        let taxonomy = Taxonomy {
            templates: Vec::new(),
            tags: labels
                .into_iter()
                .map(|l| TaxonomyTag {
                    name: l.name,
                    label: None,
                    prompts: l.prompts,
                })
                .collect(),
        };
        let zero_shot = ZeroShot::new_async(text.as_ref(), &taxonomy, scoring)
            .await
            .map_err(model_error)?;
        let query = match input {
            ZeroShotInput::Text(t) => text
                .submit(vec![t])
                .outcome()
                .await
                .map_err(model_error)?
                .pop()
                .ok_or_else(|| ModelError::Failed(format!("model {model} returned no vector")))?,
            ZeroShotInput::Image(handle) => {
                let asset = self.asset(&handle)?;
                embed_image_asset(self.ctx, &model, &asset).await?
            }
        };
        let mut scores = zero_shot.score(&query).map_err(model_error)?;
        scores.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(scores
            .into_iter()
            .map(|s| LabelScore {
                name: s.tag,
                score: s.score,
                cosine: s.cosine,
            })
            .collect())
    }
}
