//! The gRPC API for rankers: `tessera.v1.Entities`, plus the standard health and reflection
//! services. Handlers are thin (admit, validate, convert, call the store, convert back);
//! validation and conversions live in `convert.rs` and `search.rs`, next to the generated types;
//! bearer tokens in `auth.rs`.
//!
//! Production limits: a bounded number of calls in flight (more are answered with
//! RESOURCE_EXHAUSTED at once, not queued), bounded message sizes, ids per call and hits per
//! search, the caller's deadline (`grpc-timeout`) and a server-wide one, and streams that stop
//! producing when the client stops reading (bounded memory per stream).

pub mod auth;
mod convert;
pub mod metrics;
mod search;
mod service;

pub use auth::{Client, Tokens, TokensError};
pub use metrics::Metrics;
pub use service::EntitiesService;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tessera_indexes::EntityStore;
use tessera_models::TextEmbedder;
use tokio::net::TcpListener;

/// Accepted connections with Nagle's algorithm off: responses are written as soon as they are
/// ready instead of waiting for the client's delayed ACK (~40 ms per small response otherwise),
/// and with TCP keepalive so dead clients are noticed.
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
}

/// Generated protobuf and gRPC code for `tessera.v1`.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("tessera.v1");

    /// The encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("tessera_descriptor");
}

/// Settings of the gRPC server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Most ids one `GetEntities` call may ask for (also the largest scan page and the most
    /// semantic-ID queries per call).
    pub max_ids_per_call: usize,
    /// Most hits (`limit + offset`) one `Search` may ask for.
    pub max_search_limit: usize,
    /// Most Entities calls handled at once; further calls get RESOURCE_EXHAUSTED.
    pub max_in_flight: usize,
    /// Most followed `WatchEntities` streams open at once (they are long-lived, so they have
    /// their own limit instead of holding call slots).
    pub max_watchers: usize,
    /// Largest request message, in bytes.
    pub max_request_bytes: usize,
    /// Largest response message, in bytes.
    pub max_response_bytes: usize,
    /// Longest a call may take, whatever deadline the client set.
    pub call_timeout: Duration,
    /// Accepted bearer tokens; `None` leaves the API open (for local use).
    pub tokens: Option<Arc<Tokens>>,
    /// The text model `Search` embeds text queries with; `None` refuses text queries.
    pub text_model: Option<Arc<dyn TextEmbedder>>,
    /// Where calls are counted and timed.
    pub metrics: Arc<Metrics>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_ids_per_call: 1000,
            max_search_limit: 1000,
            max_in_flight: 256,
            max_watchers: 64,
            max_request_bytes: 4 << 20,
            max_response_bytes: 64 << 20,
            call_timeout: Duration::from_secs(30),
            tokens: None,
            text_model: None,
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight calls.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn EntityStore>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let tokens = config.tokens.clone();
    let metrics = config.metrics.clone();
    let timeout = config.call_timeout;
    // Followed change feeds never end by themselves; they end when this flips, so that
    // graceful shutdown (which waits for open streams) can finish.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let entities = proto::entities_server::EntitiesServer::new(EntitiesService::new(
        store,
        config.clone(),
        stopping,
    ))
    .max_decoding_message_size(config.max_request_bytes)
    .max_encoding_message_size(config.max_response_bytes);
    let entities = tonic::service::interceptor::InterceptedService::new(
        entities,
        move |request: tonic::Request<()>| match &tokens {
            Some(tokens) => tokens
                .check(request)
                .inspect_err(|_| metrics.unauthenticated()),
            None => Ok(request),
        },
    );
    // The store is open and readable before we get here, so the API is ready at once.
    health_reporter
        .set_serving::<proto::entities_server::EntitiesServer<EntitiesService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let mut builder = tonic::transport::Server::builder().timeout(timeout);
    let router = builder.add_service(health_service).add_service(entities);
    let router = match reflection {
        Ok(reflection) => router.add_service(reflection),
        Err(e) => {
            tracing::warn!(error = %e, "server reflection is unavailable");
            router
        }
    };
    router
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
}
