//! Loaded models, addressed by name, per modality.

use crate::batching::BatchConfig;
use crate::loader::LoadedModel;
use crate::manifest::Modality;
use crate::zero_shot::Scoring;
use crate::{
    AudioEmbedder, BatchedAudio, BatchedImage, BatchedText, ImageEmbedder, ModelError, TextEmbedder,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The models a host has loaded. Built once at startup and shared (`Arc`) by every plugin call.
/// Several names may point at one model (e.g. `text` as an alias of `all-MiniLM-L6-v2`), and
/// several versions of one model live side by side under their own names (`name@revision`).
#[derive(Debug, Default)]
pub struct Registry {
    text: BTreeMap<String, Arc<dyn TextEmbedder>>,
    image: BTreeMap<String, Arc<dyn ImageEmbedder>>,
    audio: BTreeMap<String, Arc<dyn AudioEmbedder>>,
    /// How two-tower (CLIP, SigLIP) models turn cosines into zero-shot scores, by name.
    scoring: BTreeMap<String, Scoring>,
}

impl Registry {
    /// Registers `model` under `name`, replacing any text model of that name.
    pub fn insert_text(&mut self, name: &str, model: Arc<dyn TextEmbedder>) {
        self.text.insert(name.to_string(), model);
    }

    /// Registers `model` under `name`, replacing any image model of that name.
    pub fn insert_image(&mut self, name: &str, model: Arc<dyn ImageEmbedder>) {
        self.image.insert(name.to_string(), model);
    }

    /// Registers `model` under `name`, replacing any audio model of that name.
    pub fn insert_audio(&mut self, name: &str, model: Arc<dyn AudioEmbedder>) {
        self.audio.insert(name.to_string(), model);
    }

    /// Registers every modality of `loaded` under `name`, each behind its own batching
    /// scheduler (one per model, as concurrent plugin calls need).
    pub fn insert_batched(
        &mut self,
        name: &str,
        loaded: &LoadedModel,
        config: &BatchConfig,
    ) -> Result<(), ModelError> {
        if let Some(text) = &loaded.text {
            let batched = BatchedText::start(text.clone(), config.clone())?;
            self.insert_text(name, Arc::new(batched));
        }
        if let Some(image) = &loaded.image {
            let batched = BatchedImage::start(image.clone(), config.clone())?;
            self.insert_image(name, Arc::new(batched));
        }
        if let Some(audio) = &loaded.audio {
            let batched = BatchedAudio::start(audio.clone(), config.clone())?;
            self.insert_audio(name, Arc::new(batched));
        }
        if let Some(scoring) = loaded.scoring {
            self.insert_scoring(name, scoring);
        }
        Ok(())
    }

    /// Marks `name` as a two-tower model whose text and image vectors share a space, scored
    /// for zero-shot with `scoring`.
    pub fn insert_scoring(&mut self, name: &str, scoring: Scoring) {
        self.scoring.insert(name.to_string(), scoring);
    }

    /// How the two-tower model `name` scores zero-shot labels; `None` for other models.
    pub fn scoring(&self, name: &str) -> Option<Scoring> {
        self.scoring.get(name).copied()
    }

    /// Names of the models that can score zero-shot (a text tower and a scoring rule), sorted.
    pub fn zero_shot_names(&self) -> Vec<String> {
        self.scoring
            .keys()
            .filter(|n| self.text.contains_key(*n))
            .cloned()
            .collect()
    }

    /// The text model called `name`.
    pub fn text(&self, name: &str) -> Option<Arc<dyn TextEmbedder>> {
        self.text.get(name).cloned()
    }

    /// The image model called `name`.
    pub fn image(&self, name: &str) -> Option<Arc<dyn ImageEmbedder>> {
        self.image.get(name).cloned()
    }

    /// The audio model called `name`.
    pub fn audio(&self, name: &str) -> Option<Arc<dyn AudioEmbedder>> {
        self.audio.get(name).cloned()
    }

    /// What the model plugins call `name` serves: per modality it has (text, image, audio, in
    /// that order; a CLIP or SigLIP model has two), its dimension there and the model's
    /// identity (`name@revision`, [`crate::identity`]), which names its vectors in the store.
    /// Empty when no model has that name.
    pub fn modalities(&self, name: &str) -> Vec<(Modality, usize, String)> {
        let text = self
            .text(name)
            .map(|m| (Modality::Text, m.dimension(), m.name().to_string()));
        let image = self
            .image(name)
            .map(|m| (Modality::Image, m.dimension(), m.name().to_string()));
        let audio = self
            .audio(name)
            .map(|m| (Modality::Audio, m.dimension(), m.name().to_string()));
        [text, image, audio].into_iter().flatten().collect()
    }

    /// Names of the text models, sorted.
    pub fn text_names(&self) -> Vec<String> {
        self.text.keys().cloned().collect()
    }

    /// Names of the image models, sorted.
    pub fn image_names(&self) -> Vec<String> {
        self.image.keys().cloned().collect()
    }

    /// Names of the audio models, sorted.
    pub fn audio_names(&self) -> Vec<String> {
        self.audio.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::load_dir;
    use crate::tiny::{TinyBertSpec, TinyClipSpec, write_tiny_bert, write_tiny_clip};
    use candle_core::Device;

    #[test]
    fn two_versions_and_two_modalities_side_by_side() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (v1, v2, clip) = (
            dir.path().join("v1"),
            dir.path().join("v2"),
            dir.path().join("clip"),
        );
        write_tiny_bert(&v1, &TinyBertSpec::default())?;
        write_tiny_bert(
            &v2,
            &TinyBertSpec {
                seed: 99,
                ..TinyBertSpec::default()
            },
        )?;
        write_tiny_clip(&clip, &TinyClipSpec::default())?;
        let mut registry = Registry::default();
        let config = BatchConfig::default();
        let first = load_dir(&v1, "enc@1", &Device::Cpu)?;
        let second = load_dir(&v2, "enc@2", &Device::Cpu)?;
        let both = load_dir(&clip, "clip", &Device::Cpu)?;
        registry.insert_batched("enc@1", &first, &config)?;
        registry.insert_batched("enc@2", &second, &config)?;
        registry.insert_batched("clip", &both, &config)?;
        assert_eq!(registry.text_names(), ["clip", "enc@1", "enc@2"]);
        assert_eq!(registry.image_names(), ["clip"]);
        assert!(registry.audio_names().is_empty());
        assert_eq!(
            registry.zero_shot_names(),
            ["clip"],
            "CLIP carries its scoring rule"
        );
        assert!(registry.scoring("enc@1").is_none());

        let text = "a lighthouse keeper";
        let a = registry.text("enc@1").ok_or("enc@1")?.embed(&[text])?;
        let b = registry.text("enc@2").ok_or("enc@2")?.embed(&[text])?;
        let direct = first.text.as_ref().ok_or("text")?.embed(&[text])?;
        assert_eq!(a, direct, "each name serves its own version");
        assert_ne!(a, b, "the versions differ");
        let image = image::RgbImage::from_pixel(8, 8, image::Rgb([10, 200, 30]));
        let v = registry.image("clip").ok_or("clip")?.embed(&[image])?;
        assert_eq!(v[0].len(), 16);
        // Each modality a model serves, with its dimension and identity; none for unknown names.
        let served = registry.modalities("enc@2");
        assert_eq!(served, [(Modality::Text, b[0].len(), "enc@2".to_string())]);
        let clip: Vec<Modality> = registry.modalities("clip").iter().map(|m| m.0).collect();
        assert_eq!(clip, [Modality::Text, Modality::Image]);
        assert!(registry.modalities("nope").is_empty());
        Ok(())
    }
}
