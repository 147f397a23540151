//! The backends every store test runs against: the embedded store always, a Qdrant server when
//! `QDRANT_URL` names one (its gRPC URL, e.g. `http://127.0.0.1:6334`, with `QDRANT_API_KEY`
//! when it needs a key). Each server test works in a collection of its own, deleted afterwards.

#![allow(dead_code)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_indexes::{EntityStore, IndexError, Schema, ServerConfig, ServerStore, StoreLocation};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Edge,
    Server,
}

/// A store for one test, removed when dropped.
pub struct Fixture {
    store: Option<Arc<dyn EntityStore>>,
    location: StoreLocation,
    _dir: Option<tempfile::TempDir>,
}

pub fn io(e: impl std::fmt::Display) -> IndexError {
    IndexError::Engine(e.to_string())
}

impl Fixture {
    /// A new, empty store with `schema` on `backend`; `None` (after a skip line on the
    /// terminal) for the server backend when `QDRANT_URL` is not set.
    pub fn new(backend: Backend, schema: Schema) -> Result<Option<Fixture>, IndexError> {
        let (location, dir) = match backend {
            Backend::Edge => {
                let dir = tempfile::tempdir().map_err(io)?;
                (StoreLocation::Edge(dir.path().join("store")), Some(dir))
            }
            Backend::Server => {
                let Some(config) = server_config() else {
                    // Straight to the terminal: the test harness captures print macros.
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIP server backend ({}): QDRANT_URL is not set; set it to a Qdrant gRPC URL such as http://127.0.0.1:6334 to run this test against a server",
                        std::thread::current().name().unwrap_or("test")
                    );
                    return Ok(None);
                };
                (StoreLocation::Server(config), None)
            }
        };
        let store = location.open(schema)?;
        Ok(Some(Fixture {
            store: Some(store),
            location,
            _dir: dir,
        }))
    }

    pub fn store(&self) -> &dyn EntityStore {
        match &self.store {
            Some(store) => store.as_ref(),
            None => panic!("the store was closed"),
        }
    }

    pub fn shared(&self) -> Arc<dyn EntityStore> {
        match &self.store {
            Some(store) => store.clone(),
            None => panic!("the store was closed"),
        }
    }

    /// Closes the store and opens it again from what it wrote.
    pub fn reopen(&mut self) -> Result<(), IndexError> {
        self.store = None;
        self.store = Some(self.location.open_existing()?);
        Ok(())
    }

    pub fn location(&self) -> &StoreLocation {
        &self.location
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.store = None;
        if let StoreLocation::Server(config) = &self.location
            && let Ok(store) = ServerStore::open_existing(config.clone())
        {
            let _ = store.destroy();
        }
    }
}

/// A configuration for a fresh collection on the server `QDRANT_URL` names.
pub fn server_config() -> Option<ServerConfig> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty())?;
    let mut config = ServerConfig::new(url);
    config.api_key = std::env::var("QDRANT_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    config.collection = format!(
        "tessera_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    // Small chunks, so the tests cross chunk boundaries.
    config.upsert_chunk = 50;
    Some(config)
}

/// One test function per backend: `on_both_backends!(name, …)` turns each
/// `fn name(Backend) -> Result<(), IndexError>` into tests `edge::name` and `server::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod edge {
            $(#[test]
            fn $name() -> Result<(), tessera_indexes::IndexError> {
                super::$name(crate::common::Backend::Edge)
            })*
        }
        mod server {
            $(#[test]
            fn $name() -> Result<(), tessera_indexes::IndexError> {
                super::$name(crate::common::Backend::Server)
            })*
        }
    };
}
