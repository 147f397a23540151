//! The tag taxonomy a content team governs tags with: canonical names, a hierarchy, aliases and
//! per-tag confidence thresholds, applied to every title's machine tags at ingest.
//!
//! ```toml
//! strict = false            # true: drop tags the taxonomy does not name
//! [tags.crime]
//! threshold = 0.5           # machine tags below this confidence are dropped
//! aliases = ["criminal"]    # plugin tags named so are renamed to `crime`
//! [tags.heist]
//! parent = "crime"          # a `heist` tag implies `crime` (added, same confidence)
//! ```
//! Keys name a tag by its name (`crime`) or by name and value (`"genre=crime"`); the more
//! specific key wins.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use tessera_indexes::Tag;

/// Why a taxonomy could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("taxonomy {path}: {reason}")]
pub struct TaxonomyError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    threshold: f32,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    parent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    strict: bool,
    #[serde(default)]
    tags: BTreeMap<String, Entry>,
}

/// A loaded, checked taxonomy.
#[derive(Debug, Clone, Default)]
pub struct Taxonomy {
    strict: bool,
    tags: BTreeMap<String, Entry>,
    /// Alias → canonical key.
    aliases: HashMap<String, String>,
    /// Identifies this taxonomy's content: part of every title's input fingerprint, so that
    /// editing the taxonomy makes the next run redo the titles.
    digest: String,
}

/// A tag's key: `name=value`, or `name` for flag-like tags.
fn key(name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{name}={v}"),
        None => name.to_string(),
    }
}

/// A key back into (name, value).
fn split(key: &str) -> (String, Option<String>) {
    match key.split_once('=') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (key.to_string(), None),
    }
}

