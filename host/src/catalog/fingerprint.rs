//! A title's input fingerprint: what a run read for it — its catalog fields and the content of
//! each asset file. Equal fingerprints (and current plugin and model versions) mean a re-run
//! would produce the same outputs, so ingest skips the title.

use super::Title;
use sha2::{Digest, Sha256};
use std::io::Read;

/// `sha256:` + hex of the title's fields and its assets' kinds, URIs and content (a missing or
/// unreadable file hashes as such, so the fingerprint changes once the file appears).
pub fn fingerprint(title: &Title) -> String {
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
    for asset in &title.assets {
        field(asset.kind.as_bytes());
        field(asset.uri.as_bytes());
        field(&file_digest(&asset.path));
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn file_digest(path: &std::path::Path) -> Vec<u8> {
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
