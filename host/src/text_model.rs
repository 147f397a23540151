//! Choosing and loading the host's text model: an explicit directory, else the pinned
//! all-MiniLM-L6-v2 from the local Hugging Face cache, else (for demos only) a generated tiny model
//! with a loud warning.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera_models::batching::{BatchConfig, Lane};
use tessera_models::hub::{self, HubModel, HubOptions};
use tessera_models::tiny::{TinyBertSpec, write_tiny_bert};
use tessera_models::{
    BatchedText, DeviceChoice, ModelError, Registry, SentenceEncoder, TextEmbedder, select_device,
};

/// The hub repo of the default text model.
pub const MINILM_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Its pinned revision (a commit of the hub repo).
pub const MINILM_REVISION: &str = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";
/// Name under which plugins reach the host's default text model.
pub const DEFAULT_TEXT: &str = "text";

/// Where a text model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextSource {
    /// A directory the user named.
    Dir(PathBuf),
    /// A hub model (the pinned MiniLM, or one named with `--text-model-hub`), from the cache or
    /// downloaded.
    HubCache(PathBuf),
    /// A generated tiny model: embeddings without meaning.
    Tiny(PathBuf),
}

impl TextSource {
    /// The model directory.
    pub fn dir(&self) -> &Path {
        match self {
            TextSource::Dir(d) | TextSource::HubCache(d) | TextSource::Tiny(d) => d,
        }
    }
}

/// Picks the text model: `explicit`, else `hub` (the cache, then a download unless
/// `HF_HUB_OFFLINE` is set), else MiniLM from the cache (pinned revision, then `main`), else a tiny
/// model written under `tiny_dir`. Only a model named with `hub` is ever downloaded.
pub fn choose(
    explicit: Option<&Path>,
    hub_model: Option<&HubModel>,
    tiny_dir: &Path,
) -> Result<TextSource, ModelError> {
    if let Some(dir) = explicit {
        return Ok(TextSource::Dir(dir.to_path_buf()));
    }
    if let Some(model) = hub_model {
        return hub::resolve(model, &HubOptions::from_env()).map(TextSource::HubCache);
    }
    let cache = HubOptions::from_env().cache;
    for revision in [MINILM_REVISION, "main"] {
        let model = HubModel {
            repo: MINILM_REPO.into(),
            revision: revision.into(),
        };
        if let Some(dir) = hub::cached_dir(&cache, &model) {
            return Ok(TextSource::HubCache(dir));
        }
    }
    if !tiny_dir.join("model.safetensors").is_file() {
        write_tiny_bert(tiny_dir, &TinyBertSpec::default())?;
    }
    Ok(TextSource::Tiny(tiny_dir.to_path_buf()))
}

/// A model name for a directory: its last path component (for a hub snapshot, the repo name), or
/// `tiny-bert` for generated models. The store knows the model by this name and its revision
/// ([`tessera_models::identity`]).
pub fn model_name(source: &TextSource) -> String {
    match source {
        TextSource::Tiny(_) => "tiny-bert".into(),
        TextSource::HubCache(d) | TextSource::Dir(d) => dir_model_name(d),
    }
}

/// A directory's model name: the repo name of a hub snapshot (`…/models--org--name/snapshots/
/// <commit>`), else the directory's own name.
fn dir_model_name(dir: &Path) -> String {
    let last = |d: &Path| d.file_name().map(|n| n.to_string_lossy().into_owned());
    let repo = tessera_models::identity::hub_commit(dir)
        .and(dir.ancestors().nth(2))
        .and_then(last)
        .and_then(|folder| folder.rsplit("--").next().map(str::to_string));
    repo.or_else(|| last(dir))
        .unwrap_or_else(|| "text-model".into())
}

