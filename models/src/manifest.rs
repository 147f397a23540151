//! Model manifests: one TOML file per named model (`models/manifests/*.toml`), pinning a hub repo
//! and revision and the sha256 of every file the model needs.
//!
//! A manifest turns "download something called all-MiniLM" into a reproducible fact: the same
//! bytes, or an error naming the file that differs. Several models, and several versions of one
//! model, are separate manifests with separate names.

use crate::ModelError;
use crate::hub::{self, HubModel, HubOptions};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a model embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// Text encoders.
    Text,
    /// Image encoders.
    Image,
    /// Audio encoders.
    Audio,
}

impl Modality {
    /// `text`, `image` or `audio`: the first part of the names of its vectors in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::Audio => "audio",
        }
    }
}

/// One named model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// The name the host and plugins address it by.
    pub name: String,
    /// What it embeds.
    pub modality: Modality,
    /// Hub repo id.
    pub repo: String,
    /// Pinned revision (a commit hash).
    pub revision: String,
    /// Embedding dimension.
    pub dimension: usize,
    /// Pooling, for text models (`mean`, `cls`).
    #[serde(default)]
    pub pooling: Option<String>,
    /// Every file the model needs, with its sha256 (lowercase hex).
    pub files: BTreeMap<String, String>,
}

impl ModelManifest {
    /// The pinned hub model.
    pub fn hub_model(&self) -> HubModel {
        HubModel {
            repo: self.repo.clone(),
            revision: self.revision.clone(),
        }
    }

    fn check(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |reason: String| ModelError::Config {
            path: path.to_path_buf(),
            reason,
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return Err(bad(format!(
                "name {:?} must be non-empty ASCII letters, digits, - _ . @",
                self.name
            )));
        }
        if self.files.is_empty() {
            return Err(bad("[files] lists no files".into()));
        }
        for (file, sha) in &self.files {
            if sha.len() != 64
                || !sha
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            {
                return Err(bad(format!(
                    "{file}: {sha:?} is not a lowercase hex sha256"
                )));
            }
        }
        Ok(())
    }
}

/// Reads every `*.toml` manifest in `dir`, sorted by name; names must be unique.
pub fn load_dir(dir: &Path) -> Result<Vec<ModelManifest>, ModelError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ModelError::File {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut manifests: Vec<ModelManifest> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let manifest: ModelManifest = toml::from_str(&text).map_err(|e| ModelError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        manifest.check(&path)?;
        if manifests.iter().any(|m| m.name == manifest.name) {
            return Err(ModelError::Config {
                path,
                reason: format!("model name {:?} is used by another manifest", manifest.name),
            });
        }
        manifests.push(manifest);
    }
    manifests.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(manifests)
}

/// The sha256 of `bytes`, lowercase hex (the form manifests hold).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` as lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut hasher = Sha256::new();
    hash_file(&mut hasher, path)?;
    Ok(hex(&hasher.finalize()))
}

/// Feeds a file's bytes to `hasher`, 1 MiB at a time.
pub(crate) fn hash_file(hasher: &mut Sha256, path: &Path) -> Result<(), ModelError> {
    let io = |e: std::io::Error| ModelError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buffer[..n]);
    }
}

/// Checks every file of `manifest` in `dir` against its sha256.
pub fn verify(manifest: &ModelManifest, dir: &Path) -> Result<(), ModelError> {
    for (file, expected) in &manifest.files {
        let path = dir.join(file);
        let got = sha256_file(&path)?;
        if &got != expected {
            return Err(ModelError::Checksum {
                model: manifest.name.clone(),
                path,
                expected: expected.clone(),
                got,
            });
        }
    }
    Ok(())
}

/// The verified local directory of `manifest`: from the cache, else downloaded when `options`
/// allow it. Any file that differs from the manifest is an error, never used.
pub fn pull(manifest: &ModelManifest, options: &HubOptions) -> Result<PathBuf, ModelError> {
    let files: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
    let dir = hub::fetch_files(&manifest.hub_model(), &files, options)?;
    verify(manifest, &dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "enc"
modality = "text"
repo = "acme/encoder"
revision = "0123abcd"
dimension = 4
pooling = "cls"
[files]
"config.json" = "SHA"
"#;

    fn sha(text: &str) -> String {
        sha256_hex(text.as_bytes())
    }

    fn manifest_for(content: &str) -> String {
        GOOD.replace("SHA", &sha(content))
    }

    #[test]
    fn the_shipped_manifests_load() -> Result<(), ModelError> {
        let manifests = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests"))?;
        let minilm = manifests
            .iter()
            .find(|m| m.name == "all-minilm-l6-v2")
            .ok_or(ModelError::Device("missing".into()))?;
        assert_eq!((minilm.modality, minilm.dimension), (Modality::Text, 384));
        Ok(())
    }

    #[test]
    fn bad_manifests_name_the_file_and_the_problem() -> Result<(), Box<dyn std::error::Error>> {
        let cases = [
            (GOOD.replace("SHA", "xyz"), "not a lowercase hex sha256"),
            (format!("{}\ncolour = 1", manifest_for("{}")), "colour"),
            (manifest_for("{}").replace("\"text\"", "\"smell\""), "smell"),
        ];
        for (text, expected) in cases {
            let dir = tempfile::tempdir()?;
            std::fs::write(dir.path().join("enc.toml"), &text)?;
            let msg = load_dir(dir.path())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.contains("enc.toml") && msg.contains(expected), "{msg}");
        }
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a.toml"), manifest_for("{}"))?;
        std::fs::write(dir.path().join("b.toml"), manifest_for("{}"))?;
        let msg = load_dir(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("used by another manifest"), "{msg}");
        Ok(())
    }

    #[test]
    fn pull_verifies_cached_files_and_refuses_altered_ones()
    -> Result<(), Box<dyn std::error::Error>> {
        let cache = tempfile::tempdir()?;
        let snapshot = cache
            .path()
            .join("models--acme--encoder/snapshots/0123abcd");
        std::fs::create_dir_all(&snapshot)?;
        std::fs::write(snapshot.join("config.json"), "{\"a\": 1}")?;
        let manifest: ModelManifest = toml::from_str(&manifest_for("{\"a\": 1}"))?;
        let options = HubOptions {
            cache: cache.path().into(),
            allow_download: false,
            endpoint: None,
        };
        assert_eq!(pull(&manifest, &options)?, snapshot);

        std::fs::write(snapshot.join("config.json"), "{\"a\": 2}")?;
        match pull(&manifest, &options) {
            Err(ModelError::Checksum { model, path, .. }) => {
                assert_eq!(model, "enc");
                assert!(path.ends_with("config.json"));
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        Ok(())
    }
}
