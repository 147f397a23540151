//! CSV: a header row, then one title per row. Columns `id` and `name` are required; `synopsis`,
//! `year` and `language` are optional; a column `asset.KIND` (e.g. `asset.poster`) holds that
//! asset's path or `file:` URI (several separated by `|`); every other column is metadata.
//! Empty cells are absent values.

use super::{AssetRef, Builder, Catalog, CatalogError, ProblemKind, Title};
use std::collections::BTreeMap;
use std::path::Path;

pub(super) fn parse(path: &Path, text: &str) -> Result<Catalog, CatalogError> {
    let format = |reason: String| CatalogError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format(format!("header row: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(id_col), Some(name_col)) = (column("id"), column("name")) else {
        return Err(format(format!(
            "the header row needs `id` and `name` columns; it has: {}",
            headers.join(", ")
        )));
    };
    let (synopsis_col, year_col, language_col) =
        (column("synopsis"), column("year"), column("language"));
    let base = path.parent().unwrap_or(Path::new("."));
    let mut builder = Builder::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                let at = format!("line {line}");
                builder.problem(&at, None, None, ProblemKind::Malformed, e.to_string());
                continue;
            }
        };
        let at = format!("line {}", record.position().map_or(0, |p| p.line()));
        let cell = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|c| !c.is_empty())
        };
        let id = cell(Some(id_col)).unwrap_or_default().to_string();
        let year = match cell(year_col).map(str::parse::<u16>) {
            None => None,
            Some(Ok(y)) => Some(y),
            Some(Err(e)) => {
                let message = format!("year {:?}: {e}", cell(year_col).unwrap_or_default());
                builder.problem(&at, Some(&id), None, ProblemKind::Malformed, message);
                continue;
            }
        };
        let Some(name) = cell(Some(name_col)) else {
            builder.problem(
                &at,
                Some(&id),
                None,
                ProblemKind::Malformed,
                "the name is empty",
            );
            continue;
        };
        let mut metadata = BTreeMap::new();
        let mut assets = Vec::new();
        for (i, header) in headers.iter().enumerate() {
            let known = [
                Some(id_col),
                Some(name_col),
                synopsis_col,
                year_col,
                language_col,
            ];
            if known.contains(&Some(i)) {
                continue;
            }
            let Some(value) = cell(Some(i)) else { continue };
            match header.strip_prefix("asset.") {
                Some(kind) => assets.extend(value.split('|').map(|uri| AssetRef {
                    kind: kind.to_string(),
                    uri: uri.trim().to_string(),
                    path: Default::default(),
                })),
                None => {
                    metadata.insert(header.clone(), value.to_string());
                }
            }
        }
        let title = Title {
            id,
            name: name.to_string(),
            synopsis: cell(synopsis_col).unwrap_or_default().to_string(),
            year,
            language: cell(language_col).unwrap_or_default().to_string(),
            metadata,
            assets,
        };
        builder.title(&at, title, base);
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_titles_assets_and_metadata_and_reports_bad_rows() -> Result<(), CatalogError> {
        let text = "id,name,synopsis,year,language,genre,asset.poster\n\
                    t1,\"Heist, The\",\"A crew, a vault\",2001,en,crime,p1.png|p2.png\n\
                    t2,Second,,,fr,,\n\
                    t3,Bad year,,20x1,,,\n\
                    t1,Dupe,,,,,\n\
                    t4,,,,,,\n";
        let catalog = parse(Path::new("/c/catalog.csv"), text)?;
        let ids: Vec<&str> = catalog.titles.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["t1", "t2"]);
        let t1 = &catalog.titles[0];
        assert_eq!(t1.name, "Heist, The");
        assert_eq!(t1.synopsis, "A crew, a vault");
        assert_eq!(t1.year, Some(2001));
        assert_eq!(t1.metadata.get("genre").map(String::as_str), Some("crime"));
        assert_eq!(t1.assets.len(), 2);
        assert_eq!(t1.assets[1].path, Path::new("/c/p2.png"));
        assert!(catalog.titles[1].metadata.is_empty());
        let problems: Vec<(&str, ProblemKind)> = catalog
            .problems
            .iter()
            .filter(|p| p.kind != ProblemKind::MissingFile)
            .map(|p| (p.at.as_str(), p.kind))
            .collect();
        assert_eq!(
            problems,
            [
                ("line 4", ProblemKind::Malformed),
                ("line 5", ProblemKind::DuplicateId),
                ("line 6", ProblemKind::Malformed),
            ]
        );
        let no_id = parse(Path::new("c.csv"), "name,year\nA,2000\n");
        assert!(
            no_id
                .err()
                .is_some_and(|e| e.to_string().contains("`id` and `name`"))
        );
        Ok(())
    }
}
