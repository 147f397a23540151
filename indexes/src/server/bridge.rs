//! Calls into the async Qdrant client from the store's blocking interface, with retries.
//!
//! The store owns a small tokio runtime: [`crate::EntityStore`] is synchronous (callers run it
//! on a blocking pool), and waiting on a channel instead of `block_on` keeps a call safe from
//! any thread, inside another runtime included.

use crate::IndexError;
use qdrant_client::{Qdrant, QdrantError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// First wait before a retry; doubled on each further attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
    client: Arc<Qdrant>,
    /// How many times a transient failure is retried.
    retries: u32,
    /// The server and collection, for errors.
    label: String,
}

/// Whether a failure may pass if the call is repeated (the server restarting, a leader
/// election, overload), as opposed to a request the server refuses.
fn transient(error: &QdrantError) -> Option<Duration> {
    use tonic::Code;
    match error {
        QdrantError::ResponseError { status } => {
            // The client reports a refused connection as INTERNAL "Failed to connect", and a
            // connection dropped mid-call (the server stopping) as UNKNOWN "transport error".
            let unreachable = (status.code() == Code::Internal
                && status.message().starts_with("Failed to connect"))
                || (status.code() == Code::Unknown && status.message().contains("transport error"));
            (unreachable
                || matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Aborted
                        | Code::ResourceExhausted
                ))
            .then_some(Duration::ZERO)
        }
        QdrantError::ResourceExhaustedError {
            retry_after_seconds,
            ..
        } => Some(Duration::from_secs((*retry_after_seconds).min(10))),
        _ => None,
    }
}

/// The wait before retry `attempt` (0-based): exponential, with up to a quarter of jitter so
/// that many writers retrying at once do not hit the server in step.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

impl Bridge {
    pub(crate) fn new(client: Qdrant, retries: u32, label: String) -> Result<Self, IndexError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tessera-qdrant")
            .enable_all()
            .build()
            .map_err(|e| IndexError::Server {
                store: label.clone(),
                reason: format!("cannot start the client runtime: {e}"),
                transient: false,
            })?;
        Ok(Bridge {
            runtime: Some(runtime),
            client: Arc::new(client),
            retries,
            label,
        })
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Runs `op` (what it does named by `what`) to completion, retrying transient failures with
    /// backoff; `op` makes a fresh future per attempt.
    pub(crate) fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, IndexError>
    where
        F: Fn(Arc<Qdrant>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, QdrantError>> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self.runtime.as_ref().ok_or_else(|| IndexError::Server {
            store: self.label.clone(),
            reason: "the store is closed".into(),
            transient: false,
        })?;
        let client = self.client.clone();
        let retries = self.retries;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let mut attempt = 0;
            let result = loop {
                match op(client.clone()).await {
                    Ok(value) => break Ok(value),
                    Err(error) => match transient(&error) {
                        Some(wait) if attempt < retries => {
                            tracing::warn!(%error, attempt, "transient Qdrant error; retrying");
                            tokio::time::sleep(wait.max(backoff(attempt))).await;
                            attempt += 1;
                        }
                        _ => break Err((error, attempt)),
                    },
                }
            };
            // The caller may have gone (it never does: it waits below); nothing to do then.
            let _ = tx.send(result);
        });
        match rx.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err((error, attempts))) => Err(IndexError::Server {
                store: self.label.clone(),
                transient: transient(&error).is_some(),
                reason: if attempts > 0 {
                    format!("{what}: {error} (after {attempts} retries)")
                } else {
                    format!("{what}: {error}")
                },
            }),
            Err(_) => Err(IndexError::Server {
                store: self.label.clone(),
                reason: format!("{what}: the client task stopped without an answer"),
                transient: false,
            }),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another runtime (a store
        // dropped by an async server): let its threads wind down in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_failures_are_retried() {
        let status = |code| QdrantError::ResponseError {
            status: tonic::Status::new(code, "x"),
        };
        assert!(transient(&status(tonic::Code::Unavailable)).is_some());
        assert!(transient(&status(tonic::Code::DeadlineExceeded)).is_some());
        assert!(transient(&status(tonic::Code::InvalidArgument)).is_none());
        assert!(transient(&status(tonic::Code::Internal)).is_none());
        let refused = QdrantError::ResponseError {
            status: tonic::Status::internal("Failed to connect to http://x: refused"),
        };
        assert!(transient(&refused).is_some());
        let dropped = QdrantError::ResponseError {
            status: tonic::Status::unknown("transport error"),
        };
        assert!(transient(&dropped).is_some());
        assert!(transient(&status(tonic::Code::Unknown)).is_none());
        assert!(transient(&status(tonic::Code::NotFound)).is_none());
        assert!(transient(&QdrantError::ConversionError("x".into())).is_none());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= FIRST_BACKOFF && backoff(0) < FIRST_BACKOFF * 2);
        assert!(backoff(3) >= FIRST_BACKOFF * 8);
        assert!(backoff(30) <= MAX_BACKOFF + MAX_BACKOFF / 4);
    }

    #[test]
    fn an_unreachable_server_is_a_clear_error_after_retries() {
        // Port 1 on loopback: nothing listens there, so every attempt is refused.
        let client = Qdrant::from_url("http://127.0.0.1:1")
            .skip_compatibility_check()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let bridge = Bridge::new(client, 2, "http://127.0.0.1:1 titles".into())
            .unwrap_or_else(|e| panic!("{e}"));
        let err = bridge
            .call("count", |c| async move { c.health_check().await })
            .err()
            .unwrap_or_else(|| panic!("expected an error: nothing listens on port 1"));
        assert!(matches!(
            err,
            IndexError::Server {
                transient: true,
                ..
            }
        ));
        let text = err.to_string();
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(text.contains("after 2 retries"), "{text}");
    }
}
