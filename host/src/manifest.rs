//! Plugin manifests: the TOML file an operator keeps beside each `.wasm` (`tagger.wasm` →
//! `tagger.toml`), saying what the plugin is, what it may do and how it is configured:
//!
//! ```toml
//! name = "poster-tagger"
//! version = "1.2.0"
//! contract = "1.1.0"            # the tessera:plugin version the component was built against
//! sha256 = "9f86d0…"            # of the component file
//! models = ["clip", "text"]     # the models it may call; any other is denied
//!
//! [limits]
//! deadline-ms = 5000            # per call, host calls included
//! memory-mib = 128              # at most the host's --plugin-memory-mib
//!
//! [config]                      # what the plugin reads through `config`
//! labels = "space,sea"
//! ```
//!
//! Loading checks the component's sha256 before compiling it, and after `describe` that the
//! plugin's name, version and contract are the manifest's: a manifest never silently applies to
//! a different build.

use crate::runtime::{Plugin, PluginSettings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A plugin's manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// The plugin's name, as its `describe` says.
    pub name: String,
    /// The plugin's version, as its `describe` says.
    pub version: String,
    /// The contract version the component targets (`1.0.0`).
    pub contract: String,
    /// sha256 of the component file, lowercase hex.
    pub sha256: String,
    /// The component file, relative to the manifest; default: the manifest's name with `.wasm`.
    pub component: Option<String>,
    /// Models the plugin may call; an empty list allows none.
    pub models: Vec<String>,
    /// Per-plugin limits; absent ones are the host's.
    #[serde(default)]
    pub limits: ManifestLimits,
    /// Key/values the plugin reads through the `config` interface.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// A manifest's `[limits]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ManifestLimits {
    /// Wall-clock deadline per call, in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Linear memory cap, in MiB (at most the host's).
    pub memory_mib: Option<usize>,
    /// Fuel per call (an instruction budget, independent of machine load).
    pub fuel: Option<u64>,
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest or its component could not be read.
    #[error("plugin manifest {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The manifest is not valid TOML of the expected shape.
    #[error("plugin manifest {path}: {reason}")]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The component is not the one the manifest describes.
    #[error(
        "plugin manifest {path}: {component} has sha256 {actual}, the manifest says {expected}; \
         the component changed since the manifest was written"
    )]
    Checksum {
        /// The manifest.
        path: PathBuf,
        /// The component file.
        component: PathBuf,
        /// The manifest's sha256.
        expected: String,
        /// The file's.
        actual: String,
    },
    /// The loaded plugin disagrees with its manifest.
    #[error("plugin manifest {path}: it says {field} {manifest:?}, the plugin says {plugin:?}")]
    Mismatch {
        /// The manifest.
        path: PathBuf,
        /// Which field.
        field: &'static str,
        /// The manifest's value.
        manifest: String,
        /// The plugin's.
        plugin: String,
    },
}

/// The manifest path for a component: `x.wasm` → `x.toml`.
pub fn path_for(component: &Path) -> PathBuf {
    component.with_extension("toml")
}

pub use tessera_models::manifest::{hex, sha256_hex};

