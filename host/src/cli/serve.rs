//! `tessera serve`: the gRPC API over an existing store.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tessera::grpc::{self, ServeConfig, Tokens};
use tessera::text_model;
use tessera_indexes::EntityStore;
use tessera_models::TextEmbedder as _;

/// Flags of `tessera serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Data directory (the store is DATA/store).
    #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
    pub data: PathBuf,
    #[command(flatten)]
    pub store: super::store_cmd::StoreArg,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Text model directory for text queries in Search; it must be the model that made the
    /// searched vector. Without it, text queries are refused.
    #[arg(long, env = "TESSERA_TEXT_MODEL")]
    pub text_model: Option<PathBuf>,
    /// Device for the text model.
    #[arg(long, env = "TESSERA_DEVICE", default_value = "auto")]
    pub device: tessera_models::DeviceChoice,
}

/// How the gRPC API is served: limits, tokens, TLS and the metrics endpoint (`tessera serve`,
/// and `tessera ingest --watch --serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub limits: LimitArgs,
    /// File of accepted bearer tokens, one `NAME:TOKEN` per line; without it (and without
    /// TESSERA_TOKENS) the API is open to anyone who can reach the address.
    #[arg(long, env = "TESSERA_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "TESSERA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "TESSERA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS. Needs --tls-cert.
    #[arg(long, env = "TESSERA_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`); port 0 picks a free port
    /// (printed on stdout). Off unless given.
    #[arg(long, env = "TESSERA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl ApiArgs {
    /// The server configuration (limits, tokens, TLS) and metrics endpoint these flags ask
    /// for; without a text model.
    pub fn config(&self) -> anyhow::Result<(ServeConfig, Option<MetricsEndpoint>)> {
        let mut config = self.limits.config();
        config.tokens = tokens(self.tokens_file.as_deref())?;
        config.tls = tls(self)?;
        if config.tokens.is_none() {
            eprintln!("tessera: warning: no bearer tokens configured; the API is open");
        }
        let metrics = self.metrics_listen.map(|listen| MetricsEndpoint {
            listen,
            queue_depth: None,
        });
        Ok((config, metrics))
    }
}

/// Request limits of the gRPC server.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Most ids per GetEntities call (also the largest ScanEntities page).
    #[arg(long, env = "TESSERA_MAX_IDS_PER_CALL", default_value_t = 1000)]
    pub max_ids_per_call: usize,
    /// Most hits (limit + offset) per Search.
    #[arg(long, env = "TESSERA_MAX_SEARCH_LIMIT", default_value_t = 1000)]
    pub max_search_limit: usize,
    /// Most calls handled at once; more are answered RESOURCE_EXHAUSTED.
    #[arg(long, env = "TESSERA_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,
    /// Store reads run at once; calls beyond wait their turn (0: one per core for the embedded
    /// store, 64 for a Qdrant server, whose reads mostly wait on the network).
    #[arg(long, env = "TESSERA_STORE_READERS", default_value_t = 0)]
    pub store_readers: usize,
    /// MiB of titles kept in memory for GetEntities and Search by title, kept current by the
    /// store's change feed (0: none; never used for a Qdrant server, which other processes may
    /// write).
    #[arg(long, env = "TESSERA_ENTITY_CACHE_MB", default_value_t = tessera::grpc::DEFAULT_ENTITY_CACHE_MB)]
    pub entity_cache_mb: usize,
    /// Largest request message, in bytes.
    #[arg(long, env = "TESSERA_MAX_REQUEST_BYTES", default_value_t = 4 << 20)]
    pub max_request_bytes: usize,
    /// Largest response message, in bytes (bigger GetEntities answers are refused with
    /// RESOURCE_EXHAUSTED; scans send smaller pages).
    #[arg(long, env = "TESSERA_MAX_RESPONSE_BYTES", default_value_t = 64 << 20)]
    pub max_response_bytes: usize,
    /// Longest a call may run, in seconds, whatever deadline the client set.
    #[arg(long, env = "TESSERA_CALL_TIMEOUT_SECS", default_value_t = 30)]
    pub call_timeout_secs: u64,
}

impl LimitArgs {
    /// A server configuration with these limits, no tokens and no text model.
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            max_ids_per_call: self.max_ids_per_call.max(1),
            max_search_limit: self.max_search_limit.max(1),
            max_in_flight: self.max_in_flight.max(1),
            store_readers: self.store_readers,
            entity_cache_bytes: self.entity_cache_mb.saturating_mul(1 << 20),
            max_request_bytes: self.max_request_bytes,
            max_response_bytes: self.max_response_bytes.max(1024),
            call_timeout: Duration::from_secs(self.call_timeout_secs.max(1)),
            ..ServeConfig::default()
        }
    }
}

