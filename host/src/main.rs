//! The `tessera` command line. `anyhow` lives here, at the edge; everything below returns typed
//! errors. Exit codes: 0 success, 1 some titles failed, 2 an error stopped the command.

mod cli;
mod otel;

use clap::Parser;
use std::process::ExitCode;

/// How long candle's CPU worker threads spin between ops before parking. candle's default (25 000
/// spins) keeps an idle worker busy on one core while gemm's threads want every core; on the
/// 2-core CI machine 100 spins made MiniLM 24–32% faster at batch 32–128 (BENCHMARKS.md).
const CANDLE_SPIN_LIMIT: &str = "100";

/// Sets candle's thread-pool tuning unless the operator already chose a value: the spin limit
/// above, and `RAYON_NUM_THREADS` pinned to the thread count candle would pick anyway, so that
/// candle stops re-reading /proc/cpuinfo on every matmul ([`tessera_models::cpu_threads`];
/// MiniLM at batch 1 went from 95–117 to 133–151 sentences/s on the 2-core CI machine). Rayon's
/// global pool, which gemm's threads run on, gets the same count.
#[allow(unsafe_code)]
fn tune_candle_threads() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // SAFETY: called first thing in `main`, before this process starts any thread, so no
        // other thread can be reading the environment concurrently.
        unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT) };
    }
    // candle treats an empty, zero or unparsable value as unset (and re-reads /proc/cpuinfo).
    let chosen = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > 0);
    if !chosen {
        let threads = tessera_models::cpu_threads().to_string();
        // SAFETY: as above; `cpu_threads` reads files and starts no thread.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads) };
    }
}

/// Applies `--config FILE` by setting the environment variables of the flags it names.
#[allow(unsafe_code)]
fn apply_config_file() -> anyhow::Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    for (name, value) in cli::config_file::assignments(&argv)? {
        // SAFETY: called from `main` before any thread starts, like `tune_candle_threads`.
        unsafe { std::env::set_var(name, value) };
    }
    Ok(())
}

/// Exit status for output cut off by a closed pipe: what a shell reports for a process killed by
/// SIGPIPE (128 + 13).
const BROKEN_PIPE_EXIT: i32 = 141;

/// Makes `tessera … | head` end quietly. Rust ignores SIGPIPE, so printing to a closed pipe
/// panics ("failed printing to stdout"); that panic, and only that one, becomes a silent exit
/// with [`BROKEN_PIPE_EXIT`]. The signal itself stays ignored: sockets and child pipes keep
/// getting errors they handle instead of a signal that would kill the server.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    tune_candle_threads();
    quiet_broken_pipe();
    if let Err(error) = apply_config_file() {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    let args = cli::Args::parse();
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,wasmtime=warn,cranelift_codegen=warn,qdrant_edge=error",
        )
    });
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let (otel, telemetry) = match otel::start() {
        Ok(Some((tracer, telemetry))) => {
            let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_OTEL_FILTER")
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(
                        "tessera=debug,tessera_models=debug,tessera_indexes=debug",
                    )
                });
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(filter);
            (Some(layer), Some(telemetry))
        }
        Ok(None) => (None, None),
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::registry().with(logs).with(otel).init();
    let code = run(args);
    // Flushes the spans not yet exported.
    drop(telemetry);
    code
}

fn run(args: cli::Args) -> ExitCode {
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