impl Taxonomy {
    /// Parses and checks a taxonomy (thresholds in 0..=1, parents and aliases that exist and do
    /// not collide, no cycles); `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TaxonomyError> {
        let bad = |reason: String| TaxonomyError {
            path: path.to_path_buf(),
            reason,
        };
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut aliases = HashMap::new();
        for (name, entry) in &file.tags {
            if !(0.0..=1.0).contains(&entry.threshold) {
                return Err(bad(format!(
                    "tag {name:?}: threshold {} is outside 0..=1",
                    entry.threshold
                )));
            }
            if let Some(parent) = &entry.parent
                && !file.tags.contains_key(parent)
            {
                return Err(bad(format!(
                    "tag {name:?}: parent {parent:?} is not in the taxonomy"
                )));
            }
            for alias in &entry.aliases {
                if file.tags.contains_key(alias) {
                    return Err(bad(format!("alias {alias:?} of {name:?} is itself a tag")));
                }
                if let Some(other) = aliases.insert(alias.clone(), name.clone()) {
                    return Err(bad(format!(
                        "alias {alias:?} belongs to both {other:?} and {name:?}"
                    )));
                }
            }
        }
        for name in file.tags.keys() {
            let mut seen = HashSet::new();
            let mut at = Some(name.clone());
            while let Some(tag) = at {
                if !seen.insert(tag.clone()) {
                    return Err(bad(format!("tag {name:?}: its parents form a cycle")));
                }
                at = file.tags.get(&tag).and_then(|e| e.parent.clone());
            }
        }
        use sha2::Digest as _;
        let digest: String = sha2::Sha256::digest(text.as_bytes())
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Taxonomy {
            strict: file.strict,
            tags: file.tags,
            aliases,
            digest,
        })
    }

    /// Reads a taxonomy file.
    pub fn read(path: &Path) -> Result<Self, TaxonomyError> {
        let text = std::fs::read_to_string(path).map_err(|e| TaxonomyError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Identifies the taxonomy's content (a prefix of its sha256).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The canonical key a tag maps to, if the taxonomy names it (by value key first).
    fn canonical(&self, tag: &Tag) -> Option<String> {
        let specific = key(&tag.name, tag.value.as_deref());
        [specific, tag.name.clone()].into_iter().find_map(|k| {
            if self.tags.contains_key(&k) {
                Some(k)
            } else {
                self.aliases.get(&k).cloned()
            }
        })
    }

    /// The taxonomy's name and value for a tag a person names (an alias becomes its canonical
    /// tag, the way machine tags are renamed), or `None` when the tag is not an alias.
    pub fn rename(&self, name: &str, value: Option<&str>) -> Option<(String, Option<String>)> {
        let probe = Tag {
            name: name.to_string(),
            value: value.map(str::to_string),
            confidence: 1.0,
            plugin: String::new(),
            plugin_version: String::new(),
            span: None,
            evidence: None,
            run: None,
            models: Vec::new(),
        };
        let canonical = self.canonical(&probe)?;
        let (new_name, canonical_value) = split(&canonical);
        let new_value = if canonical.contains('=') || value.is_none() {
            canonical_value
        } else {
            value.map(str::to_string)
        };
        (new_name != name || new_value.as_deref() != value).then_some((new_name, new_value))
    }

    /// Applies the taxonomy to one title's machine tags: renames aliases, drops tags below
    /// their threshold (and, when strict, tags it does not name), adds implied ancestors.
    pub fn apply(&self, tags: Vec<Tag>) -> Vec<Tag> {
        let mut out: Vec<Tag> = Vec::with_capacity(tags.len());
        for mut tag in tags {
            match self.canonical(&tag) {
                Some(canonical) => {
                    let entry = self.tags.get(&canonical).cloned().unwrap_or_default();
                    if tag.confidence < entry.threshold {
                        continue;
                    }
                    let known_by_name = !canonical.contains('=');
                    let (name, value) = split(&canonical);
                    tag.name = name;
                    if !known_by_name || tag.value.is_none() {
                        tag.value = value;
                    }
                    let mut parent = entry.parent.clone();
                    let child = key(&tag.name, tag.value.as_deref());
                    out.push(tag.clone());
                    while let Some(p) = parent {
                        let (name, value) = split(&p);
                        out.push(Tag {
                            name,
                            value,
                            evidence: Some(format!("implied by {child}")),
                            ..tag.clone()
                        });
                        parent = self.tags.get(&p).and_then(|e| e.parent.clone());
                    }
                }
                None if self.strict => {}
                None => out.push(tag),
            }
        }
        // One entry per (name, value, plugin, span): the most confident wins. Tags on different
        // spans (audio segments) stay apart.
        type Key = (String, Option<String>, String, Option<(u64, u64)>);
        let mut best: BTreeMap<Key, Tag> = BTreeMap::new();
        for tag in out {
            let span = tag.span.map(|(a, b)| (a.to_bits(), b.to_bits()));
            let k = (
                tag.name.clone(),
                tag.value.clone(),
                tag.plugin.clone(),
                span,
            );
            match best.get(&k) {
                Some(b) if b.confidence >= tag.confidence => {}
                _ => {
                    best.insert(k, tag);
                }
            }
        }
        best.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, value: Option<&str>, confidence: f32) -> Tag {
        Tag {
            name: name.into(),
            value: value.map(str::to_string),
            confidence,
            plugin: "p".into(),
            plugin_version: "1".into(),
            span: None,
            evidence: None,
            run: None,
            models: Vec::new(),
        }
    }

    const TOML: &str = r#"
[tags.crime]
threshold = 0.5
aliases = ["criminal"]
[tags.heist]
parent = "crime"
threshold = 0.6
[tags."genre=sci-fi"]
aliases = ["genre=science-fiction"]
"#;

    #[test]
    fn a_persons_tag_is_renamed_like_a_machine_tag() -> Result<(), TaxonomyError> {
        let taxonomy = Taxonomy::parse(Path::new("t.toml"), TOML)?;
        assert_eq!(
            taxonomy.rename("criminal", None),
            Some(("crime".into(), None))
        );
        assert_eq!(
            taxonomy.rename("criminal", Some("yes")),
            Some(("crime".into(), Some("yes".into())))
        );
        assert_eq!(
            taxonomy.rename("genre", Some("science-fiction")),
            Some(("genre".into(), Some("sci-fi".into())))
        );
        assert_eq!(taxonomy.rename("crime", None), None);
        assert_eq!(taxonomy.rename("genre", Some("sci-fi")), None);
        assert_eq!(taxonomy.rename("mood", Some("dark")), None);
        Ok(())
    }

    #[test]
    fn renames_thresholds_and_implies_parents() -> Result<(), TaxonomyError> {
        let taxonomy = Taxonomy::parse(Path::new("t.toml"), TOML)?;
        let out = taxonomy.apply(vec![
            tag("criminal", None, 0.7),
            tag("heist", None, 0.55),
            tag("genre", Some("science-fiction"), 0.9),
            tag("mood", Some("dark"), 0.3),
        ]);
        let got: Vec<(String, Option<String>, f32, Option<String>)> = out
            .into_iter()
            .map(|t| (t.name, t.value, t.confidence, t.evidence))
            .collect();
        assert_eq!(
            got,
            [
                ("crime".into(), None, 0.7, None),
                ("genre".into(), Some("sci-fi".into()), 0.9, None),
                ("mood".into(), Some("dark".into()), 0.3, None),
            ],
            "heist at 0.55 is under its 0.6 threshold; an unknown tag passes (not strict)"
        );
        let implied = taxonomy.apply(vec![tag("heist", None, 0.8)]);
        assert_eq!(implied.len(), 2);
        assert_eq!(implied[0].name, "crime");
        assert_eq!(implied[0].evidence.as_deref(), Some("implied by heist"));
        // Tags on different spans (audio segments) are not merged.
        let mut a = tag("heist", None, 0.9);
        a.span = Some((0.0, 30.0));
        let mut b = tag("heist", None, 0.8);
        b.span = Some((30.0, 60.0));
        let spans = taxonomy.apply(vec![a, b]);
        assert_eq!(spans.iter().filter(|t| t.name == "heist").count(), 2);
        assert_ne!(
            Taxonomy::parse(Path::new("t.toml"), TOML)?.digest(),
            Taxonomy::parse(Path::new("t.toml"), &format!("{TOML}\n[tags.x]\n"))?.digest()
        );
        let strict = Taxonomy::parse(Path::new("t.toml"), &format!("strict = true\n{TOML}"))?;
        assert!(strict.apply(vec![tag("mood", None, 0.9)]).is_empty());
        Ok(())
    }

    #[test]
    fn refuses_inconsistent_taxonomies() {
        for (text, needle) in [
            ("[tags.a]\nthreshold = 2.0", "outside 0..=1"),
            ("[tags.a]\nparent = \"b\"", "parent \"b\" is not"),
            (
                "[tags.a]\nparent = \"b\"\n[tags.b]\nparent = \"a\"",
                "cycle",
            ),
            ("[tags.a]\naliases = [\"b\"]\n[tags.b]", "is itself a tag"),
            (
                "[tags.a]\naliases = [\"x\"]\n[tags.b]\naliases = [\"x\"]",
                "both",
            ),
            ("[tags.a]\ncolour = 1", "unknown field"),
        ] {
            let err = Taxonomy::parse(Path::new("t.toml"), text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("t.toml") && err.contains(needle),
                "{text:?}: {err}"
            );
        }
    }
}
