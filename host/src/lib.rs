//! The Tessera host: runs sandboxed WebAssembly plugins over a catalog, turns what they produce
//! into entity representations in the store, and serves those to rankers over gRPC.
//!
//! Data flows one way: [`catalog`] → [`runtime`] (plugins, which call the host [`caps`]: media,
//! models, log, config) → [`pipeline`] → `tessera-indexes` → [`grpc`]. Main types:
//! [`runtime::PluginHost`] (engine, one linker per contract line, models),
//! [`runtime::Plugin`] (one loaded component), [`manifest::PluginManifest`] (what an operator
//! allows a plugin), [`plugin_control::PluginControl`] (which plugins an operator switched off),
//! [`pipeline::Pipeline`] (titles in, entities stored; its plugin set swaps while it runs),
//! [`grpc::EntitiesService`]. [`runtime::contract`] decides which contract version a component
//! was built against and whether this host runs it.
//!
//! What the host must not do: let a plugin reach anything its capabilities do not grant (files,
//! network, environment), let one plugin call's failure affect another, or store output it has not
//! validated.

pub mod caps;
pub mod catalog;
pub mod grpc;
pub mod histogram;
pub mod manifest;
pub mod mock_model;
pub mod pipeline;
pub mod plugin_control;
pub mod runtime;
pub mod taxonomy;
pub mod text_model;
