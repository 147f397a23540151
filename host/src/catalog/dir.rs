//! A directory catalog: one folder per title, holding `title.json` (the title's fields, as in a
//! JSON Lines line; `assets` optional, relative to the folder) and its media files. Files the
//! JSON does not list become assets by extension (`poster.*` is the poster); files of other
//! types are reported. Folders are read in name order.

use super::{AssetRef, Builder, Catalog, CatalogError, ProblemKind, Title};
use std::path::Path;

const IMAGE: [&str; 7] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff"];
const AUDIO: [&str; 6] = ["wav", "flac", "mp3", "ogg", "m4a", "aac"];
const VIDEO: [&str; 3] = ["mp4", "mkv", "mov"];

/// The asset kind of a media file from its name, or `None` for files that are not media.
fn kind_of(file: &Path) -> Option<&'static str> {
    let ext = file.extension()?.to_string_lossy().to_ascii_lowercase();
    let stem = file.file_stem()?.to_string_lossy().to_ascii_lowercase();
    if IMAGE.contains(&ext.as_str()) {
        Some(if stem == "poster" { "poster" } else { "image" })
    } else if AUDIO.contains(&ext.as_str()) {
        Some("audio")
    } else if VIDEO.contains(&ext.as_str()) {
        Some("trailer")
    } else if ext == "srt" || ext == "vtt" {
        Some("subtitles")
    } else if ext == "txt" {
        Some("text")
    } else {
        None
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>, std::io::Error> {
    let mut entries = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

pub(super) fn load(root: &Path) -> Result<Catalog, CatalogError> {
    let io = |source| CatalogError::Io {
        path: root.to_path_buf(),
        source,
    };
    let mut builder = Builder::new();
    let folders: Vec<_> = sorted_entries(root)
        .map_err(io)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if folders.is_empty() {
        return Err(CatalogError::Format {
            path: root.to_path_buf(),
            reason: "a directory catalog holds one folder per title; this has none".into(),
        });
    }
    for folder in folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let at = format!("folder {name}");
        let json = folder.join("title.json");
        let text = match std::fs::read_to_string(&json) {
            Ok(text) => text,
            Err(e) => {
                let message = format!("{}: {e}", json.display());
                let kind = if e.kind() == std::io::ErrorKind::NotFound {
                    ProblemKind::Malformed
                } else {
                    ProblemKind::Unreadable
                };
                builder.problem(&at, None, None, kind, message);
                continue;
            }
        };
        let mut title: Title = match serde_json::from_str(&text) {
            Ok(title) => title,
            Err(e) => {
                let message = format!("title.json: {e}");
                builder.problem(&at, None, None, ProblemKind::Malformed, message);
                continue;
            }
        };
        // One folder that cannot be listed costs its title, not the whole catalog.
        let files = match sorted_entries(&folder) {
            Ok(files) => files,
            Err(e) => {
                let message = format!("cannot list {}: {e}", folder.display());
                let id = title.id.clone();
                builder.problem(&at, Some(&id), None, ProblemKind::Unreadable, message);
                continue;
            }
        };
        for file in files.iter().filter(|f| f.is_file()) {
            let file_name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if file_name == "title.json" || title.assets.iter().any(|a| a.uri == file_name) {
                continue;
            }
            match kind_of(file) {
                Some(kind) => title.assets.push(AssetRef {
                    kind: kind.into(),
                    uri: file_name,
                    path: Default::default(),
                }),
                None => {
                    let message = format!("{file_name}: not a media file Tessera reads");
                    builder.problem(
                        &at,
                        Some(&title.id.clone()),
                        Some(&file_name),
                        ProblemKind::UnknownAssetKind,
                        message,
                    );
                }
            }
        }
        builder.title(&at, title, &folder);
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_folder_per_title_with_media_found_by_extension() -> Result<(), Box<dyn std::error::Error>>
    {
        let root = tempfile::tempdir()?;
        let a = root.path().join("a");
        std::fs::create_dir(&a)?;
        std::fs::write(
            a.join("title.json"),
            r#"{"id":"tt-a","name":"A","year":2001}"#,
        )?;
        std::fs::write(a.join("poster.jpg"), b"x")?;
        std::fs::write(a.join("theme.flac"), b"x")?;
        std::fs::write(a.join("notes.docx"), b"x")?;
        let b = root.path().join("b");
        std::fs::create_dir(&b)?;
        std::fs::write(b.join("title.json"), "{not json")?;
        let catalog = load(root.path())?;
        assert_eq!(catalog.titles.len(), 1);
        let kinds: Vec<(&str, &str)> = catalog.titles[0]
            .assets
            .iter()
            .map(|x| (x.kind.as_str(), x.uri.as_str()))
            .collect();
        assert_eq!(kinds, [("poster", "poster.jpg"), ("audio", "theme.flac")]);
        assert_eq!(catalog.titles[0].assets[0].path, a.join("poster.jpg"));
        let problems: Vec<(&str, ProblemKind)> = catalog
            .problems
            .iter()
            .map(|p| (p.at.as_str(), p.kind))
            .collect();
        assert_eq!(
            problems,
            [
                ("folder a", ProblemKind::UnknownAssetKind),
                ("folder b", ProblemKind::Malformed),
            ]
        );
        Ok(())
    }
}
