//! A loaded model's identity, `name@revision`: what the store names its vectors after and what
//! tells outputs of one revision from another's. Two directories called `bge-small` with
//! different weights must never share a vector space, so the revision comes from what the
//! weights are, not from where they lie.
//!
//! - A Hugging Face cache snapshot (`…/snapshots/<commit>`): the commit, as the hub pins it.
//! - Any other directory: a digest of the files that decide the vectors (config, tokenizer,
//!   preprocessing and weights).

use crate::ModelError;
use crate::manifest::{hash_file, hex};
use crate::weights::WEIGHTS_FILE;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Hex digits of a revision kept in an identity: enough to tell revisions apart, short enough
/// for a vector name.
pub const REVISION_CHARS: usize = 12;

/// `name@revision` for the model in `dir`; a `name` that already holds a revision is kept.
pub fn identity(name: &str, dir: &Path) -> Result<String, ModelError> {
    if name.contains('@') {
        return Ok(name.to_string());
    }
    Ok(format!("{name}@{}", revision(dir)?))
}

/// `name@revision` for a pinned revision (a manifest's), shortened as [`identity`] does.
pub fn pinned(name: &str, revision: &str) -> String {
    format!("{name}@{}", short(revision))
}

fn short(revision: &str) -> &str {
    revision
        .char_indices()
        .nth(REVISION_CHARS)
        .map_or(revision, |(i, _)| &revision[..i])
}

/// The revision of the model in `dir`: a hub snapshot's commit, otherwise a digest of its files.
pub fn revision(dir: &Path) -> Result<String, ModelError> {
    if let Some(commit) = hub_commit(dir) {
        return Ok(short(commit).to_string());
    }
    let files = deciding_files(dir)?;
    if files.is_empty() {
        return Err(ModelError::File {
            path: dir.to_path_buf(),
            reason: "no model files (config.json, weights) to identify the model by".into(),
        });
    }
    let mut hasher = Sha256::new();
    for (relative, path) in files {
        // The name is part of the digest, so moving bytes from one file to another counts.
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        hash_file(&mut hasher, &path)?;
        hasher.update([0]);
    }
    let digest = hex(&hasher.finalize());
    Ok(short(&digest).to_string())
}

/// The commit of a Hugging Face cache snapshot, `…/models--ORG--NAME/snapshots/<40 hex>`: the
/// hub pinned its files by that commit. Any other directory is identified by its contents.
pub fn hub_commit(dir: &Path) -> Option<&str> {
    fn name(p: Option<&Path>) -> Option<&str> {
        p.and_then(Path::file_name).and_then(|n| n.to_str())
    }
    let commit = name(Some(dir))?;
    let in_snapshots = name(dir.parent()) == Some("snapshots");
    let in_hub_cache =
        name(dir.parent().and_then(Path::parent)).is_some_and(|r| r.starts_with("models--"));
    let is_commit = commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit());
    (in_snapshots && in_hub_cache && is_commit).then_some(commit)
}