/// Loads the encoder in `dir` and registers it as `name` and as the default `text` model. The
/// encoder itself is named `name@revision`, the identity its vectors are stored under.
pub fn load_registry(
    dir: &Path,
    name: &str,
    device: DeviceChoice,
) -> Result<(Registry, BatchedText), ModelError> {
    let device = select_device(device)?;
    let identity = tessera_models::identity::identity(name, dir)?;
    let encoder = Arc::new(SentenceEncoder::load(dir, &identity, &device)?);
    // Plugin calls run one title each, many at once; the batcher merges them (bulk lane:
    // plugins do ingestion work).
    let batched = BatchedText::start(encoder as Arc<dyn TextEmbedder>, BatchConfig::default())?;
    let shared: Arc<dyn TextEmbedder> = Arc::new(batched.clone());
    let mut registry = Registry::default();
    registry.insert_text(DEFAULT_TEXT, shared.clone());
    registry.insert_text(name, shared);
    Ok((registry, batched))
}

/// Loads the encoder in `dir` as `name@revision` for ranker queries: behind its own batcher, on
/// the interactive lane, so queries are served ahead of any bulk work.
pub fn load_query_model(
    dir: &Path,
    name: &str,
    device: DeviceChoice,
) -> Result<Arc<BatchedText>, ModelError> {
    let device = select_device(device)?;
    let identity = tessera_models::identity::identity(name, dir)?;
    let encoder = Arc::new(SentenceEncoder::load(dir, &identity, &device)?);
    let batched = BatchedText::start(encoder as Arc<dyn TextEmbedder>, BatchConfig::default())?;
    Ok(Arc::new(batched.with_lane(Lane::Interactive)))
}

/// A model plugins may call besides the text model: `NAME=SPEC`, where SPEC is a model
/// directory or a manifest name (`clip-vit-base-patch32`, `name@revision`), served as NAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraModel {
    /// The name plugins call it by.
    pub name: String,
    /// Directory or manifest name.
    pub spec: String,
}

impl std::str::FromStr for ExtraModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, spec)) if !name.trim().is_empty() && !spec.trim().is_empty() => {
                Ok(ExtraModel {
                    name: name.trim().to_string(),
                    spec: spec.trim().to_string(),
                })
            }
            _ => Err(format!(
                "{s:?}: give NAME=DIR or NAME=MODEL (e.g. clip=/models/clip-vit-base-patch32)"
            )),
        }
    }
}

/// Loads each extra model (every modality it has) into `registry` under its name, behind its
/// own batching scheduler.
pub fn load_extra(
    registry: &mut Registry,
    extra: &[ExtraModel],
    manifests: &Path,
    device: DeviceChoice,
) -> Result<(), ModelError> {
    if extra.is_empty() {
        return Ok(());
    }
    let device = select_device(device)?;
    for model in extra {
        let (dir, identity) = tessera_models::loader::resolve(
            &model.spec,
            manifests,
            &tessera_models::hub::HubOptions::from_env(),
        )?;
        // Plugins call it by its name; its vectors are stored under its identity.
        let loaded = tessera_models::loader::load_dir(&dir, &identity, &device)?;
        registry.insert_batched(&model.name, &loaded, &BatchConfig::default())?;
        tracing::info!(model = %model.name, %identity, dir = %dir.display(), text = loaded.text.is_some(), image = loaded.image.is_some(), audio = loaded.audio.is_some(), "loaded a model for plugins");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_extra_model_flags() {
        let m: Result<ExtraModel, _> = "clip=/models/clip".parse();
        assert_eq!(
            m,
            Ok(ExtraModel {
                name: "clip".into(),
                spec: "/models/clip".into()
            })
        );
        assert!("clip".parse::<ExtraModel>().is_err());
        assert!("=x".parse::<ExtraModel>().is_err());
    }

    #[test]
    fn names_models_after_their_directory_or_repo() {
        let hub = TextSource::HubCache(PathBuf::from(
            "/c/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
        ));
        assert_eq!(model_name(&hub), "all-MiniLM-L6-v2");
        // A snapshot named as a plain directory (`serve --text-model`) gets the same name.
        assert_eq!(
            model_name(&TextSource::Dir(hub.dir().to_path_buf())),
            "all-MiniLM-L6-v2"
        );
        assert_eq!(
            model_name(&TextSource::Dir(PathBuf::from("/m/bge-small"))),
            "bge-small"
        );
        assert_eq!(
            model_name(&TextSource::Tiny(PathBuf::from("/x"))),
            "tiny-bert"
        );
    }
}
