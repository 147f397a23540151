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

    fn embed_image_asset(&self, model: &str, asset: &Asset) -> Result<Vec<f32>, ModelError> {
        let ctx = &self.ctx;
        let encoder = ctx
            .registry
            .image(model)
            .ok_or_else(|| ctx.unknown("image", model, ctx.registry.image_names()))?;
        let image = ctx
            .decoded
            .image(&asset.path, &ctx.media.image)
            .map_err(model_error)?;
        let mut vectors = encoder.embed(&[(*image).clone()]).map_err(model_error)?;
        vectors
            .pop()
            .ok_or_else(|| ModelError::Failed(format!("model {model} returned no vector")))
    }
}

impl models::Host for ModelsView<'_> {
    fn list_models(&mut self) -> Vec<ModelInfo> {
        self.list()
    }

    fn embed_text(
        &mut self,
        model: String,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        self.ctx.timed(|ctx| super::embed_text(ctx, &model, &texts))
    }

    fn embed_image(
        &mut self,
        model: String,
        image: Resource<Asset>,
    ) -> Result<Vec<f32>, ModelError> {
        self.timed(|v| v.image(model, image))
    }

    fn embed_audio(
        &mut self,
        model: String,
        audio: Resource<Asset>,
        options: AudioOptions,
    ) -> Result<AudioEmbedding, ModelError> {
        self.timed(|v| v.audio(model, audio, options))
    }

    fn zero_shot(
        &mut self,
        model: String,
        input: ZeroShotInput,
        labels: Vec<ZeroShotLabel>,
    ) -> Result<Vec<LabelScore>, ModelError> {
        self.timed(|v| v.score(model, input, labels))
    }
}

/// The calls' bodies; the trait methods above time them.
impl ModelsView<'_> {
    fn timed<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let start = std::time::Instant::now();
        let out = f(self);
        self.ctx.usage.record(start);
        out
    }

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

    #[tracing::instrument(level = "debug", skip(self, image), fields(plugin = %self.ctx.plugin))]
    fn image(&mut self, model: String, image: Resource<Asset>) -> Result<Vec<f32>, ModelError> {
        self.ctx.check_allowed(&model)?;
        let asset = self.asset(&image)?;
        self.embed_image_asset(&model, &asset)
    }

    #[tracing::instrument(level = "debug", skip(self, audio, options), fields(plugin = %self.ctx.plugin))]
    fn audio(
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
        let mut out = encoder
            .embed(&[samples])
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

    #[tracing::instrument(level = "debug", skip(self, input, labels), fields(plugin = %self.ctx.plugin, labels = labels.len()))]
    fn score(
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
        let zero_shot = ZeroShot::new(text.as_ref(), &taxonomy, scoring).map_err(model_error)?;
        let query = match input {
            ZeroShotInput::Text(t) => text
                .embed(&[t.as_str()])
                .map_err(model_error)?
                .pop()
                .ok_or_else(|| ModelError::Failed(format!("model {model} returned no vector")))?,
            ZeroShotInput::Image(handle) => {
                let asset = self.asset(&handle)?;
                self.embed_image_asset(&model, &asset)?
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
