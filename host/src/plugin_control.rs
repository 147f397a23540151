//! Which plugins an operator has switched off: `DATA/plugin-control.toml`, written by
//! `tessera plugin disable|enable` and read by every `tessera ingest` into that data directory —
//! a running `ingest --watch` picks a change up within its poll interval, without a restart.
//!
//! A disabled plugin is still loaded (its vectors stay part of the store's schema, and enabling
//! it again is instant) but runs on no title; a title redone meanwhile keeps what the plugin
//! stored for it before. The file is replaced atomically (temp file and
//! rename), so a watching host never reads half of it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The control file's name inside a data directory.
pub const FILE: &str = "plugin-control.toml";

/// Why the control file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Reading or writing the file failed.
    #[error("plugin control file {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not the TOML this module writes.
    #[error("plugin control file {path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A plugin name that no plugin can have.
    #[error("{name:?} is not a plugin name (1 to 128 bytes, no control characters)")]
    BadName {
        /// The name given.
        name: String,
    },
}

/// The operator's switches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginControl {
    /// Plugins loaded but not run.
    #[serde(default)]
    pub disabled: BTreeSet<String>,
}

impl PluginControl {
    /// The control file of data directory `data`.
    pub fn path(data: &Path) -> PathBuf {
        data.join(FILE)
    }

    /// Reads `data`'s control file; no file means every plugin is enabled.
    pub fn read(data: &Path) -> Result<Self, ControlError> {
        let path = Self::path(data);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(ControlError::Io {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        toml::from_str(&text).map_err(|e| ControlError::Invalid {
            path,
            reason: e.to_string(),
        })
    }

    /// Whether plugin `name` runs.
    pub fn enabled(&self, name: &str) -> bool {
        !self.disabled.contains(name)
    }

    /// The switched-off names that none of `loaded` carries: most likely typos, since the file
    /// is written without knowing which plugins a later ingest loads.
    pub fn unknown_names<'a>(&'a self, loaded: &[&str]) -> Vec<&'a str> {
        self.disabled
            .iter()
            .map(String::as_str)
            .filter(|name| !loaded.contains(name))
            .collect()
    }

    /// One warning line per [`PluginControl::unknown_names`] entry, for a host to print.
    pub fn unknown_warnings(&self, data: &Path, loaded: &[&str]) -> Vec<String> {
        self.unknown_names(loaded)
            .into_iter()
            .map(|name| Self::unknown_warning(data, name, loaded))
            .collect()
    }

    /// The warning for switched-off `name`, which none of `loaded` carries: it names the file,
    /// the loaded plugins and the way out.
    pub fn unknown_warning(data: &Path, name: &str, loaded: &[&str]) -> String {
        format!(
            "warning: {} disables {name:?}, which is none of the loaded plugins ({}); \
             `tessera plugin enable {name:?} --data {}` removes it",
            Self::path(data).display(),
            loaded.join(", "),
            data.display()
        )
    }

