//! A title's input fingerprint: what a run read for it — its catalog fields and the content of
//! each asset file. Equal fingerprints (and current plugin and model versions) mean a re-run
//! would produce the same outputs, so ingest skips the title.

use super::Title;
use crate::manifest::hex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;
use tessera_indexes::AssetDigest;

/// What a title's outputs are made from: one fingerprint over all of it, and each asset's own
/// content hash (stored with the title, so a reader can tell which file changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// See [`fingerprint`].
    pub fingerprint: String,
    /// Per asset, in catalog order: its kind, URI and sha256 (`None` when missing or unreadable).
    pub assets: Vec<AssetDigest>,
}

/// `sha256:` + hex of the title's fields and its assets' kinds, URIs and content (a missing or
/// unreadable file hashes as such, so the fingerprint changes once the file appears).
pub fn fingerprint(title: &Title) -> String {
    inputs(title).fingerprint
}

/// [`fingerprint`] and the assets' digests, each file read once.
pub fn inputs(title: &Title) -> Inputs {
    inputs_with(title, file_digest)
}

/// [`inputs`] with the files' digests from `digests` (see [`fingerprint_cached`]).
pub fn inputs_cached(title: &Title, digests: &DigestCache) -> Inputs {
    inputs_with(title, |path| digests.digest(path))
}

/// [`fingerprint`] with the asset files' digests from `digests`, which keeps each file's digest
/// while its size and modification time stay the same: a long-running ingest (`--watch`) then
/// reads a media file's contents once, not on every pass. A file rewritten with the same size
/// within one timestamp tick keeps its old digest; batch runs use [`fingerprint`].
pub fn fingerprint_cached(title: &Title, digests: &DigestCache) -> String {
    inputs_cached(title, digests).fingerprint
}

/// A file's size and modification time, and its digest when it had them.
type Known = (u64, SystemTime, Vec<u8>);

/// File digests by path, valid while the file's size and modification time are unchanged.
#[derive(Debug, Default)]
pub struct DigestCache {
    files: Mutex<HashMap<PathBuf, Known>>,
}

impl DigestCache {
    fn digest(&self, path: &Path) -> Vec<u8> {
        let stamp = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        let Some((len, modified)) = stamp else {
            return file_digest(path);
        };
        let cached = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .filter(|(l, m, _)| *l == len && *m == modified)
            .map(|(_, _, d)| d.clone());
        if let Some(digest) = cached {
            return digest;
        }
        let digest = file_digest(path);
        // Only real contents are kept: a file that could not be read is tried again.
        if digest.len() == 32 {
            self.files
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(path.to_path_buf(), (len, modified, digest.clone()));
        }
        digest
    }
}

