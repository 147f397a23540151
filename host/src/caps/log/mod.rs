//! The `log` capability: guest log lines go to the host's `tracing`, attributed to the plugin and
//! the title being analysed. Messages are capped so a chatty plugin cannot flood the log.

use crate::runtime::bindings::log;
use wasmtime::component::{HasData, Linker};

/// Longest message kept, in bytes; longer ones are cut at a character boundary.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Per-instance state of the log capability.
#[derive(Debug, Clone, Default)]
pub struct LogCtx {
    /// The calling plugin.
    pub plugin: String,
    /// The title being analysed, if any.
    pub title: Option<String>,
    /// Messages logged by this instance (kept for tests and failure reports; capped).
    pub lines: Vec<(log::Level, String)>,
}

/// Lines kept per instance.
const MAX_LINES: usize = 64;

impl log::Host for LogCtx {
    fn log(&mut self, level: log::Level, message: String) {
        let mut end = message.len().min(MAX_MESSAGE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &message[..end];
        let title = self.title.as_deref().unwrap_or("-");
        match level {
            log::Level::Trace => tracing::trace!(plugin = %self.plugin, title, "{message}"),
            log::Level::Debug => tracing::debug!(plugin = %self.plugin, title, "{message}"),
            log::Level::Info => tracing::info!(plugin = %self.plugin, title, "{message}"),
            log::Level::Warn => tracing::warn!(plugin = %self.plugin, title, "{message}"),
            log::Level::Error => tracing::error!(plugin = %self.plugin, title, "{message}"),
        }
        if self.lines.len() < MAX_LINES {
            self.lines.push((level, message.to_string()));
        }
    }
}

struct LogData;

impl HasData for LogData {
    type Data<'a> = &'a mut LogCtx;
}

/// Links the `log` interface, with `get` picking the [`LogCtx`] out of the store data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, LogData>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Host;

    #[test]
    fn caps_message_length_on_a_char_boundary() {
        let mut ctx = LogCtx {
            plugin: "p".into(),
            ..LogCtx::default()
        };
        ctx.log(log::Level::Info, "é".repeat(MAX_MESSAGE_BYTES));
        let (_, kept) = &ctx.lines[0];
        assert!(kept.len() <= MAX_MESSAGE_BYTES && kept.chars().all(|c| c == 'é'));
    }
}