    /// Switches `name` on or off in `data`'s control file (created when missing). Returns
    /// whether that changed anything.
    pub fn set(data: &Path, name: &str, enabled: bool) -> Result<bool, ControlError> {
        // As loose as the names plugins may give themselves, short of what cannot be typed.
        let valid = !name.is_empty() && name.len() <= 128 && !name.chars().any(char::is_control);
        if !valid {
            return Err(ControlError::BadName { name: name.into() });
        }
        // Two operators switching plugins at once must not lose either change: the read,
        // change and rewrite happen under an exclusive lock (released when the file closes).
        let lock_path = data.join(format!("{FILE}.lock"));
        let io = |e: std::io::Error| ControlError::Io {
            path: lock_path.clone(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(data).map_err(io)?;
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        lock_file.lock().map_err(io)?;
        let mut control = Self::read(data)?;
        let changed = if enabled {
            control.disabled.remove(name)
        } else {
            control.disabled.insert(name.to_string())
        };
        if changed {
            control.write(data)?;
        }
        Ok(changed)
    }

    fn write(&self, data: &Path) -> Result<(), ControlError> {
        let path = Self::path(data);
        let io = |e: std::io::Error| ControlError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(data).map_err(io)?;
        // JSON string literals are TOML basic strings with the same escapes, except that TOML
        // also wants DEL escaped.
        let names: Vec<String> = self
            .disabled
            .iter()
            .map(|n| {
                serde_json::Value::from(n.as_str())
                    .to_string()
                    .replace('\u{7f}', "\\u007F")
            })
            .collect();
        let body = format!("disabled = [{}]\n", names.join(", "));
        let text = format!(
            "# Plugins that `tessera ingest` loads but does not run. Written by\n\
             # `tessera plugin disable|enable`; a running `tessera ingest --watch` applies a change\n\
             # within its poll interval.\n{body}"
        );
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_round_trip_through_the_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        assert_eq!(PluginControl::read(dir.path())?, PluginControl::default());
        assert!(PluginControl::set(dir.path(), "audio-mood", false)?);
        assert!(!PluginControl::set(dir.path(), "audio-mood", false)?);
        assert!(PluginControl::set(dir.path(), "genre-tagger", false)?);
        let control = PluginControl::read(dir.path())?;
        assert!(!control.enabled("audio-mood") && !control.enabled("genre-tagger"));
        assert!(control.enabled("content-advisory"));
        assert!(PluginControl::set(dir.path(), "audio-mood", true)?);
        let control = PluginControl::read(dir.path())?;
        assert!(control.enabled("audio-mood") && !control.enabled("genre-tagger"));
        assert!(!dir.path().join("plugin-control.toml.tmp").exists());
        Ok(())
    }

    #[test]
    fn names_no_loaded_plugin_has_are_reported() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        PluginControl::set(dir.path(), "genre-taggr", false)?;
        PluginControl::set(dir.path(), "audio-mood", false)?;
        let control = PluginControl::read(dir.path())?;
        let loaded = ["audio-mood", "genre-tagger"];
        assert_eq!(control.unknown_names(&loaded), ["genre-taggr"]);
        let warnings = control.unknown_warnings(dir.path(), &loaded);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("\"genre-taggr\"")
                && warnings[0].contains("plugin-control.toml")
                && warnings[0].contains("(audio-mood, genre-tagger)"),
            "{}",
            warnings[0]
        );
        assert!(PluginControl::default().unknown_names(&loaded).is_empty());
        Ok(())
    }

    #[test]
    fn concurrent_switches_are_all_kept() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::thread::scope(|scope| {
            for i in 0..8 {
                let data = dir.path();
                scope.spawn(move || PluginControl::set(data, &format!("plugin-{i}"), false));
            }
        });
        let control = PluginControl::read(dir.path())?;
        assert_eq!(control.disabled.len(), 8, "{control:?}");
        Ok(())
    }

    #[test]
    fn bad_names_and_bad_files_are_typed_errors() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let long = "x".repeat(129);
        for bad in ["", "a\nb", "tab\there", long.as_str()] {
            assert!(
                matches!(
                    PluginControl::set(dir.path(), bad, false),
                    Err(ControlError::BadName { .. })
                ),
                "{bad:?}"
            );
        }
        // A name edited in by hand survives a rewrite, quotes and all.
        std::fs::write(
            PluginControl::path(dir.path()),
            "disabled = [\"we\\\"ird\"]\n",
        )?;
        PluginControl::set(dir.path(), "x", false)?;
        let control = PluginControl::read(dir.path())?;
        assert!(!control.enabled("we\"ird") && !control.enabled("x"));
        // So does one with a DEL (which TOML wants escaped).
        std::fs::write(
            PluginControl::path(dir.path()),
            "disabled = [\"a\\u007Fb\"]\n",
        )?;
        PluginControl::set(dir.path(), "y", false)?;
        assert!(!PluginControl::read(dir.path())?.enabled("a\u{7f}b"));
        std::fs::write(PluginControl::path(dir.path()), "disabled = 3\n")?;
        let err = PluginControl::read(dir.path())
            .err()
            .ok_or("read a bad file")?;
        assert!(matches!(err, ControlError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("plugin-control.toml"), "{err}");
        std::fs::write(PluginControl::path(dir.path()), "disable = [\"x\"]\n")?;
        assert!(matches!(
            PluginControl::read(dir.path()),
            Err(ControlError::Invalid { .. })
        ));
        Ok(())
    }
}
