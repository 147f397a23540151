//! Prometheus metrics of the ranker API: calls per method and status code, call latency
//! histograms per method, store read latency, calls in flight, refused tokens, the text model's
//! queue depth and the store's size; served as text on `GET /metrics` by a small HTTP endpoint.
//!
//! Counters are plain atomics updated on the request path (no locks, no allocation); the text
//! exposition is rendered only when scraped.

use crate::histogram::Histogram;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tessera_indexes::{CachedReads, EntityStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The API's methods, in the order metrics list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GetEntities`.
    GetEntities,
    /// `LookupSemanticIds`.
    LookupSemanticIds,
    /// `Search`.
    Search,
    /// `ScanEntities` (latency: until the stream starts).
    ScanEntities,
    /// `WatchEntities` (latency: until the stream starts).
    WatchEntities,
    /// `GetSchema`.
    GetSchema,
}

const METHODS: [Method; 6] = [
    Method::GetEntities,
    Method::LookupSemanticIds,
    Method::Search,
    Method::ScanEntities,
    Method::WatchEntities,
    Method::GetSchema,
];

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::GetEntities => "GetEntities",
            Method::LookupSemanticIds => "LookupSemanticIds",
            Method::Search => "Search",
            Method::ScanEntities => "ScanEntities",
            Method::WatchEntities => "WatchEntities",
            Method::GetSchema => "GetSchema",
        }
    }
}

/// gRPC status codes 0..=16, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

#[derive(Debug, Default)]
struct MethodStats {
    codes: [AtomicU64; CODES.len()],
    latency: Histogram,
}

/// The server's metrics. Shared by the service, the auth check and the endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    methods: [MethodStats; METHODS.len()],
    store: Histogram,
    in_flight: AtomicI64,
    store_waiting: AtomicI64,
    unauthenticated: AtomicU64,
    /// The service's entity cache, once it has one: its own counters are rendered. Weak: the
    /// metrics must not keep a stopped service's cache, and through it the store, alive.
    entity_cache: std::sync::Mutex<std::sync::Weak<CachedReads>>,
}

impl Metrics {
    /// Records a finished call.
    pub fn call(&self, method: Method, code: tonic::Code, took: Duration) {
        let stats = &self.methods[method as usize];
        let code = (code as usize).min(CODES.len() - 1);
        stats.codes[code].fetch_add(1, Ordering::Relaxed);
        stats.latency.observe(took);
    }

    /// Records one blocking store call.
    pub fn store_read(&self, took: Duration) {
        self.store.observe(took);
    }

    /// Reports `cache`'s hits, misses and size from now on, while it lives.
    pub fn report_cache(&self, cache: &Arc<CachedReads>) {
        if let Ok(mut reported) = self.entity_cache.lock() {
            *reported = Arc::downgrade(cache);
        }
    }

    /// The entity cache's counters, when there is a cache.
    pub fn entity_cache_stats(&self) -> Option<tessera_indexes::CacheStats> {
        let cache = self.entity_cache.lock().ok()?.upgrade()?;
        Some(cache.stats())
    }

    /// Records a call refused for its token.
    pub fn unauthenticated(&self) {
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call (or stream) in flight until the guard drops.
    pub fn in_flight(self: &Arc<Self>) -> Gauged {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Gauged(self.clone(), |m| &m.in_flight)
    }

    /// Counts a store read waiting for a reader place until the guard drops.
    pub fn store_waiting(self: &Arc<Self>) -> Gauged {
        self.store_waiting.fetch_add(1, Ordering::Relaxed);
        Gauged(self.clone(), |m| &m.store_waiting)
    }

    /// The text exposition (format 0.0.4); `titles` and `text_queue` are sampled by the caller.
    pub fn render(&self, titles: Option<usize>, text_queue: Option<usize>) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP tessera_grpc_requests_total Entities calls finished, by method and status code.\n# TYPE tessera_grpc_requests_total counter\n",
        );
        for method in METHODS {
            let stats = &self.methods[method as usize];
            for (code, count) in CODES.iter().zip(&stats.codes) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 || *code == "OK" {
                    let _ = writeln!(
                        out,
                        "tessera_grpc_requests_total{{method=\"{}\",code=\"{code}\"}} {count}",
                        method.name()
                    );
                }
            }
        }
        out.push_str(
            "# HELP tessera_grpc_request_duration_seconds Entities call latency (streams: until the stream starts).\n# TYPE tessera_grpc_request_duration_seconds histogram\n",
        );
        for method in METHODS {
            self.methods[method as usize].latency.render(
                &mut out,
                "tessera_grpc_request_duration_seconds",
                &format!("method=\"{}\"", method.name()),
            );
        }
        out.push_str(
            "# HELP tessera_store_read_duration_seconds Store reads made for API calls (reads of titles by id: through the entity cache, hits included).\n# TYPE tessera_store_read_duration_seconds histogram\n",
        );
        self.store
            .render(&mut out, "tessera_store_read_duration_seconds", "");
        let _ = writeln!(
            out,
            "# HELP tessera_grpc_in_flight Entities calls being handled (streams: until they start).\n# TYPE tessera_grpc_in_flight gauge\ntessera_grpc_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tessera_store_reads_waiting Store reads of admitted calls waiting for a reader place (--store-readers).\n# TYPE tessera_store_reads_waiting gauge\ntessera_store_reads_waiting {}",
            self.store_waiting.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tessera_grpc_unauthenticated_total Calls refused for a missing or unknown token.\n# TYPE tessera_grpc_unauthenticated_total counter\ntessera_grpc_unauthenticated_total {}",
            self.unauthenticated.load(Ordering::Relaxed)
        );
        if let Some(stats) = self.entity_cache_stats() {
            let _ = writeln!(
                out,
                "# HELP tessera_entity_cache_lookups_total Titles asked for by id, by whether the entity cache held them.\n# TYPE tessera_entity_cache_lookups_total counter\ntessera_entity_cache_lookups_total{{result=\"hit\"}} {}\ntessera_entity_cache_lookups_total{{result=\"miss\"}} {}",
                stats.hits, stats.misses
            );
            let _ = writeln!(
                out,
                "# HELP tessera_entity_cache_bytes Estimated bytes of the titles the entity cache holds, their encoded messages included.\n# TYPE tessera_entity_cache_bytes gauge\ntessera_entity_cache_bytes {}",
                stats.bytes
            );
            let _ = writeln!(
                out,
                "# HELP tessera_entity_cache_budget_bytes Most bytes the entity cache may hold (--entity-cache-mb).\n# TYPE tessera_entity_cache_budget_bytes gauge\ntessera_entity_cache_budget_bytes {}",
                stats.budget
            );
            let _ = writeln!(
                out,
                "# HELP tessera_entity_cache_titles Titles the entity cache holds.\n# TYPE tessera_entity_cache_titles gauge\ntessera_entity_cache_titles {}",
                stats.entries
            );
        }
        if let Some(depth) = text_queue {
            let _ = writeln!(
                out,
                "# HELP tessera_text_model_queue_depth Text queries waiting for the model.\n# TYPE tessera_text_model_queue_depth gauge\ntessera_text_model_queue_depth {depth}"
            );
        }
        if let Some(titles) = titles {
            let _ = writeln!(
                out,
                "# HELP tessera_store_titles Titles in the store.\n# TYPE tessera_store_titles gauge\ntessera_store_titles {titles}"
            );
        }
        out
    }
}

