//! Which contract a component was built against, and whether this host can run it.
//!
//! A component names the contract in its imports (`tessera:plugin/models@1.0.0`). The host keeps
//! one linker per supported major ([`SUPPORTED`]); wasmtime links a plugin built against an older
//! minor of a major to the host's newer one. A plugin built against a major the host does not
//! know, or a minor newer than the host's, is refused here with a message that says which
//! versions the host supports, before any linking error could confuse its author.

use super::bindings::{v0, v1};
use semver::Version;

/// The `tessera:plugin` package prefix of import names.
pub const PACKAGE: &str = "tessera:plugin/";

/// The contract lines this host implements, newest first.
pub const SUPPORTED: [Contract; 2] = [Contract::V1, Contract::V0];

/// A contract line the host implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `tessera:plugin@0.1.x`.
    V0,
    /// `tessera:plugin@1.x`.
    V1,
}

impl Contract {
    /// The newest version of this line the host implements.
    pub fn version(self) -> Version {
        match self {
            Contract::V0 => v0::VERSION,
            Contract::V1 => v1::VERSION,
        }
    }

    /// The line a plugin's version belongs to, if the host implements it. Semver's rule, as
    /// wasmtime applies it to imports: the same major, and for 0.x the same minor.
    fn line_of(version: &Version) -> Option<Contract> {
        SUPPORTED.into_iter().find(|c| {
            let host = c.version();
            host.major == version.major && (host.major != 0 || host.minor == version.minor)
        })
    }
}

/// "0.1.x and 1.x (up to 1.0.0)": what error messages tell plugin authors.
pub fn supported_description() -> String {
    SUPPORTED
        .iter()
        .rev()
        .map(|c| {
            let v = c.version();
            if v.major == 0 {
                format!("{}.{}.x (up to {v})", v.major, v.minor)
            } else {
                format!("{}.x (up to {v})", v.major)
            }
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The contract versions in a component's import names (`tessera:plugin/<iface>@<version>`),
/// sorted and without duplicates. An unparsable version is returned as an error.
pub fn versions_in<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<Version>, String> {
    let mut out = Vec::new();
    for name in names {
        let Some(rest) = name.strip_prefix(PACKAGE) else {
            continue;
        };
        let Some((_, version)) = rest.split_once('@') else {
            return Err(format!("import {name:?} names no contract version"));
        };
        let parsed = Version::parse(version)
            .map_err(|e| format!("import {name:?}: version {version:?}: {e}"))?;
        out.push(parsed);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Picks the contract line for a component that imports `versions` of the contract. `None`
/// means the component imports nothing of the contract (a plugin that calls no host function);
/// the caller then tries each supported line in turn.
pub fn select(versions: &[Version]) -> Result<Option<Contract>, String> {
    let Some(newest) = versions.last() else {
        return Ok(None);
    };
    if let Some(first) = versions.first()
        && Contract::line_of(first) != Contract::line_of(newest)
    {
        return Err(format!(
            "the component imports two incompatible contract versions ({first} and {newest})"
        ));
    }
    let Some(line) = Contract::line_of(newest) else {
        return Err(format!(
            "the plugin was built against tessera:plugin@{newest}, a major version this host \
             does not support; it supports {}. Rebuild the plugin against a supported version \
             (PLUGINS.md, \"Versioning\")",
            supported_description()
        ));
    };
    if *newest > line.version() {
        return Err(format!(
            "the plugin was built against tessera:plugin@{newest}, newer than this host's \
             {}; upgrade the host or rebuild the plugin against {}",
            line.version(),
            line.version()
        ));
    }
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn reads_versions_from_import_names() {
        let names = [
            "wasi:io/streams@0.2.6",
            "tessera:plugin/models@1.0.0",
            "tessera:plugin/log@1.0.0",
        ];
        assert_eq!(versions_in(names), Ok(vec![v("1.0.0")]));
        assert!(versions_in(["tessera:plugin/log"]).is_err());
        assert!(versions_in(["tessera:plugin/log@one"]).is_err());
    }

    #[test]
    fn selects_the_line_or_says_why_not() {
        assert_eq!(select(&[v("1.0.0")]), Ok(Some(Contract::V1)));
        assert_eq!(select(&[v("0.1.0")]), Ok(Some(Contract::V0)));
        assert_eq!(select(&[]), Ok(None));
        let major = select(&[v("2.0.0")]).err().unwrap_or_default();
        assert!(major.contains("2.0.0") && major.contains("0.1.x") && major.contains("1.x"));
        let newer = select(&[v("1.7.0")]).err().unwrap_or_default();
        assert!(newer.contains("newer than this host's 1.1.0"), "{newer}");
        assert!(select(&[v("0.2.0")]).is_err(), "0.2 is its own major line");
        assert!(select(&[v("0.1.0"), v("1.0.0")]).is_err());
    }
}
