//! Resolving a Hugging Face repo id and pinned revision to a local model directory, offline first.
//!
//! The local cache (the layout `huggingface_hub` writes: `models--org--name/refs/<branch>` holding
//! a commit hash, `snapshots/<hash>/<file>`) is always searched first, so a machine with a warm
//! cache never touches the network. Downloading happens only when the caller allows it and
//! `HF_HUB_OFFLINE` is not set; a miss then fails fast with an error that says how to provide the
//! model.

use crate::ModelError;
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use std::path::{Path, PathBuf};

/// Files a sentence-encoder directory must hold.
pub const REQUIRED_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];
/// sentence-transformers files fetched when the repo has them.
pub const OPTIONAL_FILES: &[&str] = &[
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
];

/// A model on the hub, pinned to a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubModel {
    /// Repo id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub repo: String,
    /// A commit hash (preferred: immutable) or a branch name.
    pub revision: String,
}

impl std::str::FromStr for HubModel {
    type Err = ModelError;

    /// Parses `org/name@revision`. The revision is required: models are pinned.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('@') {
            Some((repo, revision)) if repo.contains('/') && !revision.is_empty() => {
                Ok(HubModel { repo: repo.to_string(), revision: revision.to_string() })
            }
            _ => Err(ModelError::Config {
                path: PathBuf::from(s),
                reason: "a hub model is written org/name@revision (the revision pins it; prefer a commit hash)".into(),
            }),
        }
    }
}

impl std::fmt::Display for HubModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repo, self.revision)
    }
}

/// Where to look and whether the network may be used.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The hub cache directory (`.../huggingface/hub`).
    pub cache: PathBuf,
    /// Whether a cache miss may download.
    pub allow_download: bool,
    /// Hub endpoint (tests point it at a local port).
    pub endpoint: Option<String>,
}