/// Decrements its gauge (calls in flight, store reads waiting) when dropped.
#[derive(Debug)]
pub struct Gauged(Arc<Metrics>, fn(&Metrics) -> &AtomicI64);

impl Drop for Gauged {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Most metrics connections served at once.
const MAX_CONNECTIONS: usize = 16;

/// Largest request head the endpoint reads; scrapers send a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Serves `GET /metrics` on `listener` until `shutdown` completes. Anything else gets 404;
/// a client that sends no complete head within 5 s is dropped.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    store: Arc<dyn EntityStore>,
    queue_depth: Option<Arc<dyn Fn() -> usize + Send + Sync>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (mut socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        // Scrapers are few; beyond a handful of open connections, refuse by closing.
        let Ok(slot) = connections.clone().try_acquire_owned() else {
            continue;
        };
        let metrics = metrics.clone();
        let store = store.clone();
        let queue_depth = queue_depth.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut head = Vec::with_capacity(512);
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
                    let n = socket.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                std::io::Result::Ok(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let response = if head.starts_with(b"GET /metrics ")
                || head.starts_with(b"GET /metrics?")
            {
                // A count, not a read of titles, and not behind the API's store reader limit:
                // a scrape answers even while readers are all busy.
                let titles = tokio::task::spawn_blocking(move || store.count().ok())
                    .await
                    .ok()
                    .flatten();
                let body = metrics.render(titles, queue_depth.map(|q| q()));
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let metrics = Arc::new(Metrics::default());
        metrics.call(
            Method::GetEntities,
            tonic::Code::Ok,
            Duration::from_micros(300),
        );
        metrics.call(
            Method::GetEntities,
            tonic::Code::Ok,
            Duration::from_millis(3),
        );
        metrics.call(
            Method::Search,
            tonic::Code::InvalidArgument,
            Duration::from_millis(1),
        );
        metrics.unauthenticated();
        let guard = metrics.in_flight();
        let waiting = [metrics.store_waiting(), metrics.store_waiting()];
        let text = metrics.render(Some(15), Some(0));
        drop(guard);
        drop(waiting);
        for line in [
            "tessera_grpc_requests_total{method=\"GetEntities\",code=\"OK\"} 2",
            "tessera_grpc_requests_total{method=\"Search\",code=\"INVALID_ARGUMENT\"} 1",
            "tessera_grpc_request_duration_seconds_bucket{method=\"GetEntities\",le=\"0.0005\"} 1",
            "tessera_grpc_request_duration_seconds_bucket{method=\"GetEntities\",le=\"0.0025\"} 1",
            "tessera_grpc_request_duration_seconds_bucket{method=\"GetEntities\",le=\"0.005\"} 2",
            "tessera_grpc_request_duration_seconds_bucket{method=\"GetEntities\",le=\"+Inf\"} 2",
            "tessera_grpc_request_duration_seconds_count{method=\"GetEntities\"} 2",
            "tessera_grpc_in_flight 1",
            "tessera_store_reads_waiting 2",
            "tessera_grpc_unauthenticated_total 1",
            "tessera_store_titles 15",
            "tessera_text_model_queue_depth 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            metrics
                .render(None, None)
                .contains("tessera_grpc_in_flight 0\n")
        );
        assert!(
            metrics
                .render(None, None)
                .contains("tessera_store_reads_waiting 0\n")
        );
    }
}
