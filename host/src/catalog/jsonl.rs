//! JSON Lines: one title object per line; blank lines are skipped.

use super::{Builder, Catalog, ProblemKind, Title};
use std::path::Path;

/// Longest line accepted: a title with a long synopsis and many assets is a few KiB; a line of
/// megabytes is a broken file, and parsing it would only waste memory.
const MAX_LINE: usize = 1 << 20;

pub(super) fn parse(path: &Path, text: &str) -> Catalog {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut builder = Builder::new();
    for (index, line) in text.lines().enumerate() {
        let at = format!("line {}", index + 1);
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            let message = format!("the line is {} bytes; at most {MAX_LINE}", line.len());
            builder.problem(&at, None, None, ProblemKind::Malformed, message);
            continue;
        }
        match serde_json::from_str::<Title>(line) {
            Ok(title) => builder.title(&at, title, base),
            Err(e) => {
                // Name the title when the line is JSON with an id, so the report says whose it is.
                let id = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string));
                builder.problem(
                    &at,
                    id.as_deref(),
                    None,
                    ProblemKind::Malformed,
                    e.to_string(),
                );
            }
        }
    }
    builder.finish()
}
