//! The `tessera` command line. `anyhow` lives here, at the edge; everything below returns typed
//! errors. Exit codes: 0 success, 1 some titles failed, 2 an error stopped the command.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,wasmtime=warn,cranelift_codegen=warn,qdrant_edge=error",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
