//! `sandbox-probe`: a deliberately hostile plugin for the host's sandbox tests.
//!
//! The title's `probe` metadata key picks the misbehaviour, so one component exercises every limit:
//! `loop`, `alloc`, `recurse`, `panic`, `open-file`, `read-env`, `open-socket`, or `ok` (behave).
//! Capability probes report what the sandbox answered as a plugin error, so the host test can check
//! that access was refused (and why) rather than guess from a missing side effect.

use std::hint::black_box;
use tessera_plugin_sdk::{Analysis, Plugin, PluginError, PluginInfo, Title, export_plugin};

struct SandboxProbe;

impl Plugin for SandboxProbe {
    fn describe() -> PluginInfo {
        PluginInfo::new("sandbox-probe", env!("CARGO_PKG_VERSION")).with_tags(&["probe"])
    }

    fn analyze(title: Title) -> Result<Analysis, PluginError> {
        let mode = title.meta("probe").unwrap_or("ok").to_string();
        let target = title.meta("target").unwrap_or("").to_string();
        match mode.as_str() {
            "ok" => Ok(Analysis::new().tag("probe", Some("ok"), 1.0)),
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => {
                Ok(Analysis::new().tag("probe", Some(&recurse(black_box(1)).to_string()), 1.0))
            }
            "panic" => panic!("sandbox-probe was asked to panic"),
            "open-file" => match std::fs::read_to_string(&target) {
                Ok(contents) => Ok(Analysis::new().tag("leaked-file", Some(&contents), 1.0)),
                Err(e) => Err(PluginError::Internal(format!("open {target}: {e}"))),
            },
            "read-env" => match std::env::var(&target) {
                Ok(value) => Ok(Analysis::new().tag("leaked-env", Some(&value), 1.0)),
                Err(e) => Err(PluginError::Internal(format!("env {target}: {e}"))),
            },
            "open-socket" => match std::net::TcpStream::connect(&target) {
                Ok(_) => Ok(Analysis::new().tag("leaked-socket", Some(&target), 1.0)),
                Err(e) => Err(PluginError::Internal(format!("connect {target}: {e}"))),
            },
            other => Err(PluginError::InvalidInput(format!(
                "unknown probe mode {other:?}"
            ))),
        }
    }
}

/// Recurses without bound (the base case never holds); `black_box` on the result keeps the
/// optimiser from turning the recursion into a loop.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    black_box(recurse(depth + 1)) ^ depth
}

export_plugin!(SandboxProbe);