/// The accepted tokens: from `file`, else from TESSERA_TOKENS (`NAME:TOKEN,NAME:TOKEN`), else
/// none.
pub fn tokens(file: Option<&Path>) -> anyhow::Result<Option<Arc<Tokens>>> {
    let tokens = match (file, std::env::var("TESSERA_TOKENS")) {
        (Some(file), _) => Tokens::read(file)?,
        (None, Ok(text)) => Tokens::parse(&text, "TESSERA_TOKENS")?,
        (None, Err(_)) => return Ok(None),
    };
    if tokens.is_empty() {
        bail!(
            "the token list is empty: every call would be refused; remove it to serve without auth"
        );
    }
    eprintln!(
        "tessera: bearer tokens required; clients: {}",
        tokens.names().join(", ")
    );
    Ok(Some(Arc::new(tokens)))
}

fn read_pem(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        bail!(
            "{what} {}: not a PEM file (no -----BEGIN line)",
            path.display()
        );
    }
    Ok(bytes)
}

/// The TLS settings the flags ask for.
fn tls(args: &ApiArgs) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let identity = Identity::from_pem(
        read_pem(cert, "TLS certificate")?,
        read_pem(key, "TLS key")?,
    );
    let mut config = ServerTlsConfig::new().identity(identity);
    match &args.tls_client_ca {
        Some(ca) => {
            config = config.client_ca_root(Certificate::from_pem(read_pem(ca, "client CA")?));
            eprintln!(
                "tessera: mutual TLS: clients need a certificate from {}",
                ca.display()
            );
        }
        None => eprintln!("tessera: TLS with {}", cert.display()),
    }
    Ok(Some(config))
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store = args.store.open_existing(&args.data)?;
    let (mut config, mut metrics) = args.api.config()?;
    if let Some(dir) = &args.text_model {
        let name = text_model::model_name(&text_model::TextSource::Dir(dir.clone()));
        let model = text_model::load_query_model(dir, &name, args.device)
            .with_context(|| format!("loading text model from {}", dir.display()))?;
        eprintln!(
            "tessera: text queries embedded by {} ({})",
            model.name(),
            dir.display()
        );
        if let Some(endpoint) = &mut metrics {
            let queue = model.clone();
            endpoint.queue_depth = Some(Arc::new(move || queue.depth()));
        }
        config.text_model = Some(model);
    }
    serve_store(store, args.listen, config, metrics)?;
    Ok(ExitCode::SUCCESS)
}

/// The Prometheus endpoint beside the API.
pub struct MetricsEndpoint {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The text model's queue depth, when there is one.
    pub queue_depth: Option<Arc<dyn Fn() -> usize + Send + Sync>>,
}

/// Serves `store` on `listen` (and metrics, when asked) until Ctrl-C (or SIGTERM), then drains
/// in-flight calls.
pub fn serve_store(
    store: Arc<dyn EntityStore>,
    listen: SocketAddr,
    config: ServeConfig,
    metrics: Option<MetricsEndpoint>,
) -> anyhow::Result<()> {
    serve_bound(store, bind(listen)?, config, metrics, None)
}

/// Binds the API's address; binding apart from serving lets a caller fail before it starts
/// other work (`ingest --watch --serve`).
pub fn bind(listen: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(listen).with_context(|| format!("binding {listen}"))
}

/// [`serve_store`] on a socket bound already; it also stops (draining calls in flight) once
/// `stop_flag` is set, when given.
pub fn serve_bound(
    store: Arc<dyn EntityStore>,
    listener: std::net::TcpListener,
    config: ServeConfig,
    metrics: Option<MetricsEndpoint>,
    stop_flag: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        listener
            .set_nonblocking(true)
            .context("making the API socket non-blocking")?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("handing the API socket to the runtime")?;
        let addr = listener.local_addr()?;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        if let Some(endpoint) = metrics {
            let metrics_listener = tokio::net::TcpListener::bind(endpoint.listen)
                .await
                .with_context(|| format!("binding {} for metrics", endpoint.listen))?;
            println!(
                "tessera: metrics on http://{}/metrics",
                metrics_listener.local_addr()?
            );
            let mut stopping = stopping.clone();
            tokio::spawn(grpc::metrics::serve_metrics(
                metrics_listener,
                config.metrics.clone(),
                store.clone(),
                endpoint.queue_depth,
                async move {
                    let _ = stopping.wait_for(|s| *s).await;
                },
            ));
        }
        // Tests and scripts read this line (printed last, after the metrics line) to find the
        // port.
        println!("tessera: serving gRPC on {addr} (Ctrl-C to stop)");
        use std::io::Write;
        std::io::stdout().flush()?;
        let flag = stop_flag;
        let shutdown = async move {
            let flagged = async {
                match flag {
                    Some(flag) => {
                        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = flagged => {}
            }
            let _ = stop.send(true);
        };
        grpc::serve(listener, store, config, shutdown)
            .await
            .context("gRPC server")?;
        eprintln!("tessera: stopped");
        anyhow::Ok(())
    })
}

pub(super) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
