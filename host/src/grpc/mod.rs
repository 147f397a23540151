//! The gRPC API for rankers: `tessera.v1.Entities`, plus the standard health and reflection
//! services. Handlers are thin (admit, validate, convert, call the store, convert back);
//! validation and conversions live in `convert.rs` and `search.rs`, next to the generated types;
//! bearer tokens in `auth.rs`; `GetEntities` responses written from titles kept encoded in
//! `encoded.rs`.
//!
//! Production limits: a bounded number of calls in flight (more are answered with
//! RESOURCE_EXHAUSTED at once, not queued), bounded message sizes, ids per call and hits per
//! search, the caller's deadline (`grpc-timeout`) and a server-wide one, and streams that stop
//! producing when the client stops reading (bounded memory per stream).

pub mod auth;
mod convert;
pub mod encoded;
pub mod metrics;
mod search;
mod service;
mod stream_out;

pub use auth::{Tokens, TokensError};
pub use convert::unpack_floats;
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

/// The generated server of `tessera.v1.Entities`, answering `GetEntities` with
/// [`encoded::EncodedEntities`] (see host/build.rs); its other types are [`proto`]'s.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
mod served {
    include!(concat!(env!("OUT_DIR"), "/encoded/tessera.v1.rs"));
}

/// The entity cache's default size: a title of one 384-d vector and a tag takes about 5.5 KiB
/// as the cache counts it, its `GetEntities` message included (BENCHMARKS.md), so 100 000 such
/// titles fit with room to spare.
pub const DEFAULT_ENTITY_CACHE_MB: usize = 768;

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
    /// Most store reads running at once (each on its own blocking thread); admitted calls beyond
    /// it wait their turn. 0: the store's own choice ([`EntityStore::parallel_reads`]: one per
    /// core for the embedded store, whose reads are CPU work that more threads only time-slice).
    pub store_readers: usize,
    /// Bytes of titles `GetEntities` and `Search` by title keep in memory between calls, kept
    /// current through the store's change feed ([`tessera_indexes::CachedReads`]); 0, or a store
    /// other processes write (a Qdrant server), reads every title from the store every time.
    pub entity_cache_bytes: usize,
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
    /// TLS (and, with a client CA, mutual TLS); `None` serves plain HTTP/2.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// How often readiness re-checks that the store and the text model answer (each gets this
    /// long, at least a second, to do so).
    pub health_probe: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_ids_per_call: 1000,
            max_search_limit: 1000,
            max_in_flight: 256,
            store_readers: 0,
            entity_cache_bytes: DEFAULT_ENTITY_CACHE_MB << 20,
            max_watchers: 64,
            max_request_bytes: 4 << 20,
            max_response_bytes: 64 << 20,
            call_timeout: Duration::from_secs(30),
            tokens: None,
            text_model: None,
            metrics: Arc::new(Metrics::default()),
            tls: None,
            health_probe: Duration::from_secs(5),
        }
    }
}

/// Health names of the parts readiness checks, beside the API's own `tessera.v1.Entities`
/// (which is SERVING only while every part is): operators see which part is failing.
pub const STORE_HEALTH: &str = "tessera.v1.Entities.store";
/// See [`STORE_HEALTH`]; present only when text queries are served.
pub const TEXT_MODEL_HEALTH: &str = "tessera.v1.Entities.text_model";

type Api = served::entities_server::EntitiesServer<EntitiesService>;

fn status(ok: bool) -> tonic_health::ServingStatus {
    if ok {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    }
}