/// The files of `dir` that decide its vectors, sorted by relative path: JSON configs and
/// tokenizers, vocabularies, the weights file the encoders load ([`WEIGHTS_FILE`]) and
/// sentence-transformers' pooling config. Anything else may change freely: a README, and other
/// checkpoints beside the one loaded (a hub clone's `pytorch_model.bin`, ONNX or adapter
/// weights), which would otherwise also cost a full read at every start.
fn deciding_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, ModelError> {
    let io = |e: std::io::Error| ModelError::File {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let deciding = |name: &str| {
        name == WEIGHTS_FILE
            || [".json", ".txt", ".model"]
                .iter()
                .any(|ext| name.ends_with(ext))
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if deciding(&name) && entry.path().is_file() {
            files.push((name, entry.path()));
        }
    }
    // sentence-transformers modules keep their settings in their own folders; the loader reads
    // the pooling module's from wherever modules.json puts it (1_Pooling by convention).
    let mut modules = vec!["1_Pooling".to_string()];
    if let Ok(text) = std::fs::read_to_string(dir.join("modules.json"))
        && let Ok(listed) = serde_json::from_str::<Vec<serde_json::Value>>(&text)
    {
        modules.extend(
            listed
                .iter()
                .filter_map(|m| m.get("path")?.as_str())
                .filter(|path| !path.is_empty())
                .map(str::to_string),
        );
    }
    modules.sort();
    modules.dedup();
    for module in modules {
        let config = dir.join(&module).join("config.json");
        if config.is_file() {
            files.push((format!("{module}/config.json"), config));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{TinyBertSpec, write_tiny_bert};

    #[test]
    fn a_directory_is_identified_by_its_contents() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let (a, b, c) = (
            tmp.path().join("a/bge"),
            tmp.path().join("b/bge"),
            tmp.path().join("c/bge"),
        );
        write_tiny_bert(&a, &TinyBertSpec::default())?;
        write_tiny_bert(&b, &TinyBertSpec::default())?;
        write_tiny_bert(
            &c,
            &TinyBertSpec {
                seed: 7,
                ..TinyBertSpec::default()
            },
        )?;
        let id = identity("bge", &a)?;
        assert_eq!(id.len(), "bge@".len() + REVISION_CHARS, "{id}");
        // Same files elsewhere: same identity; other weights under the same name: another.
        assert_eq!(identity("bge", &b)?, id);
        assert_ne!(identity("bge", &c)?, id);
        // A README does not decide the vectors, nor do checkpoints the encoders never load; the
        // pooling config does.
        std::fs::write(a.join("README.md"), "notes")?;
        std::fs::write(a.join("pytorch_model.bin"), "other weights")?;
        std::fs::write(a.join("adapter_model.safetensors"), "other weights")?;
        assert_eq!(identity("bge", &a)?, id);
        std::fs::create_dir_all(a.join("1_Pooling"))?;
        std::fs::write(
            a.join("1_Pooling/config.json"),
            r#"{"pooling_mode_cls_token": true}"#,
        )?;
        let with_pooling = identity("bge", &a)?;
        assert_ne!(with_pooling, id);
        // A pooling module elsewhere counts when modules.json names it, as the loader reads it.
        std::fs::create_dir_all(a.join("pool"))?;
        std::fs::write(
            a.join("pool/config.json"),
            r#"{"pooling_mode_mean_tokens": true}"#,
        )?;
        assert_eq!(identity("bge", &a)?, with_pooling);
        std::fs::write(
            a.join("modules.json"),
            r#"[{"idx": 1, "name": "1", "path": "pool", "type": "sentence_transformers.models.Pooling"}]"#,
        )?;
        let named = identity("bge", &a)?;
        assert_ne!(named, with_pooling);
        std::fs::write(
            a.join("pool/config.json"),
            r#"{"pooling_mode_cls_token": true}"#,
        )?;
        assert_ne!(identity("bge", &a)?, named);
        // A name that already holds a revision is kept.
        assert_eq!(identity("bge@v2", &a)?, "bge@v2");
        Ok(())
    }

    #[test]
    fn a_hub_snapshot_is_identified_by_its_commit() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let snapshot = tmp
            .path()
            .join("models--org--m/snapshots/c9745ed1d9f207416be6d2e6f8de32d1f16199bf");
        std::fs::create_dir_all(&snapshot)?;
        assert_eq!(identity("m", &snapshot)?, "m@c9745ed1d9f2");
        // A folder merely called `snapshots`, or a name that is not a commit, is hashed.
        for other in ["data/snapshots/bge", "models--org--m/snapshots/main"] {
            let dir = tmp.path().join(other);
            write_tiny_bert(&dir, &TinyBertSpec::default())?;
            let id = identity("m", &dir)?;
            assert_ne!(
                id,
                format!(
                    "m@{}",
                    dir.file_name().and_then(|n| n.to_str()).unwrap_or("")
                )
            );
            assert_eq!(id, identity("m", &tmp.path().join("data/snapshots/bge"))?);
        }
        assert_eq!(
            pinned("m", "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"),
            "m@c9745ed1d9f2"
        );
        assert_eq!(pinned("m", "v1"), "m@v1");
        Ok(())
    }

    #[test]
    fn an_empty_or_missing_directory_is_a_clear_error() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let empty = revision(tmp.path()).map_err(|e| e.to_string());
        assert!(
            empty.as_ref().is_err_and(|e| e.contains("no model files")),
            "{empty:?}"
        );
        let missing = revision(&tmp.path().join("nope")).map_err(|e| e.to_string());
        assert!(
            missing.as_ref().is_err_and(|e| e.contains("nope")),
            "{missing:?}"
        );
        Ok(())
    }
}
