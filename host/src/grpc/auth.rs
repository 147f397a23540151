//! Bearer-token authentication for the Entities service.
//!
//! Tokens are named per client (`NAME:TOKEN`, one per line in a file, or comma-separated in the
//! environment) so that logs can name a call's client without ever showing a secret. Health
//! and reflection stay open: load balancers probe health, and the schema is not a secret.

use std::path::{Path, PathBuf};
use tonic::{Request, Status};

/// Why a token list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file could not be read.
    #[error("tokens file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An entry is malformed.
    #[error("tokens from {source_name}, entry {entry}: {reason}")]
    Entry {
        /// The file path or the environment variable.
        source_name: String,
        /// 1-based entry (line) number.
        entry: usize,
        /// What is wrong (never the token itself).
        reason: String,
    },
}

/// Shortest token accepted: anything shorter is guessable.
const MIN_TOKEN_LEN: usize = 16;

/// The accepted tokens, by client name.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: a Debug print of the config must never leak a secret.
        f.debug_struct("Tokens")
            .field("clients", &self.names())
            .finish()
    }
}

impl Tokens {
    /// Parses `NAME:TOKEN` entries separated by newlines or commas; blank entries and `#`
    /// comments are skipped. `source_name` names the origin in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, TokensError> {
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, raw) in text.split(['\n', ',']).enumerate() {
            let entry = raw.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| TokensError::Entry {
                source_name: source_name.to_string(),
                entry: i + 1,
                reason: reason.to_string(),
            };
            let (name, token) = entry
                .split_once(':')
                .ok_or_else(|| bad("expected NAME:TOKEN"))?;
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() {
                return Err(bad("the client name is empty"));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(bad(&format!(
                    "the token of {name:?} is shorter than {MIN_TOKEN_LEN} characters"
                )));
            }
            if entries.iter().any(|(n, _)| n == name) {
                return Err(bad(&format!("client {name:?} is listed twice")));
            }
            if entries.iter().any(|(_, t)| t == token.as_bytes()) {
                return Err(bad(&format!(
                    "the token of {name:?} is also another client's"
                )));
            }
            entries.push((name.to_string(), token.as_bytes().to_vec()));
        }
        Ok(Tokens { entries })
    }

    /// Reads a tokens file.
    pub fn read(path: &Path) -> Result<Self, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|e| TokensError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Client names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The client whose token `presented` is. Compares every entry in full, so the time taken
    /// does not tell how much of a guess was right.
    pub fn client(&self, presented: &[u8]) -> Option<&str> {
        let mut found = None;
        for (name, token) in &self.entries {
            if constant_time_eq(token, presented) {
                found = Some(name.as_str());
            }
        }
        found
    }

    /// Checks a call's `authorization: Bearer …` metadata; the client it names is logged (at
    /// debug), the token never.
    pub fn check<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into());
        let header = match request.metadata().get("authorization") {
            None => {
                tracing::warn!(%peer, "rejected a call: no authorization metadata");
                return Err(Status::unauthenticated(
                    "missing `authorization: Bearer <token>` metadata",
                ));
            }
            Some(h) => h.as_bytes(),
        };
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "));
        let Some(token) = token else {
            tracing::warn!(%peer, "rejected a call: authorization is not a Bearer token");
            return Err(Status::unauthenticated(
                "authorization metadata must be `Bearer <token>`",
            ));
        };
        match self.client(token) {
            Some(client) => {
                tracing::debug!(%peer, client, "authenticated a call");
                Ok(request)
            }
            None => {
                // The token is never logged, not even a prefix of it.
                tracing::warn!(%peer, "rejected a call: unknown token");
                Err(Status::unauthenticated("unknown token"))
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ranker-a:aaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn parses_named_tokens_and_refuses_bad_entries() {
        let tokens = Tokens::parse(
            &format!("# comment\n{A}\n\nranker-b: bbbbbbbbbbbbbbbbbbbb "),
            "f",
        );
        let tokens = tokens.ok();
        assert_eq!(
            tokens.as_ref().map(|t| t.names()),
            Some(vec!["ranker-a", "ranker-b"])
        );
        let tokens = tokens.unwrap_or_default();
        assert_eq!(tokens.client(b"bbbbbbbbbbbbbbbbbbbb"), Some("ranker-b"));
        assert_eq!(tokens.client(b"bbbbbbbbbbbbbbbbbbb"), None);
        assert_eq!(tokens.client(b""), None);
        assert!(!format!("{tokens:?}").contains("aaaa"));

        let err = |text: &str| {
            Tokens::parse(text, "env")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err("noseparator").contains("entry 1: expected NAME:TOKEN"));
        assert!(err(&format!("{A},x:short")).contains("entry 2: the token of \"x\" is shorter"));
        assert!(err(&format!("{A},{A}")).contains("listed twice"));
        assert!(err(&format!("{A},b:aaaaaaaaaaaaaaaaaaaa")).contains("also another client's"));
        assert!(err(":aaaaaaaaaaaaaaaaaaaa").contains("client name is empty"));
        // Errors never carry the secret.
        assert!(!err(&format!("{A},{A}")).contains("aaaaaaaa"));
    }

    #[test]
    fn checks_bearer_metadata() {
        let tokens = Tokens::parse(A, "f").unwrap_or_default();
        let with = |value: Option<&str>| {
            let mut r = Request::new(());
            if let Some(v) = value
                && let Ok(v) = v.parse()
            {
                r.metadata_mut().insert("authorization", v);
            }
            tokens.check(r)
        };
        assert!(with(Some("Bearer aaaaaaaaaaaaaaaaaaaa")).is_ok());
        assert!(with(Some("bearer aaaaaaaaaaaaaaaaaaaa")).is_ok());
        for bad in [
            None,
            Some("aaaaaaaaaaaaaaaaaaaa"),
            Some("Bearer nope-nope-nope-nope"),
        ] {
            let status = with(bad).err().map(|s| s.code());
            assert_eq!(status, Some(tonic::Code::Unauthenticated), "{bad:?}");
        }
    }
}
