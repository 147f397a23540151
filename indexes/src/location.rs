//! Where a store lives — a directory (embedded qdrant-edge) or a collection on a Qdrant server —
//! written as one string, so every command takes the same `--store` value.

use crate::{EdgeStore, EntityStore, IndexError, Schema, ServerConfig, ServerStore};
use std::path::PathBuf;
use std::sync::Arc;

/// A store's place.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    /// An embedded store in this directory.
    Edge(PathBuf),
    /// A collection on a Qdrant server or cluster.
    Server(ServerConfig),
}

fn invalid(spec: &str, reason: impl std::fmt::Display) -> IndexError {
    IndexError::Schema {
        path: PathBuf::from(spec),
        reason: format!("not a store location: {reason}"),
    }
}

impl StoreLocation {
    /// Reads a location: `http://HOST:PORT[/COLLECTION][?shards=N&replication=N&write_consistency=N]`
    /// (or `https://`) names a collection on a Qdrant server's gRPC port (collection `titles`
    /// by default; the options apply when the collection is created); anything else is a
    /// directory.
    pub fn parse(spec: &str) -> Result<Self, IndexError> {
        let Some(rest) = spec
            .strip_prefix("http://")
            .or_else(|| spec.strip_prefix("https://"))
        else {
            if spec.is_empty() {
                return Err(invalid(spec, "empty"));
            }
            // A mistyped scheme must not quietly become a directory named `grpc:`.
            if let Some((scheme, _)) = spec.split_once("://") {
                return Err(invalid(
                    spec,
                    format!(
                        "scheme {scheme:?}: a server is http:// or https:// (its gRPC port), anything else a directory path"
                    ),
                ));
            }
            return Ok(StoreLocation::Edge(PathBuf::from(spec)));
        };
        let scheme_len = spec.len() - rest.len();
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, collection) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(invalid(spec, "no server host"));
        }
        let mut config = ServerConfig::new(&spec[..scheme_len + host.len()]);
        let collection = collection.trim_end_matches('/');
        if !collection.is_empty() {
            if collection.len() > 255
                || !collection
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(invalid(
                    spec,
                    format!(
                        "collection name {collection:?} must be 1..=255 letters, digits, '_' or '-'"
                    ),
                ));
            }
            config.collection = collection.to_string();
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid(spec, format!("option {pair:?} has no value")))?;
            let field = match key {
                "shards" => &mut config.shard_number,
                "replication" => &mut config.replication_factor,
                "write_consistency" => &mut config.write_consistency_factor,
                _ => {
                    return Err(invalid(
                        spec,
                        format!("unknown option {key:?} (shards, replication, write_consistency)"),
                    ));
                }
            };
            *field = Some(
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        invalid(
                            spec,
                            format!("option {key:?} must be a positive integer, got {value:?}"),
                        )
                    })?,
            );
        }
        Ok(StoreLocation::Server(config))
    }

    /// Opens the store, creating it with `schema` if it does not exist.
    pub fn open(&self, schema: Schema) -> Result<Arc<dyn EntityStore>, IndexError> {
        Ok(match self {
            StoreLocation::Edge(dir) => Arc::new(EdgeStore::open(dir, schema)?),
            StoreLocation::Server(config) => Arc::new(ServerStore::open(config.clone(), schema)?),
        })
    }

    /// Opens an existing store with the schema it was created with.
    pub fn open_existing(&self) -> Result<Arc<dyn EntityStore>, IndexError> {
        Ok(match self {
            StoreLocation::Edge(dir) => Arc::new(EdgeStore::open_existing(dir)?),
            StoreLocation::Server(config) => Arc::new(ServerStore::open_existing(config.clone())?),
        })
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Edge(dir) => write!(f, "{}", dir.display()),
            StoreLocation::Server(config) => write!(f, "{}/{}", config.url, config.collection),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_server_collections_and_anything_else_a_directory() {
        let loc = |s: &str| StoreLocation::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(loc("data/store"), StoreLocation::Edge("data/store".into()));
        let StoreLocation::Server(c) = loc("http://10.0.0.5:6334") else {
            panic!("a server")
        };
        assert_eq!(
            (c.url.as_str(), c.collection.as_str()),
            ("http://10.0.0.5:6334", "titles")
        );
        let StoreLocation::Server(c) =
            loc("https://q.example:6334/films/?shards=6&replication=2&write_consistency=2")
        else {
            panic!("a server")
        };
        assert_eq!(c.url, "https://q.example:6334");
        assert_eq!(c.collection, "films");
        assert_eq!(
            (
                c.shard_number,
                c.replication_factor,
                c.write_consistency_factor
            ),
            (Some(6), Some(2), Some(2))
        );
    }

    #[test]
    fn bad_locations_say_what_is_wrong() {
        for (spec, why) in [
            ("", "empty"),
            ("http://", "no server host"),
            ("http://h:6334/bad name", "collection name"),
            ("http://h:6334/c?shards=0", "positive integer"),
            ("http://h:6334/c?shards", "no value"),
            ("http://h:6334/c?colour=red", "unknown option"),
            ("grpc://h:6334/c", "scheme \"grpc\""),
            ("HTTP://h:6334/c", "scheme \"HTTP\""),
        ] {
            let err = StoreLocation::parse(spec)
                .err()
                .unwrap_or_else(|| panic!("expected an error: {}", spec))
                .to_string();
            assert!(err.contains(why), "{spec}: {err}");
        }
    }
}
