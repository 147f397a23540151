//! Catalogs: titles in JSON Lines, one title per line.
//!
//! Reading is strict about structure and generous about the rest: a malformed line or a duplicate
//! id is an error naming the file and line, while missing optional fields just stay empty.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One title of a catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Title {
    /// Stable, unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Synopsis; may be empty.
    #[serde(default)]
    pub synopsis: String,
    /// Release year.
    #[serde(default)]
    pub year: Option<u16>,
    /// BCP 47 language; may be empty.
    #[serde(default)]
    pub language: String,
    /// Free-form metadata (sorted by key).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Media assets.
    #[serde(default)]
    pub assets: Vec<AssetRef>,
}

/// A title's media asset.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRef {
    /// `poster`, `trailer`, `subtitles`, ...
    pub kind: String,
    /// Catalog-relative path or `file:` URI.
    pub uri: String,
    /// The file `uri` names, resolved against the catalog's directory when the catalog is read.
    #[serde(skip)]
    pub path: PathBuf,
}

impl AssetRef {
    /// Resolves `uri` against `base` (the catalog's directory): a relative path, an absolute
    /// path or a `file:` URI. Other schemes (http, s3) are refused: assets are local files.
    pub fn resolve(uri: &str, base: &Path) -> Result<PathBuf, String> {
        let path = if let Some(rest) = uri.strip_prefix("file://") {
            PathBuf::from(rest)
        } else if let Some(rest) = uri.strip_prefix("file:") {
            PathBuf::from(rest)
        } else if uri.contains("://") {
            return Err(format!(
                "asset uri {uri:?}: only local paths and file: URIs are supported"
            ));
        } else {
            PathBuf::from(uri)
        };
        if uri.is_empty() {
            return Err("an asset has an empty uri".into());
        }
        Ok(if path.is_absolute() {
            path
        } else {
            base.join(path)
        })
    }
}

/// Why a catalog could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The file could not be read.
    #[error("catalog {path}: {source}")]
    Io {
        /// Catalog path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a valid title.
    #[error("catalog {path}, line {line}: {reason}")]
    Line {
        /// Catalog path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Parses a JSON Lines catalog held in memory; `path` names it in errors.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<Title>, CatalogError> {
    let mut titles = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line_error = |reason: String| CatalogError::Line {
            path: path.to_path_buf(),
            line: number,
            reason,
        };
        if line.trim().is_empty() {
            continue;
        }
        let mut title: Title = serde_json::from_str(line).map_err(|e| line_error(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for asset in &mut title.assets {
            asset.path = AssetRef::resolve(&asset.uri, base).map_err(line_error)?;
        }
        if title.id.trim().is_empty() {
            return Err(line_error("the title id is empty".into()));
        }
        if let Some(first) = seen.insert(title.id.clone(), number) {
            return Err(line_error(format!(
                "duplicate title id {:?} (first on line {first})",
                title.id
            )));
        }
        titles.push(title);
    }
    Ok(titles)
}

/// Reads a JSON Lines catalog file.
pub fn read_jsonl(path: &Path) -> Result<Vec<Title>, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_jsonl(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_asset_uris_against_the_catalog_directory() -> Result<(), CatalogError> {
        let line = r#"{"id":"t1","name":"A","assets":[{"kind":"poster","uri":"media/a.png"},{"kind":"trailer","uri":"file:///srv/t.m4a"}]}"#;
        let titles = parse_jsonl(Path::new("/data/catalog.jsonl"), line)?;
        assert_eq!(titles[0].assets[0].path, Path::new("/data/media/a.png"));
        assert_eq!(titles[0].assets[1].path, Path::new("/srv/t.m4a"));
        let remote =
            r#"{"id":"t1","name":"A","assets":[{"kind":"poster","uri":"https://x/a.png"}]}"#;
        let err = parse_jsonl(Path::new("c.jsonl"), remote)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("line 1") && e.contains("file: URIs")));
        Ok(())
    }

    #[test]
    fn parses_titles_and_skips_blank_lines() -> Result<(), CatalogError> {
        let text = "{\"id\":\"a\",\"name\":\"A\",\"year\":1999,\"metadata\":{\"genre\":\"crime\"}}\n\n{\"id\":\"b\",\"name\":\"B\"}\n";
        let titles = parse_jsonl(Path::new("c.jsonl"), text)?;
        assert_eq!(titles.len(), 2);
        assert_eq!(titles[0].year, Some(1999));
        assert_eq!(
            titles[0].metadata.get("genre").map(String::as_str),
            Some("crime")
        );
        assert_eq!(titles[1].synopsis, "");
        Ok(())
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("{\"id\":\"a\",\"name\":\"A\"}\n{not json", "line 2"),
            (
                "{\"id\":\"a\",\"name\":\"A\"}\n{\"id\":\"a\",\"name\":\"B\"}",
                "duplicate title id \"a\" (first on line 1)",
            ),
            ("{\"id\":\"\",\"name\":\"A\"}", "id is empty"),
            ("{\"id\":\"a\",\"name\":\"A\",\"year\":-4}", "line 1"),
            (
                "{\"id\":\"a\",\"name\":\"A\",\"colour\":\"red\"}",
                "unknown field `colour`",
            ),
        ];
        for (text, expected) in cases {
            let msg = parse_jsonl(Path::new("c.jsonl"), text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                msg.contains("c.jsonl") && msg.contains(expected),
                "{text:?} gave {msg:?}"
            );
        }
    }

    #[test]
    fn the_example_catalog_parses() -> Result<(), CatalogError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog.jsonl");
        let titles = read_jsonl(&path)?;
        assert!(titles.len() >= 12, "{} titles", titles.len());
        Ok(())
    }
}