fn inputs_with(title: &Title, file_digest: impl Fn(&Path) -> Vec<u8>) -> Inputs {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so field boundaries cannot shift ("ab","c" vs "a","bc").
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(title.id.as_bytes());
    field(title.name.as_bytes());
    field(title.synopsis.as_bytes());
    field(&title.year.map_or(-1, i32::from).to_le_bytes());
    field(title.language.as_bytes());
    for (k, v) in &title.metadata {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    let mut assets = Vec::with_capacity(title.assets.len());
    for asset in &title.assets {
        let digest = file_digest(&asset.path);
        field(asset.kind.as_bytes());
        field(asset.uri.as_bytes());
        field(&digest);
        assets.push(AssetDigest {
            kind: asset.kind.clone(),
            uri: asset.uri.clone(),
            // A real digest is 32 bytes; the markers for a missing or unreadable file are not.
            sha256: (digest.len() == 32).then(|| hex(&digest)),
        });
    }
    Inputs {
        fingerprint: format!("sha256:{}", hex(&hash.finalize())),
        assets,
    }
}

fn file_digest(path: &Path) -> Vec<u8> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return b"missing".to_vec();
    };
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return hash.finalize().to_vec(),
            Ok(n) => hash.update(&buf[..n]),
            Err(_) => return b"unreadable".to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::AssetRef;

    /// A title whose assets are `(kind, uri)` files under `dir`.
    fn titled(dir: &Path, assets: &[(&str, &str)]) -> Title {
        Title {
            id: "t".into(),
            name: "T".into(),
            synopsis: String::new(),
            year: None,
            language: String::new(),
            metadata: Default::default(),
            assets: assets
                .iter()
                .map(|(kind, uri)| AssetRef {
                    kind: kind.to_string(),
                    uri: uri.to_string(),
                    path: dir.join(uri),
                })
                .collect(),
        }
    }

    #[test]
    fn each_asset_is_recorded_by_its_content_or_as_missing()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("p.png"), b"one")?;
        let title = titled(dir.path(), &[("poster", "p.png"), ("trailer", "gone.mp4")]);
        let got = inputs(&title);
        assert_eq!(got.fingerprint, fingerprint(&title));
        let one = hex(&Sha256::digest(b"one"));
        let digests: Vec<(&str, &str, Option<&str>)> = got
            .assets
            .iter()
            .map(|a| (a.kind.as_str(), a.uri.as_str(), a.sha256.as_deref()))
            .collect();
        assert_eq!(
            digests,
            [
                ("poster", "p.png", Some(one.as_str())),
                ("trailer", "gone.mp4", None)
            ]
        );
        Ok(())
    }

    #[test]
    fn an_unreadable_asset_is_recorded_without_a_digest_and_read_again_once_readable()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // A directory opens but cannot be read as a file.
        std::fs::create_dir(dir.path().join("p.png"))?;
        let title = titled(dir.path(), &[("poster", "p.png")]);
        let cache = DigestCache::default();
        let unreadable = inputs_cached(&title, &cache);
        assert_eq!(unreadable, inputs(&title));
        assert_eq!(unreadable.assets[0].sha256, None);
        assert!(
            cache.files.lock().is_ok_and(|files| files.is_empty()),
            "an unreadable file's marker is not cached"
        );
        let missing = inputs(&titled(dir.path(), &[("poster", "gone.png")]));
        assert_eq!(missing.assets[0].sha256, None);
        // Unreadable and missing are told apart (the URI aside, the markers differ).
        let mut renamed = titled(dir.path(), &[("poster", "p.png")]);
        renamed.assets[0].path = dir.path().join("gone.png");
        assert_ne!(inputs(&renamed).fingerprint, unreadable.fingerprint);
        // The cache kept nothing for it: once it is a readable file, its content counts.
        std::fs::remove_dir(dir.path().join("p.png"))?;
        std::fs::write(dir.path().join("p.png"), b"one")?;
        let readable = inputs_cached(&title, &cache);
        assert_eq!(
            readable.assets[0].sha256.as_deref(),
            Some(hex(&Sha256::digest(b"one")).as_str())
        );
        assert_eq!(readable, inputs(&title));
        Ok(())
    }

    #[test]
    fn the_cache_follows_size_and_time_and_agrees_with_the_plain_fingerprint()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let poster = dir.path().join("p.png");
        std::fs::write(&poster, b"one")?;
        let title = titled(dir.path(), &[("poster", "p.png")]);
        let cache = DigestCache::default();
        assert_eq!(fingerprint_cached(&title, &cache), fingerprint(&title));
        // Same size and time: the cached digest stands (the contents are not read again).
        let stamp = std::fs::metadata(&poster)?.modified()?;
        std::fs::write(&poster, b"two")?;
        std::fs::File::options()
            .write(true)
            .open(&poster)?
            .set_modified(stamp)?;
        assert_ne!(fingerprint_cached(&title, &cache), fingerprint(&title));
        // A new time (or size) reads it again.
        std::fs::File::options()
            .write(true)
            .open(&poster)?
            .set_modified(stamp + std::time::Duration::from_secs(1))?;
        assert_eq!(fingerprint_cached(&title, &cache), fingerprint(&title));
        std::fs::write(&poster, b"three")?;
        assert_eq!(fingerprint_cached(&title, &cache), fingerprint(&title));
        Ok(())
    }

    #[test]
    fn changes_with_fields_and_asset_content_only() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let poster = dir.path().join("p.png");
        std::fs::write(&poster, b"one")?;
        let mut title = Title {
            id: "t".into(),
            name: "T".into(),
            synopsis: "s".into(),
            year: Some(2000),
            language: "en".into(),
            metadata: Default::default(),
            assets: vec![AssetRef {
                kind: "poster".into(),
                uri: "p.png".into(),
                path: poster.clone(),
            }],
        };
        let first = fingerprint(&title);
        assert!(first.starts_with("sha256:") && first.len() == 71);
        assert_eq!(fingerprint(&title), first);
        std::fs::write(&poster, b"two")?;
        let changed_file = fingerprint(&title);
        assert_ne!(changed_file, first);
        std::fs::remove_file(&poster)?;
        assert_ne!(fingerprint(&title), changed_file);
        title.synopsis = "other".into();
        assert_ne!(fingerprint(&title), first);
        Ok(())
    }
}
