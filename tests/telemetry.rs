//! OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, `tessera serve` exports the spans of the
//! calls it serves over OTLP/gRPC. The collector is an in-process tonic server implementing
//! the OTLP trace service.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera::grpc::proto::{GetEntitiesRequest, entities_client::EntitiesClient};
use tokio_stream::wrappers::TcpListenerStream;

/// (service.name, span name) of every span received.
#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<(String, String)>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    seen.push((service.clone(), span.name));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[test]
fn served_calls_are_exported_as_otlp_spans() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let (data, _model) = ingest_example(tmp.path());
    let runtime = tokio::runtime::Runtime::new()?;
    let collector = Collector::default();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let collector_addr = listener.local_addr()?;
    let service = collector.clone();
    runtime.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(service))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });

    let mut child = tessera()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        )
        .env("OTEL_SERVICE_NAME", "tessera-test")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let addr = {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("tessera: serving gRPC on ")
                    .and_then(|r| r.split_whitespace().next().map(str::to_string))
            })
            .ok_or("serve did not report its address")?
    };
    runtime.block_on(async {
        let mut client = EntitiesClient::connect(format!("http://{addr}")).await?;
        for _ in 0..3 {
            client
                .get_entities(GetEntitiesRequest {
                    ids: vec!["tt-0001".into()],
                    vector_names: vec![],
                    min_tag_confidence: 0.0,
                    packed_vectors: false,
                })
                .await?;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    // A clean stop flushes the spans not yet exported.
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    assert!(status.success(), "serve exited with {status}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = collector
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let calls = seen
            .iter()
            .filter(|(service, name)| service == "tessera-test" && name == "get_entities")
            .count();
        if calls == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected 3 get_entities spans from tessera-test, got {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
