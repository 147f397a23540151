//! Host capabilities that plugins import. Each is one module with its own state and an
//! `add_to_linker` taking a getter, so every capability can be tested without wasm and linked
//! alone.

pub mod log;
pub mod models;
