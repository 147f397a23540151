//! A ranker's view of Tessera, in Rust: fetch titles' vectors in one batch, find similar titles,
//! and read the change feed — with a bearer token and a deadline on every call.
//!
//! ```text
//! cargo run -p tessera --example ranker_client -- http://127.0.0.1:50051 tt-0001 tt-0002
//! TESSERA_TOKEN=… cargo run -p tessera --example ranker_client -- http://host:50051 tt-0001
//! ```

use std::time::Duration;
use tessera::grpc::proto::{
    GetEntitiesRequest, GetSchemaRequest, SearchRequest, WatchEntitiesRequest,
    entities_client::EntitiesClient, search_request::Query,
};
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;

/// Every call gets a deadline: a call without one waits forever on a server that hangs.
const DEADLINE: Duration = Duration::from_secs(5);

/// A request with the deadline and, when given, the bearer token.
fn request<T>(
    message: T,
    token: Option<&MetadataValue<tonic::metadata::Ascii>>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(DEADLINE);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", token.clone());
    }
    request
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let ids: Vec<String> = args.collect();
    let token = match std::env::var("TESSERA_TOKEN") {
        Ok(t) => Some(format!("Bearer {t}").parse::<MetadataValue<_>>()?),
        Err(_) => None,
    };
    // One channel per process, shared by all calls. A 100-title batch of 384-d vectors is
    // ~160 KB, so open a wider HTTP/2 window than the 64 KB default.
    let channel = Endpoint::from_shared(addr)?
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(8 << 20))
        .connect()
        .await?;
    let mut client = EntitiesClient::new(channel);

    // Batch lookup: one result per id, in order; unknown ids are found = false.
    let got = client
        .get_entities(request(
            // Fields left out take their zero value, which the API keeps meaning "as before"
            // when fields are added (entities.proto's compatibility rules): a client written
            // this way keeps compiling against a newer copy of the proto.
            GetEntitiesRequest {
                ids: ids.clone(),
                min_tag_confidence: 0.5,
                ..Default::default()
            },
            token.as_ref(),
        ))
        .await?
        .into_inner();
    for result in &got.results {
        match &result.entity {
            Some(e) => {
                let vectors: Vec<String> = e
                    .vectors
                    .iter()
                    .map(|(name, v)| format!("{name}[{}]", v.values.len()))
                    .collect();
                println!("{} — {}: {}", e.id, e.name, vectors.join(", "));
            }
            None => println!("{}: not found", result.id),
        }
    }

    // The store's vectors are named after their model and its revision
    // (`text/all-MiniLM-L6-v2@c9745ed1d9f2`): read the names rather than hard-coding them.
    let schema = client
        .get_schema(request(GetSchemaRequest::default(), token.as_ref()))
        .await?
        .into_inner();
    for v in &schema.vectors {
        println!(
            "vector {} ({}, {}-d, {})",
            v.name, v.kind, v.dimension, v.model
        );
    }
    let text = schema
        .vectors
        .iter()
        .find(|v| v.modality == "text" && v.kind == "dense");

    // Similar titles to the first one, by its stored text vector.
    if let (Some(first), Some(text)) = (ids.first(), text) {
        let hits = client
            .search(request(
                SearchRequest {
                    vector_name: text.name.clone(),
                    query: Some(Query::EntityId(first.clone())),
                    limit: 5,
                    ..Default::default()
                },
                token.as_ref(),
            ))
            .await?
            .into_inner()
            .hits;
        for hit in hits {
            println!("  like {first}: {} ({:.3})", hit.id, hit.score);
        }
    }

    // The change feed so far (a nearline consumer would keep `after_seq` and follow).
    let mut feed = client
        .watch_entities(request(WatchEntitiesRequest::default(), token.as_ref()))
        .await?
        .into_inner();
    let (mut changes, mut last) = (0, 0);
    while let Some(message) = feed.message().await? {
        changes += message.changes.len();
        last = message.changes.last().map_or(last, |c| c.seq);
    }
    println!("change feed: {changes} titles changed, resume after seq {last}");
    Ok(())
}
