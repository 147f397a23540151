//! The producing side of the server-streaming calls (`ScanEntities`, `WatchEntities`): a small
//! buffer, so a client that stops reading holds bounded memory, and an end with UNAVAILABLE for
//! a client stalled too long or a server shutting down, after what was already sent.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

/// Pages a scan stream buffers ahead of a slow reader: beyond these the producer waits, so a
/// client that stops reading holds at most this much memory.
const SCAN_BUFFER: usize = 2;

/// Longest a stream waits on a client that does not read before ending the stream (with
/// UNAVAILABLE: resume from the last cursor or seq), so stalled clients cannot hold call slots.
const STALLED_CLIENT: Duration = Duration::from_secs(60);

/// A server stream's response body.
pub(super) type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The producing side of a server stream: pages go through a small channel; when the stream
/// must end early (shutdown, a stalled client) the reason is delivered after what was sent.
pub(super) struct StreamOut<T> {
    tx: mpsc::Sender<Result<T, Status>>,
    ending: Arc<std::sync::Mutex<Option<Status>>>,
    stopping: watch::Receiver<bool>,
}

impl<T: Send + 'static> StreamOut<T> {
    /// A producer and the response stream it feeds.
    pub(super) fn new(stopping: watch::Receiver<bool>) -> (Self, ResponseStream<T>) {
        let (tx, rx) = mpsc::channel(SCAN_BUFFER);
        let ending = Arc::new(std::sync::Mutex::new(None));
        let last = ending.clone();
        let tail = tokio_stream::iter([()]).filter_map(move |()| {
            last.lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .map(Err)
        });
        let stream = Box::pin(ReceiverStream::new(rx).chain(tail));
        (
            StreamOut {
                tx,
                ending,
                stopping,
            },
            stream,
        )
    }

    /// Resolves when the client has gone away (the response stream was dropped).
    pub(super) async fn closed(&self) {
        self.tx.closed().await
    }

    /// `work`'s output, or `None` when the client goes away first: a producer waiting for a
    /// store reader stops waiting (and reads nothing) once nobody will read what it makes.
    pub(super) async fn unless_closed<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            done = work => Some(done),
            () = self.closed() => None,
        }
    }

    pub(super) fn end_with(&self, status: Status) {
        *self.ending.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
    }

    /// Sends one item; false when the stream is over (client gone, server stopping, client
    /// stalled), after recording why.
    pub(super) async fn send(&mut self, item: Result<T, Status>) -> bool {
        let ending = tokio::select! {
            sent = self.tx.send_timeout(item, STALLED_CLIENT) => match sent {
                Ok(()) => return true,
                Err(mpsc::error::SendTimeoutError::Closed(_)) => return false,
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => format!(
                    "the client read nothing for {} s; resume from the last cursor or seq",
                    STALLED_CLIENT.as_secs()
                ),
            },
            _ = self.stopping.wait_for(|stop| *stop) => {
                "the server is shutting down; resume from the last cursor or seq".to_string()
            }
        };
        self.end_with(Status::unavailable(ending));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_waiting_for_a_gone_client_is_abandoned() {
        let (_stop, stopping) = watch::channel(false);
        let (out, stream) = StreamOut::<u32>::new(stopping);
        assert_eq!(out.unless_closed(async { 7 }).await, Some(7));
        drop(stream);
        // Work that would never finish (a read waiting for a reader place) ends with the client.
        let waited = tokio::time::timeout(
            Duration::from_secs(10),
            out.unless_closed(std::future::pending::<u32>()),
        )
        .await;
        assert_eq!(waited, Ok(None));
    }
}
