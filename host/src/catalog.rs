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
        let title: Title = serde_json::from_str(line).map_err(|e| line_error(e.to_string()))?;
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