/// One part's readiness check, run on tokio's blocking pool, at most one at a time: a check that
/// outlasts its wait is left to finish and the part counts as failing until it has, so a hung
/// part (a stuck GPU call, a store that never answers) does not pile up blocked threads.
struct Probe {
    running: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Probe {
    async fn run(
        &mut self,
        wait: Duration,
        check: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Result<(), String> {
        let mut handle = match self.running.take() {
            Some(earlier) if !earlier.is_finished() => {
                self.running = Some(earlier);
                return Err("an earlier check has not returned yet".into());
            }
            _ => tokio::task::spawn_blocking(check),
        };
        match tokio::time::timeout(wait, &mut handle).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Err(format!("the check failed: {e}")),
            Err(_) => {
                self.running = Some(handle);
                Err(format!("no answer within {wait:?}"))
            }
        }
    }
}

/// Sets part `name`'s health from a check's answer and logs the change.
async fn report_part(
    reporter: &tonic_health::server::HealthReporter,
    name: &str,
    part: &str,
    answer: Result<(), String>,
) {
    reporter
        .set_service_status(name, status(answer.is_ok()))
        .await;
    match answer {
        Ok(()) => tracing::info!(part, "answers again"),
        Err(e) => tracing::error!(part, error = %e, "does not answer: not serving"),
    }
}

/// Keeps health in step with what the API needs: the store answering a read and, when text
/// queries are served, the text model embedding a probe sentence, each within the probe interval
/// (at least a second); both are checked at once. `tessera.v1.Entities` is NOT_SERVING while
/// either fails (load balancers then route elsewhere), SERVING again once both answer.
async fn probe_readiness(
    store: Arc<dyn EntityStore>,
    text_model: Option<Arc<dyn TextEmbedder>>,
    reporter: tonic_health::server::HealthReporter,
    every: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let wait = every.max(Duration::from_secs(1));
    let (mut store_probe, mut model_probe) = (Probe { running: None }, Probe { running: None });
    let mut state = (true, true);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            // Once draining, health stays NOT_SERVING.
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        let store = store.clone();
        // Not behind the store reader limit: queued behind a busy server's reads, the probe
        // would time out and report a healthy store as failing.
        let store_check = move || store.count().map(|_| ()).map_err(|e| e.to_string());
        let model_check = async {
            match &text_model {
                None => Ok(()),
                Some(model) => {
                    let model = model.clone();
                    let check = move || {
                        model
                            .embed(&["readiness probe"])
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    };
                    model_probe.run(wait, check).await
                }
            }
        };
        let (store_answer, model_answer) =
            tokio::join!(store_probe.run(wait, store_check), model_check);
        let now = (store_answer.is_ok(), model_answer.is_ok());
        // A round that ends after shutdown began must not mark the draining API as serving.
        if now == state || *stopping.borrow() {
            continue;
        }
        if now.0 != state.0 {
            report_part(&reporter, STORE_HEALTH, "store", store_answer).await;
        }
        if now.1 != state.1 {
            report_part(&reporter, TEXT_MODEL_HEALTH, "text model", model_answer).await;
        }
        state = now;
        if now == (true, true) {
            tracing::info!("serving");
            reporter.set_serving::<Api>().await;
        } else {
            reporter.set_not_serving::<Api>().await;
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
    let draining = health_reporter.clone();
    let shutdown = async move {
        shutdown.await;
        // Load balancers stop sending new calls while the open ones drain.
        draining.set_not_serving::<Api>().await;
        let _ = stopping_tx.send(true);
    };
    let store_probe = store.clone();
    let probe_stopping = stopping.clone();
    let entities = served::entities_server::EntitiesServer::new(EntitiesService::new(
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
    // The store is open and readable, and the text model loaded, before we get here, so the API
    // is ready at once.
    health_reporter.set_serving::<Api>().await;
    health_reporter
        .set_service_status(STORE_HEALTH, status(true))
        .await;
    if config.text_model.is_some() {
        health_reporter
            .set_service_status(TEXT_MODEL_HEALTH, status(true))
            .await;
    }
    tokio::spawn(probe_readiness(
        store_probe,
        config.text_model.clone(),
        health_reporter,
        config.health_probe,
        probe_stopping,
    ));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let mut builder = tonic::transport::Server::builder().timeout(timeout);
    if let Some(tls) = config.tls.clone() {
        builder = builder.tls_config(tls)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tessera_indexes::{
        Change, EdgeStore, Entity, IndexError, Needing, Neighbor, Output, Page, Schema, Search,
        StoredSid, VectorSpec,
    };
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    /// A real store whose reads can be made to fail.
    #[derive(Debug)]
    struct Flaky {
        inner: EdgeStore,
        broken: AtomicBool,
    }

    impl Flaky {
        fn check(&self) -> Result<(), IndexError> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(IndexError::Engine("disk gone".into()));
            }
            Ok(())
        }
    }

    impl EntityStore for Flaky {
        fn schema(&self) -> &Schema {
            self.inner.schema()
        }
        fn upsert(&self, entities: &[Entity]) -> Result<(), IndexError> {
            self.inner.upsert(entities)
        }
        fn last_change(&self) -> Result<u64, IndexError> {
            self.inner.last_change()
        }
        fn changes(&self, after: u64, limit: usize) -> Result<Vec<Change>, IndexError> {
            self.inner.changes(after, limit)
        }
        fn get_selected(
            &self,
            ids: &[String],
            vectors: Option<&[String]>,
        ) -> Result<Vec<Option<Entity>>, IndexError> {
            self.inner.get_selected(ids, vectors)
        }
        fn search(&self, search: &Search<'_>) -> Result<Vec<Neighbor>, IndexError> {
            self.inner.search(search)
        }
        fn scan(&self, cursor: Option<&str>, limit: usize, v: bool) -> Result<Page, IndexError> {
            self.inner.scan(cursor, limit, v)
        }
        fn lookup_semantic_id(
            &self,
            prefix: &[u16],
            limit: usize,
        ) -> Result<Vec<(String, StoredSid)>, IndexError> {
            self.inner.lookup_semantic_id(prefix, limit)
        }
        fn needing(&self, current: &Output) -> Result<Needing, IndexError> {
            self.inner.needing(current)
        }
        fn count(&self) -> Result<usize, IndexError> {
            self.check()?;
            self.inner.count()
        }
        fn flush(&self) -> Result<(), IndexError> {
            self.inner.flush()
        }
        fn location(&self) -> String {
            self.inner.location()
        }
    }

    /// A text model whose calls can be made to fail, or to hang until released.
    #[derive(Debug, Default)]
    struct FlakyModel {
        broken: AtomicBool,
        hung: AtomicBool,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl TextEmbedder for FlakyModel {
        fn name(&self) -> &str {
            "flaky"
        }
        fn dimension(&self) -> usize {
            2
        }
        fn max_batch(&self) -> usize {
            8
        }
        fn is_placeholder(&self) -> bool {
            true
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, tessera_models::ModelError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            while self.hung.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.broken.load(Ordering::SeqCst) {
                return Err(tessera_models::ModelError::Device(
                    "the GPU fell off the bus".into(),
                ));
            }
            Ok(texts.iter().map(|_| vec![1.0, 0.0]).collect())
        }
    }

    async fn wait_for(
        health: &mut HealthClient<tonic::transport::Channel>,
        service: &str,
        want: ServingStatus,
    ) -> Result<(), Box<dyn std::error::Error>> {
        for _ in 0..300 {
            let request = HealthCheckRequest {
                service: service.into(),
            };
            if health.check(request).await?.get_ref().status == want as i32 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!("{service} never became {want:?}").into())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_follows_the_store_and_the_text_model()
    -> Result<(), Box<dyn std::error::Error>> {
        use ServingStatus::{NotServing, Serving};
        let dir = tempfile::tempdir()?;
        let schema = Schema::new([("v".to_string(), VectorSpec::dense(2, "m"))]);
        let store = Arc::new(Flaky {
            inner: EdgeStore::open(dir.path(), schema)?,
            broken: AtomicBool::new(false),
        });
        let model = Arc::new(FlakyModel::default());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let config = ServeConfig {
            health_probe: Duration::from_millis(20),
            text_model: Some(model.clone()),
            ..ServeConfig::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, store.clone(), config, async {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let mut health = HealthClient::new(channel);
        let api = "tessera.v1.Entities";
        // (store broken, model broken) -> (API, store, model)
        for ((store_broken, model_broken), (want_api, want_store, want_model)) in [
            ((false, false), (Serving, Serving, Serving)),
            ((true, false), (NotServing, NotServing, Serving)),
            ((false, false), (Serving, Serving, Serving)),
            ((false, true), (NotServing, Serving, NotServing)),
            ((false, false), (Serving, Serving, Serving)),
        ] {
            store.broken.store(store_broken, Ordering::SeqCst);
            model.broken.store(model_broken, Ordering::SeqCst);
            wait_for(&mut health, STORE_HEALTH, want_store).await?;
            wait_for(&mut health, TEXT_MODEL_HEALTH, want_model).await?;
            wait_for(&mut health, api, want_api).await?;
        }
        // A model that hangs: not serving once the probe's wait (1 s) is over, and no second
        // probe call is started while the first still hangs.
        model.hung.store(true, Ordering::SeqCst);
        let calls = model.calls.load(Ordering::SeqCst);
        wait_for(&mut health, TEXT_MODEL_HEALTH, NotServing).await?;
        wait_for(&mut health, api, NotServing).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // One hung call at most (without the guard, a new one would start every 20 ms).
        let more = model.calls.load(Ordering::SeqCst) - calls;
        assert!(more <= 1, "{more} probe calls started while the model hung");
        model.hung.store(false, Ordering::SeqCst);
        wait_for(&mut health, api, Serving).await?;
        let _ = stop.send(());
        server.await??;
        Ok(())
    }
}
