//! Catalogs: the titles a content team wants tagged, in one of three layouts —
//! JSON Lines (one title per line), CSV (a header row; asset columns), or a directory with one
//! folder per title (`title.json` beside its media files). [`load`] picks the layout from the
//! path.
//!
//! Loading is tolerant: every entry that cannot be used becomes a [`Problem`] naming where it is
//! (line, row or folder) and why, and the rest of the catalog still loads, so one bad line does
//! not stop a run of a million titles. [`read_jsonl`] is the strict form (first problem is an
//! error) for small, trusted inputs. The catalog format is described by
//! `docs/catalog.schema.json` (JSON Schema).

mod csv;
mod dir;
mod fingerprint;
mod jsonl;

pub use fingerprint::{
    DigestCache, Inputs, fingerprint, fingerprint_cached, inputs, inputs_cached,
};

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
    /// `poster`, `trailer`, `subtitles`, ... (see [`ASSET_KINDS`]).
    pub kind: String,
    /// Catalog-relative path or `file:` URI.
    pub uri: String,
    /// The file `uri` names, resolved against the catalog's directory when the catalog is read.
    #[serde(skip)]
    pub path: PathBuf,
}

/// Asset kinds the catalog format knows; others are reported (the asset is still passed on).
pub const ASSET_KINDS: [&str; 12] = [
    "poster",
    "backdrop",
    "still",
    "thumbnail",
    "image",
    "trailer",
    "clip",
    "audio",
    "soundtrack",
    "subtitles",
    "transcript",
    "text",
];

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

/// Why a catalog could not be read at all.
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
    /// An entry is not a valid title (strict reading only).
    #[error("catalog {path}, {at}: {reason}")]
    Line {
        /// Catalog path.
        path: PathBuf,
        /// Where: `line 3`, `row 4`, `folder tt-0001`.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// The catalog as a whole is unusable (a CSV without an id column, an empty directory).
    #[error("catalog {path}: {reason}")]
    Format {
        /// Catalog path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What is wrong with one catalog entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// Not a valid title (bad JSON, a missing name, a year out of range): the entry is skipped.
    Malformed,
    /// The title id is empty: skipped.
    EmptyId,
    /// A second title with an id already seen: skipped.
    DuplicateId,
    /// An asset URI that is not a local path or `file:` URI: the asset is dropped.
    UnsupportedUri,
    /// An asset kind outside [`ASSET_KINDS`]: reported, the asset is kept.
    UnknownAssetKind,
    /// An asset whose file does not exist: reported, the asset is kept (plugins that read it
    /// fail for that title).
    MissingFile,
    /// A title's folder or `title.json` that cannot be read (permissions, I/O): the title is
    /// skipped, the rest of the catalog is read.
    Unreadable,
}

impl ProblemKind {
    /// Whether the entry's title is left out of the catalog.
    pub fn drops_title(self) -> bool {
        matches!(
            self,
            ProblemKind::Malformed
                | ProblemKind::EmptyId
                | ProblemKind::DuplicateId
                | ProblemKind::Unreadable
        )
    }
}

/// One problem, where it is and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// Where: `line 3`, `row 4`, `folder tt-0001`.
    pub at: String,
    /// The title, when its id could be read.
    pub title: Option<String>,
    /// The asset's URI, for asset problems.
    pub asset: Option<String>,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// Human-readable explanation.
    pub message: String,
}

/// A loaded catalog: the usable titles, in catalog order, and every problem found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Titles to process.
    pub titles: Vec<Title>,
    /// Problems, in catalog order.
    pub problems: Vec<Problem>,
}

/// Collects titles and problems while a layout is parsed: ids seen, asset checks.
pub(crate) struct Builder {
    catalog: Catalog,
    seen: HashMap<String, String>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            catalog: Catalog::default(),
            seen: HashMap::new(),
        }
    }

    pub(crate) fn problem(
        &mut self,
        at: &str,
        title: Option<&str>,
        asset: Option<&str>,
        kind: ProblemKind,
        message: impl Into<String>,
    ) {
        self.catalog.problems.push(Problem {
            at: at.to_string(),
            title: title.map(str::to_string),
            asset: asset.map(str::to_string),
            kind,
            message: message.into(),
        });
    }

    /// Adds a parsed title found `at`, with asset URIs relative to `base`.
    pub(crate) fn title(&mut self, at: &str, mut title: Title, base: &Path) {
        if title.id.trim().is_empty() {
            self.problem(
                at,
                None,
                None,
                ProblemKind::EmptyId,
                "the title id is empty",
            );
            return;
        }
        if let Some(first) = self.seen.get(&title.id) {
            let message = format!("duplicate title id {:?} (first at {first})", title.id);
            self.problem(
                at,
                Some(&title.id.clone()),
                None,
                ProblemKind::DuplicateId,
                message,
            );
            return;
        }
        self.seen.insert(title.id.clone(), at.to_string());
        let mut assets = Vec::with_capacity(title.assets.len());
        for mut asset in std::mem::take(&mut title.assets) {
            match AssetRef::resolve(&asset.uri, base) {
                Ok(path) => asset.path = path,
                Err(reason) => {
                    self.problem(
                        at,
                        Some(&title.id),
                        Some(&asset.uri),
                        ProblemKind::UnsupportedUri,
                        reason,
                    );
                    continue;
                }
            }
            if !ASSET_KINDS.contains(&asset.kind.as_str()) {
                let message = format!(
                    "unknown asset kind {:?} (known: {})",
                    asset.kind,
                    ASSET_KINDS.join(", ")
                );
                self.problem(
                    at,
                    Some(&title.id),
                    Some(&asset.uri),
                    ProblemKind::UnknownAssetKind,
                    message,
                );
            }
            if !asset.path.is_file() {
                let message = format!("asset file {} does not exist", asset.path.display());
                self.problem(
                    at,
                    Some(&title.id),
                    Some(&asset.uri),
                    ProblemKind::MissingFile,
                    message,
                );
            }
            assets.push(asset);
        }
        title.assets = assets;
        self.catalog.titles.push(title);
    }

    pub(crate) fn finish(self) -> Catalog {
        self.catalog
    }
}

