//! `tessera serve`: the gRPC API over an existing store.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tessera::grpc::{self, ServeConfig};
use tessera_indexes::{EdgeStore, EntityStore};

/// Flags of `tessera serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Data directory (the store is DATA/store).
    #[arg(long, env = "TESSERA_DATA", default_value = "tessera-data")]
    pub data: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Most ids per GetEntities call.
    #[arg(long, env = "TESSERA_MAX_IDS_PER_CALL", default_value_t = 1000)]
    pub max_ids_per_call: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(EdgeStore::open_existing(&args.data.join("store"))?);
    serve_store(
        store,
        args.listen,
        ServeConfig {
            max_ids_per_call: args.max_ids_per_call,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Serves `store` on `listen` until Ctrl-C (or SIGTERM).
pub fn serve_store(
    store: Arc<dyn EntityStore>,
    listen: SocketAddr,
    config: ServeConfig,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to find the port.
        println!("tessera: serving gRPC on {addr} (Ctrl-C to stop)");
        use std::io::Write;
        std::io::stdout().flush()?;
        grpc::serve(listener, store, config, shutdown_signal())
            .await
            .context("gRPC server")?;
        eprintln!("tessera: stopped");
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
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
