//! OpenTelemetry tracing for the binary: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the
//! `tracing` spans (gRPC calls, plugin calls, model batches; filtered by `TESSERA_OTEL_FILTER`,
//! default `tessera=debug,tessera_models=debug,tessera_indexes=debug`) are exported over
//! OTLP/gRPC in batches, with `service.name` from `OTEL_SERVICE_NAME` (default `tessera`).

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// Keeps the exporter running; dropping it flushes the spans not yet sent.
pub struct Telemetry {
    provider: SdkTracerProvider,
    // The tonic client lives on this runtime; it must outlive the provider's last export.
    _runtime: tokio::runtime::Runtime,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("tessera: exporting the last traces failed: {e}");
        }
    }
}

/// The tracer to export spans with, when an OTLP endpoint is configured.
pub fn start() -> anyhow::Result<Option<(SdkTracer, Telemetry)>> {
    let Some(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
    else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otel-export")
        .enable_all()
        .build()
        .context("starting the trace exporter's runtime")?;
    let exporter = runtime
        .block_on(async {
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
        })
        .with_context(|| format!("OTLP trace exporter for {endpoint}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "tessera".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder_empty().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("tessera");
    Ok(Some((
        tracer,
        Telemetry {
            provider,
            _runtime: runtime,
        },
    )))
}