impl PluginManifest {
    /// Reads and checks a manifest file.
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses a manifest held in memory; `path` names it in errors and anchors `component`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let manifest: PluginManifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if manifest.name.trim().is_empty() {
            return Err(invalid("`name` is empty".into()));
        }
        if semver::Version::parse(&manifest.contract).is_err() {
            return Err(invalid(format!(
                "`contract` {:?} is not a version like \"1.0.0\"",
                manifest.contract
            )));
        }
        let hex = manifest.sha256.len() == 64
            && manifest
                .sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !hex {
            return Err(invalid(format!(
                "`sha256` {:?} is not 64 lowercase hex digits",
                manifest.sha256
            )));
        }
        if manifest.limits.deadline_ms == Some(0)
            || manifest.limits.memory_mib == Some(0)
            || manifest.limits.fuel == Some(0)
        {
            return Err(invalid("limits must be positive".into()));
        }
        Ok(manifest)
    }

    /// The component file this manifest describes.
    pub fn component_path(&self, manifest_path: &Path) -> PathBuf {
        match &self.component {
            Some(file) => manifest_path.parent().unwrap_or(Path::new(".")).join(file),
            None => manifest_path.with_extension("wasm"),
        }
    }

    /// Reads the component and checks its sha256 against the manifest's.
    pub fn read_component(&self, manifest_path: &Path) -> Result<Vec<u8>, ManifestError> {
        let component = self.component_path(manifest_path);
        let bytes = std::fs::read(&component).map_err(|e| ManifestError::Read {
            path: component.clone(),
            reason: e.to_string(),
        })?;
        let actual = sha256_hex(&bytes);
        if actual != self.sha256 {
            return Err(ManifestError::Checksum {
                path: manifest_path.to_path_buf(),
                component,
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// What the host applies to the plugin: allowed models, config and limits.
    pub fn settings(&self) -> PluginSettings {
        PluginSettings {
            allowed_models: Some(self.models.clone()),
            config: self.config.clone(),
            deadline: self.limits.deadline_ms.map(Duration::from_millis),
            memory: self.limits.memory_mib.map(|m| m << 20),
            fuel: self.limits.fuel,
        }
    }

    /// Checks that the loaded plugin is the one the manifest describes.
    pub fn check(&self, manifest_path: &Path, plugin: &Plugin) -> Result<(), ManifestError> {
        let info = plugin.info();
        let contract = info.contract.to_string();
        for (field, manifest, actual) in [
            ("name", &self.name, &info.name),
            ("version", &self.version, &info.version),
            ("contract", &self.contract, &contract),
        ] {
            if manifest != actual {
                return Err(ManifestError::Mismatch {
                    path: manifest_path.to_path_buf(),
                    field,
                    manifest: manifest.clone(),
                    plugin: actual.clone(),
                });
            }
        }
        Ok(())
    }

    /// A manifest for a loaded plugin and its component bytes, allowing `models`: what
    /// `tessera plugin manifest` prints for an operator to review and keep.
    pub fn describe(plugin: &Plugin, bytes: &[u8], models: &[String]) -> String {
        let info = plugin.info();
        let list = models
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "name = {:?}\nversion = {:?}\ncontract = \"{}\"\nsha256 = \"{}\"\nmodels = [{list}]\n\n\
             [limits]\n# deadline-ms = 2000\n# memory-mib = 256\n\n[config]\n",
            info.name,
            info.version,
            info.contract,
            sha256_hex(bytes)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "poster-tagger"
version = "1.2.0"
contract = "1.0.0"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
models = ["clip"]

[limits]
deadline-ms = 5000
fuel = 5000000000

[config]
labels = "space,sea"
"#;

    #[test]
    fn parses_a_manifest_into_settings() -> Result<(), ManifestError> {
        let m = PluginManifest::parse(GOOD, Path::new("/p/poster-tagger.toml"))?;
        assert_eq!(
            m.component_path(Path::new("/p/poster-tagger.toml")),
            Path::new("/p/poster-tagger.wasm")
        );
        let s = m.settings();
        assert_eq!(s.allowed_models, Some(vec!["clip".to_string()]));
        assert_eq!(s.fuel, Some(5_000_000_000));
        assert_eq!(s.deadline, Some(Duration::from_secs(5)));
        assert_eq!(s.memory, None);
        assert_eq!(s.config["labels"], "space,sea");
        assert_eq!(
            sha256_hex(b"test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        Ok(())
    }

    #[test]
    fn refuses_bad_manifests_by_field() {
        let bad = |text: String, needle: &str| {
            let err = PluginManifest::parse(&text, Path::new("m.toml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("m.toml") && err.contains(needle),
                "{needle}: {err}"
            );
        };
        bad(
            GOOD.replace("contract = \"1.0.0\"", "contract = \"one\""),
            "contract",
        );
        bad(GOOD.replace("9f86d0", "XYZ"), "sha256");
        bad(GOOD.replace("models = [\"clip\"]", ""), "models");
        bad(
            GOOD.replace("deadline-ms = 5000", "deadline-ms = 0"),
            "positive",
        );
        bad(GOOD.replace("fuel = 5000000000", "fuel = 0"), "positive");
        bad(format!("fuel = 3\n{GOOD}"), "fuel");
    }

    #[test]
    fn a_changed_component_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let manifest_path = dir.path().join("poster-tagger.toml");
        std::fs::write(dir.path().join("poster-tagger.wasm"), b"test")?;
        let m = PluginManifest::parse(GOOD, &manifest_path)?;
        assert_eq!(m.read_component(&manifest_path)?, b"test");
        std::fs::write(dir.path().join("poster-tagger.wasm"), b"tampered")?;
        let err = m
            .read_component(&manifest_path)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.contains("changed since the manifest was written")),
            "tampering must be refused"
        );
        Ok(())
    }
}
