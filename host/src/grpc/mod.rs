//! The gRPC API for rankers: `tessera.v1.Entities`, plus the standard health and reflection
//! services. Handlers are thin (validate, convert, call the store, convert back); conversions and
//! validation live in `convert.rs`, next to the generated types.

mod convert;
mod service;

pub use service::EntitiesService;

use std::future::Future;
use std::sync::Arc;
use tessera_indexes::EntityStore;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

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
    /// Most ids one `GetEntities` call may ask for.
    pub max_ids_per_call: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_ids_per_call: 1000,
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
    let entities = proto::entities_server::EntitiesServer::new(EntitiesService::new(store, config));
    // The store is open and readable before we get here, so the API is ready at once.
    health_reporter
        .set_serving::<proto::entities_server::EntitiesServer<EntitiesService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let mut builder = tonic::transport::Server::builder();
    let router = builder.add_service(health_service).add_service(entities);
    let router = match reflection {
        Ok(reflection) => router.add_service(reflection),
        Err(e) => {
            tracing::warn!(error = %e, "server reflection is unavailable");
            router
        }
    };
    router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