impl HubOptions {
    /// The cache from `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`;
    /// downloads allowed unless `HF_HUB_OFFLINE` is set.
    pub fn from_env() -> Self {
        let cache = std::env::var_os("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| Cache::from_env().path().clone());
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
            .unwrap_or(false);
        HubOptions {
            cache,
            allow_download: !offline,
            endpoint: None,
        }
    }
}

/// Where `model`'s snapshot lives (or would live) in `cache`: a branch resolves through `refs/`,
/// a commit hash names its snapshot directly.
fn snapshot_dir(cache: &Path, model: &HubModel) -> PathBuf {
    let repo = Repo::with_revision(model.repo.clone(), RepoType::Model, model.revision.clone());
    let root = cache.join(repo.folder_name());
    let commit = std::fs::read_to_string(root.join("refs").join(&model.revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| model.revision.clone());
    root.join("snapshots").join(commit)
}

/// The directory of `model` in the cache, if every required file is there.
pub fn cached_dir(cache: &Path, model: &HubModel) -> Option<PathBuf> {
    let dir = snapshot_dir(cache, model);
    REQUIRED_FILES
        .iter()
        .all(|f| dir.join(f).is_file())
        .then_some(dir)
}

/// Resolves `model` to a directory holding at least the required files: the cache first, then
/// (if allowed) the hub, which also brings the optional sentence-transformers files.
pub fn resolve(model: &HubModel, options: &HubOptions) -> Result<PathBuf, ModelError> {
    let dir = fetch_files(model, REQUIRED_FILES, options)?;
    if options.allow_download {
        for file in OPTIONAL_FILES {
            if let Err(e) = fetch_files(model, &[file], options) {
                tracing::debug!(repo = %model.repo, file, error = %e, "optional model file not fetched");
            }
        }
    }
    Ok(dir)
}

/// Makes sure every one of `files` of `model` is in the cache — downloading the missing ones
/// when `options` allow it — and returns the snapshot directory.
pub fn fetch_files(
    model: &HubModel,
    files: &[&str],
    options: &HubOptions,
) -> Result<PathBuf, ModelError> {
    let snapshot = snapshot_dir(&options.cache, model);
    if files.iter().all(|f| snapshot.join(f).is_file()) {
        return Ok(snapshot);
    }
    if !options.allow_download {
        return Err(ModelError::NotInCache {
            repo: model.repo.clone(),
            revision: model.revision.clone(),
            cache: options.cache.clone(),
        });
    }
    let download_error = |file: &str, reason: String| ModelError::Download {
        repo: model.repo.clone(),
        revision: model.revision.clone(),
        file: file.to_string(),
        reason,
    };
    let mut builder = ApiBuilder::from_cache(Cache::new(options.cache.clone()))
        .with_progress(false)
        .with_retries(1);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder
        .build()
        .map_err(|e| download_error("(client)", e.to_string()))?;
    let repo = api.repo(Repo::with_revision(
        model.repo.clone(),
        RepoType::Model,
        model.revision.clone(),
    ));
    let mut dir = None;
    for file in files {
        let path = repo
            .get(file)
            .map_err(|e| download_error(file, e.to_string()))?;
        // `file` may sit in a subfolder (1_Pooling/config.json): the snapshot is above it.
        dir = path
            .ancestors()
            .nth(Path::new(file).components().count())
            .map(Path::to_path_buf);
    }
    dir.ok_or_else(|| {
        download_error(
            files.first().copied().unwrap_or(""),
            "download returned no path".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(revision: &str) -> HubModel {
        HubModel {
            repo: "acme/encoder".into(),
            revision: revision.into(),
        }
    }

    fn fake_cache(cache: &Path, commit: &str) -> std::io::Result<PathBuf> {
        let root = cache.join("models--acme--encoder");
        let snapshot = root.join("snapshots").join(commit);
        std::fs::create_dir_all(&snapshot)?;
        std::fs::create_dir_all(root.join("refs"))?;
        std::fs::write(root.join("refs/main"), commit)?;
        for f in REQUIRED_FILES {
            std::fs::write(snapshot.join(f), b"{}")?;
        }
        Ok(snapshot)
    }

    #[test]
    fn parses_pinned_names() {
        assert_eq!(
            "acme/encoder@v1".parse::<HubModel>().ok(),
            Some(model("v1"))
        );
        for bad in ["acme/encoder", "encoder@v1", "acme/encoder@"] {
            assert!(bad.parse::<HubModel>().is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_branch_and_commit_in_cache() -> Result<(), Box<dyn std::error::Error>> {
        let cache = tempfile::tempdir()?;
        let snapshot = fake_cache(cache.path(), "0123abcd")?;
        let options = HubOptions {
            cache: cache.path().into(),
            allow_download: false,
            endpoint: None,
        };
        assert_eq!(resolve(&model("main"), &options)?, snapshot);
        assert_eq!(resolve(&model("0123abcd"), &options)?, snapshot);
        Ok(())
    }

    #[test]
    fn offline_miss_names_repo_and_how_to_fix() -> Result<(), Box<dyn std::error::Error>> {
        let cache = tempfile::tempdir()?;
        let options = HubOptions {
            cache: cache.path().into(),
            allow_download: false,
            endpoint: None,
        };
        let msg = resolve(&model("v1"), &options)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("acme/encoder@v1") && msg.contains("huggingface-cli download"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn download_failure_names_the_file() -> Result<(), Box<dyn std::error::Error>> {
        // Up to the network boundary: a real HTTP attempt against a closed local port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cache = tempfile::tempdir()?;
        let options = HubOptions {
            cache: cache.path().into(),
            allow_download: true,
            endpoint: Some(format!("http://127.0.0.1:{port}")),
        };
        match resolve(&model("main"), &options) {
            Err(ModelError::Download { repo, file, .. }) => {
                assert_eq!(repo, "acme/encoder");
                assert_eq!(file, "config.json");
            }
            other => panic!("expected a download error, got {other:?}"),
        }
        Ok(())
    }
}
