//! Loading a model by directory or by manifest name, with the architecture read from its
//! config.json, into the modalities it serves.
//!
//! A name is looked up in the manifests (`models/manifests/*.toml`), fetched from the Hugging Face
//! cache (or the hub, when allowed) and verified against the manifest's sha256 before use.
//! `name@revision` picks a manifest by name and pinned revision, so two versions of one model can
//! be loaded side by side.

use crate::hub::HubOptions;
use crate::manifest::{self, ModelManifest};
use crate::text::read_model_config;
use crate::zero_shot::Scoring;
use crate::{
    AudioEmbedder, ClipTextEncoder, ClipVisionEncoder, ImageEmbedder, ModelError, SentenceEncoder,
    SiglipTextEncoder, SiglipVisionEncoder, TextEmbedder, WhisperAudioEncoder,
};
use candle_core::Device;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a model directory holds, from its config.json `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// A BERT-family sentence encoder (all-MiniLM, BGE, E5, GTE-small …): text.
    Bert,
    /// A full CLIP checkpoint: text and image, in one space.
    Clip,
    /// CLIP's vision tower alone: image.
    ClipVision,
    /// CLIP's text tower alone: text.
    ClipText,
    /// A full SigLIP checkpoint: text and image, in one space.
    Siglip,
    /// SigLIP's vision tower alone: image.
    SiglipVision,
    /// Whisper: audio (its encoder).
    Whisper,
}

/// Reads `dir/config.json` and names its architecture; anything else is a clear error.
pub fn detect(dir: &Path) -> Result<Architecture, ModelError> {
    #[derive(serde::Deserialize)]
    struct Head {
        model_type: Option<String>,
    }
    let path = dir.join("config.json");
    let head: Head = read_model_config(&path)?;
    match head.model_type.as_deref() {
        Some("bert") => Ok(Architecture::Bert),
        Some("clip") => Ok(Architecture::Clip),
        Some("clip_vision_model") => Ok(Architecture::ClipVision),
        Some("clip_text_model") => Ok(Architecture::ClipText),
        Some("siglip") => Ok(Architecture::Siglip),
        Some("siglip_vision_model") => Ok(Architecture::SiglipVision),
        Some("whisper") => Ok(Architecture::Whisper),
        other => Err(ModelError::Config {
            path,
            reason: format!(
                "model_type {} is not supported (supported: bert, clip, clip_vision_model, \
                 clip_text_model, siglip, siglip_vision_model, whisper)",
                other.map_or("(missing)".to_string(), |t| format!("{t:?}"))
            ),
        }),
    }
}

/// A loaded model, by modality. A full CLIP fills `text` and `image`.
#[derive(Debug, Clone, Default)]
pub struct LoadedModel {
    /// The text encoder, if the model has one.
    pub text: Option<Arc<dyn TextEmbedder>>,
    /// The image encoder, if the model has one.
    pub image: Option<Arc<dyn ImageEmbedder>>,
    /// The audio encoder, if the model has one.
    pub audio: Option<Arc<dyn AudioEmbedder>>,
    /// How the text tower's similarities become zero-shot scores (CLIP, SigLIP).
    pub scoring: Option<Scoring>,
}

/// Loads every modality the model in `dir` serves, as `name`.
pub fn load_dir(dir: &Path, name: &str, device: &Device) -> Result<LoadedModel, ModelError> {
    let mut loaded = LoadedModel::default();
    match detect(dir)? {
        Architecture::Bert => {
            loaded.text = Some(Arc::new(SentenceEncoder::load(dir, name, device)?));
        }
        Architecture::ClipText => {
            let text = ClipTextEncoder::load(dir, name, device)?;
            loaded.scoring = Some(clip_scoring(&text));
            loaded.text = Some(Arc::new(text));
        }
        Architecture::ClipVision => {
            loaded.image = Some(Arc::new(ClipVisionEncoder::load(dir, name, device)?));
        }
        Architecture::Clip => {
            let text = ClipTextEncoder::load(dir, name, device)?;
            loaded.scoring = Some(clip_scoring(&text));
            loaded.text = Some(Arc::new(text));
            loaded.image = Some(Arc::new(ClipVisionEncoder::load(dir, name, device)?));
        }
        Architecture::Siglip => {
            let text = SiglipTextEncoder::load(dir, name, device)?;
            loaded.scoring = text
                .logits()
                .map(|(logit_scale, logit_bias)| Scoring::Sigmoid {
                    logit_scale,
                    logit_bias,
                });
            loaded.text = Some(Arc::new(text));
            loaded.image = Some(Arc::new(SiglipVisionEncoder::load(dir, name, device)?));
        }
        Architecture::SiglipVision => {
            loaded.image = Some(Arc::new(SiglipVisionEncoder::load(dir, name, device)?));
        }
        Architecture::Whisper => {
            loaded.audio = Some(Arc::new(WhisperAudioEncoder::load(dir, name, device)?));
        }
    }
    Ok(loaded)
}

/// CLIP's scoring with the checkpoint's logit scale, or CLIP's initial ln(100) without one.
fn clip_scoring(text: &ClipTextEncoder) -> Scoring {
    Scoring::Softmax {
        logit_scale: text.logit_scale().unwrap_or(100f32.ln()),
    }
}

/// Where a model spec (`DIR`, `NAME` or `NAME@REVISION`) points: an existing directory as it is,
/// else the manifest of that name, fetched and verified. Returns the directory and the model's
/// identity, `name@revision` ([`crate::identity`]): the directory's name and a digest of its
/// files, or the manifest's name and pinned revision.
pub fn resolve(
    spec: &str,
    manifests: &Path,
    options: &HubOptions,
) -> Result<(PathBuf, String), ModelError> {
    let path = Path::new(spec);
    // Manifest names never hold a path separator, so a spec with one is a directory or nothing.
    if spec.contains(std::path::MAIN_SEPARATOR) && !path.is_dir() {
        return Err(ModelError::File {
            path: path.to_path_buf(),
            reason: "no such model directory".into(),
        });
    }
    if path.is_dir() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.to_string());
        return Ok((path.to_path_buf(), crate::identity::identity(&name, path)?));
    }
    let all = manifest::load_dir(manifests)?;
    let found = find(&all, spec).ok_or_else(|| ModelError::InvalidInput {
        model: spec.to_string(),
        reason: format!(
            "neither a model directory nor a model name in {} (known: {})",
            manifests.display(),
            all.iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let dir = manifest::pull(found, options)?;
    Ok((dir, crate::identity::pinned(&found.name, &found.revision)))
}

fn find<'a>(all: &'a [ModelManifest], spec: &str) -> Option<&'a ModelManifest> {
    match spec.split_once('@') {
        Some((name, revision)) => all
            .iter()
            .find(|m| m.name == name && m.revision.starts_with(revision) && !revision.is_empty()),
        None => all.iter().find(|m| m.name == spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny;

    #[test]
    fn detects_each_architecture_and_refuses_others() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        type Writer = fn(&Path) -> Result<(), ModelError>;
        let cases: [(&str, Writer, Architecture); 5] = [
            (
                "bert",
                |d| tiny::write_tiny_bert(d, &tiny::TinyBertSpec::default()),
                Architecture::Bert,
            ),
            (
                "clip",
                |d| tiny::write_tiny_clip(d, &tiny::TinyClipSpec::default()),
                Architecture::Clip,
            ),
            (
                "clip-vision",
                |d| tiny::write_tiny_clip_vision(d, &tiny::TinyClipSpec::default()),
                Architecture::ClipVision,
            ),
            (
                "whisper",
                |d| tiny::write_tiny_whisper(d, &tiny::TinyWhisperSpec::default()),
                Architecture::Whisper,
            ),
            (
                "siglip",
                |d| tiny::write_tiny_siglip(d, &tiny::TinySiglipSpec::default()),
                Architecture::Siglip,
            ),
        ];
        for (name, write, want) in cases {
            let d = dir.path().join(name);
            write(&d)?;
            assert_eq!(detect(&d)?, want, "{name}");
            let loaded = load_dir(&d, name, &Device::Cpu)?;
            let got = (
                loaded.text.is_some(),
                loaded.image.is_some(),
                loaded.audio.is_some(),
            );
            let expected = match want {
                Architecture::Bert | Architecture::ClipText => (true, false, false),
                Architecture::Clip | Architecture::Siglip => (true, true, false),
                Architecture::ClipVision | Architecture::SiglipVision => (false, true, false),
                Architecture::Whisper => (false, false, true),
            };
            assert_eq!(got, expected, "{name}");
        }
        let odd = dir.path().join("t5");
        std::fs::create_dir_all(&odd)?;
        std::fs::write(odd.join("config.json"), r#"{"model_type": "t5"}"#)?;
        let msg = detect(&odd)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("\"t5\" is not supported") && msg.contains("whisper"),
            "{msg}"
        );
        Ok(())
    }
}
