//! Host capabilities that plugins import. Each is one module with its own state and an
//! `add_to_linker` taking a getter, so every capability can be tested without wasm and linked
//! alone. Where a capability exists in both contract versions, it has one `add_to_linker_v0` and
//! one `add_to_linker_v1` over the same state.

pub mod budget;
pub mod config;
pub mod log;
pub mod media;
pub mod models;
