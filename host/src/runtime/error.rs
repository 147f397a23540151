//! Why a plugin call failed. Guest-reported errors (the plugin's own `plugin-error`) are kept apart
//! from traps the host raised (deadline, memory, stack, panic), and every variant names the plugin.

use std::time::Duration;

/// A failed plugin load or call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The bytes are not a component this host can run.
    #[error("plugin {plugin}: cannot load component: {reason}")]
    Load {
        /// Plugin name or file.
        plugin: String,
        /// The compiler's or linker's message.
        reason: String,
    },
    /// The call ran past its wall-clock deadline and was interrupted.
    #[error("plugin {plugin}: {call} exceeded its {deadline:?} deadline and was stopped")]
    Deadline {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
        /// The configured deadline.
        deadline: Duration,
    },
    /// The call burned its fuel (instruction budget) and was stopped.
    #[error("plugin {plugin}: {call} used up its fuel ({fuel} units) and was stopped")]
    Fuel {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
        /// The configured fuel.
        fuel: u64,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error(
        "plugin {plugin}: {call} tried to grow memory to {requested} bytes; the limit is {limit} bytes"
    )]
    MemoryLimit {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
        /// Bytes requested.
        requested: usize,
        /// The cap.
        limit: usize,
    },
    /// The plugin overflowed its stack: the engine's, or its own in linear memory.
    #[error(
        "plugin {plugin}: {call} overflowed its stack (unbounded recursion, or more stack than \
         it was linked with: raise `-zstack-size` in its .cargo/config.toml)"
    )]
    StackOverflow {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
    },
    /// The plugin trapped: a panic, an `unreachable`, an out-of-bounds access.
    #[error("plugin {plugin}: {call} crashed ({trap}){}", guest_output(.stderr))]
    Trap {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
        /// What wasmtime reported.
        trap: String,
        /// The tail of what the plugin wrote to stderr (its panic message, usually).
        stderr: String,
    },
    /// The plugin ran to completion and reported that it could not analyse the title.
    #[error("plugin {plugin}: {kind}: {message}")]
    Guest {
        /// Plugin name.
        plugin: String,
        /// `invalid-input`, `model` or `internal`.
        kind: &'static str,
        /// The plugin's message.
        message: String,
    },
    /// The plugin returned output the host refuses to store.
    #[error("plugin {plugin}: invalid output: {reason}")]
    InvalidOutput {
        /// Plugin name.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// The host itself failed (engine setup, linking).
    #[error("plugin host: {0}")]
    Host(String),
}

fn guest_output(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; plugin stderr: {stderr}")
    }
}

impl PluginError {
    /// A short machine-readable kind, for reports and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Load { .. } => "load",
            PluginError::Deadline { .. } => "deadline",
            PluginError::Fuel { .. } => "fuel",
            PluginError::MemoryLimit { .. } => "memory-limit",
            PluginError::StackOverflow { .. } => "stack-overflow",
            PluginError::Trap { .. } => "trap",
            PluginError::Guest { .. } => "plugin-error",
            PluginError::InvalidOutput { .. } => "invalid-output",
            PluginError::Host(_) => "host",
        }
    }
}