/// Loads a catalog: a directory (one folder per title), a `.csv` file, or JSON Lines.
pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
    if path.is_dir() {
        return dir::load(path);
    }
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        csv::parse(path, &text)
    } else {
        Ok(jsonl::parse(path, &text))
    }
}

/// Parses a JSON Lines catalog held in memory, strictly: the first problem that drops a title
/// (or an unsupported asset URI) is an error. `path` names it in errors.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<Title>, CatalogError> {
    strict(path, jsonl::parse(path, text))
}

/// Reads a JSON Lines catalog file strictly (see [`parse_jsonl`]).
pub fn read_jsonl(path: &Path) -> Result<Vec<Title>, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_jsonl(path, &text)
}

fn strict(path: &Path, catalog: Catalog) -> Result<Vec<Title>, CatalogError> {
    let fatal = catalog
        .problems
        .into_iter()
        .find(|p| p.kind.drops_title() || p.kind == ProblemKind::UnsupportedUri);
    match fatal {
        Some(p) => Err(CatalogError::Line {
            path: path.to_path_buf(),
            at: p.at,
            reason: p.message,
        }),
        None => Ok(catalog.titles),
    }
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
                "duplicate title id \"a\" (first at line 1)",
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
    fn tolerant_loading_reports_every_problem_and_keeps_the_rest() -> Result<(), CatalogError> {
        let dir = tempfile::tempdir().map_err(|source| CatalogError::Io {
            path: PathBuf::from("tmp"),
            source,
        })?;
        std::fs::write(dir.path().join("p.png"), b"x").map_err(|source| CatalogError::Io {
            path: PathBuf::from("p.png"),
            source,
        })?;
        let text = [
            r#"{"id":"a","name":"A","assets":[{"kind":"poster","uri":"p.png"}]}"#,
            "{broken",
            r#"{"id":"a","name":"again"}"#,
            r#"{"id":"b","name":"B","assets":[{"kind":"teaser","uri":"missing.mp4"},{"kind":"poster","uri":"s3://x/y.png"}]}"#,
            r#"{"id":"","name":"no id"}"#,
        ]
        .join("\n");
        let path = dir.path().join("c.jsonl");
        std::fs::write(&path, text).map_err(|source| CatalogError::Io {
            path: path.clone(),
            source,
        })?;
        let catalog = load(&path)?;
        let ids: Vec<&str> = catalog.titles.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(catalog.titles[1].assets.len(), 1, "the s3 asset is dropped");
        let found: Vec<(&str, ProblemKind)> = catalog
            .problems
            .iter()
            .map(|p| (p.at.as_str(), p.kind))
            .collect();
        assert_eq!(
            found,
            [
                ("line 2", ProblemKind::Malformed),
                ("line 3", ProblemKind::DuplicateId),
                ("line 4", ProblemKind::UnknownAssetKind),
                ("line 4", ProblemKind::MissingFile),
                ("line 4", ProblemKind::UnsupportedUri),
                ("line 5", ProblemKind::EmptyId),
            ]
        );
        Ok(())
    }

    /// docs/catalog.schema.json describes exactly what the reader accepts: the same fields,
    /// the same required ones, the same asset kinds.
    #[test]
    fn the_json_schema_matches_the_reader() -> Result<(), Box<dyn std::error::Error>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/catalog.schema.json");
        let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            k.sort();
            k
        };
        assert_eq!(
            keys(&schema["properties"]),
            [
                "assets", "id", "language", "metadata", "name", "synopsis", "year"
            ]
        );
        assert_eq!(schema["required"], serde_json::json!(["id", "name"]));
        let asset = &schema["properties"]["assets"]["items"];
        assert_eq!(keys(&asset["properties"]), ["kind", "uri"]);
        assert_eq!(
            asset["properties"]["kind"]["enum"],
            serde_json::json!(ASSET_KINDS)
        );
        // Every field the schema lists parses; one it does not is refused.
        let full = r#"{"id":"a","name":"A","synopsis":"s","year":2001,"language":"en","metadata":{"k":"v"},"assets":[{"kind":"poster","uri":"p.png"}]}"#;
        assert!(serde_json::from_str::<Title>(full).is_ok());
        assert!(serde_json::from_str::<Title>(r#"{"id":"a","name":"A","rating":5}"#).is_err());
        Ok(())
    }

    #[test]
    fn the_example_catalog_parses() -> Result<(), CatalogError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog.jsonl");
        let titles = read_jsonl(&path)?;
        assert!(titles.len() >= 12, "{} titles", titles.len());
        Ok(())
    }
}
