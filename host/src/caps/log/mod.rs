//! The `log` capability: guest log lines go to the host's `tracing`, attributed to the plugin and
//! the title being analysed, with the plugin's key/value fields (contract 1.x). Messages and
//! fields are capped so a chatty plugin cannot flood the log.

use crate::runtime::bindings::{v0, v1};
use wasmtime::component::{HasData, Linker};

/// Longest message kept, in bytes; longer ones are cut at a character boundary.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Fields kept per line.
pub const MAX_FIELDS: usize = 16;

/// A log level, whichever contract version the plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Finest detail.
    Trace,
    /// Debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its level.
    pub level: Level,
    /// The message (capped).
    pub message: String,
    /// Key/value fields (capped), as `key=value` in the host's log.
    pub fields: Vec<(String, String)>,
}

/// Per-instance state of the log capability.
#[derive(Debug, Clone, Default)]
pub struct LogCtx {
    /// The calling plugin.
    pub plugin: String,
    /// The title being analysed, if any.
    pub title: Option<String>,
    /// Lines logged by this instance (kept for tests and failure reports; capped).
    pub lines: Vec<Line>,
}

/// Lines kept per instance.
const MAX_LINES: usize = 64;

fn cap(text: &str) -> &str {
    let mut end = text.len().min(MAX_MESSAGE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl LogCtx {
    /// Emits one line to `tracing` and keeps it.
    pub fn emit(&mut self, level: Level, message: &str, fields: &[(String, String)]) {
        let message = cap(message);
        let fields: Vec<(String, String)> = fields
            .iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| (cap(k).to_string(), cap(v).to_string()))
            .collect();
        let shown = fields
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(" ");
        let title = self.title.as_deref().unwrap_or("-");
        let plugin = &self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, title, fields = shown, "{message}"),
            Level::Debug => tracing::debug!(plugin, title, fields = shown, "{message}"),
            Level::Info => tracing::info!(plugin, title, fields = shown, "{message}"),
            Level::Warn => tracing::warn!(plugin, title, fields = shown, "{message}"),
            Level::Error => tracing::error!(plugin, title, fields = shown, "{message}"),
        }
        if self.lines.len() < MAX_LINES {
            self.lines.push(Line {
                level,
                message: message.to_string(),
                fields,
            });
        }
    }
}

/// Both contract versions define the same five levels.
macro_rules! level_from {
    ($wit:ty) => {
        impl From<$wit> for Level {
            fn from(level: $wit) -> Self {
                type L = $wit;
                match level {
                    L::Trace => Level::Trace,
                    L::Debug => Level::Debug,
                    L::Info => Level::Info,
                    L::Warn => Level::Warn,
                    L::Error => Level::Error,
                }
            }
        }
    };
}
level_from!(v1::log::Level);
level_from!(v0::log::Level);

impl v1::log::Host for LogCtx {
    fn log(&mut self, level: v1::log::Level, message: String, fields: Vec<(String, String)>) {
        self.emit(level.into(), &message, &fields);
    }
}

impl v0::log::Host for LogCtx {
    fn log(&mut self, level: v0::log::Level, message: String) {
        self.emit(level.into(), &message, &[]);
    }
}

struct LogData;

impl HasData for LogData {
    type Data<'a> = &'a mut LogCtx;
}

/// Links contract 1.x's `log` interface, with `get` picking the [`LogCtx`] out of the store data.
pub fn add_to_linker_v1<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    v1::log::add_to_linker::<T, LogData>(linker, get)
}

/// Links contract 0.1's `log` interface.
pub fn add_to_linker_v0<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    v0::log::add_to_linker::<T, LogData>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use v1::log::Host;

    #[test]
    fn caps_message_and_fields() {
        let mut ctx = LogCtx {
            plugin: "p".into(),
            ..LogCtx::default()
        };
        let fields: Vec<(String, String)> = (0..40)
            .map(|i| (format!("k{i}"), "é".repeat(MAX_MESSAGE_BYTES)))
            .collect();
        ctx.log(v1::log::Level::Info, "é".repeat(MAX_MESSAGE_BYTES), fields);
        let line = &ctx.lines[0];
        assert!(line.message.len() <= MAX_MESSAGE_BYTES && line.message.chars().all(|c| c == 'é'));
        assert_eq!(line.fields.len(), MAX_FIELDS);
        assert!(line.fields[0].1.len() <= MAX_MESSAGE_BYTES);
        v0::log::Host::log(&mut ctx, v0::log::Level::Warn, "old".into());
        assert_eq!(ctx.lines[1].level, Level::Warn);
    }
}
