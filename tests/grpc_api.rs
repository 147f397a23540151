//! The ranker API over a real socket against the real `tessera serve`: Search (by vector, by a
//! stored title, by text, with filters and paging), ScanEntities (every title once, resumable),
//! bearer tokens, the change feed, and the status codes of bad requests; TLS, config files and
//! size and store-reader limits in `grpc_api_settings.rs`; packed vectors in `grpc_api_packed.rs`.

mod common;
#[path = "grpc_api_packed.rs"]
mod packed;
#[path = "grpc_api_settings.rs"]
mod settings;

use common::*;
use std::collections::HashSet;
use tessera::catalog;
use tessera::grpc::proto::{
    GetEntitiesRequest, ScanEntitiesRequest, SearchFilter, SearchRequest, Vector,
    WatchEntitiesRequest, entities_client::EntitiesClient, search_request::Query,
};
use tonic::Code;
use tonic::transport::Channel;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The text vector's name in the ingested stores: the same in every test, since the tiny model
/// (hence its identity) is the same.
static TEXT_VECTOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn text_vector_name() -> String {
    TEXT_VECTOR
        .get()
        .cloned()
        .unwrap_or_else(|| panic!("nothing ingested yet"))
}

/// Ingests the example catalog with a tiny model; returns (temp dir, data dir, model dir).
fn ingested() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let (data, model) = ingest_example(tmp.path());
    let name = text_vector(&data);
    assert_eq!(TEXT_VECTOR.get_or_init(|| name.clone()), &name);
    (tmp, data, model)
}

fn search(query: Query, limit: u32) -> SearchRequest {
    SearchRequest {
        vector_name: text_vector_name(),
        query: Some(query),
        filter: None,
        limit,
        offset: 0,
        with_vectors: false,
    }
}

async fn all_hits(
    client: &mut EntitiesClient<Channel>,
    request: SearchRequest,
) -> Result<Vec<String>, tonic::Status> {
    Ok(client
        .search(request)
        .await?
        .into_inner()
        .hits
        .into_iter()
        .map(|h| h.id)
        .collect())
}

#[test]
fn search_scan_and_bad_requests() -> TestResult {
    let (_tmp, data, model) = ingested();
    let titles = catalog::read_jsonl(&example_catalog())?;
    let with_synopsis: Vec<_> = titles
        .iter()
        .filter(|t| !t.synopsis.trim().is_empty())
        .collect();
    let first = with_synopsis.first().ok_or("no title with a synopsis")?;
    let server = serve_with(
        &data,
        &[std::ffi::OsStr::new("--text-model"), model.as_os_str()],
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut client = EntitiesClient::connect(format!("http://{}", server.addr)).await?;

        // By a stored title: its neighbours, never itself, best first.
        let response = client
            .search(search(Query::EntityId(first.id.clone()), 5))
            .await?
            .into_inner();
        assert_eq!(response.hits.len(), 5.min(with_synopsis.len() - 1));
        assert!(response.hits.iter().all(|h| h.id != first.id));
        assert!(response.hits.windows(2).all(|w| w[0].score >= w[1].score));

        // By text, embedded by the server with the model that made the vectors: a title's own
        // synopsis finds that title first, with cosine ~1.
        let response = client
            .search(search(Query::Text(first.synopsis.clone()), 3))
            .await?
            .into_inner();
        assert_eq!(response.hits[0].id, first.id);
        assert!(response.hits[0].score > 0.999, "{:?}", response.hits[0]);

        // By that title's stored vector, returned with the hits when asked for.
        let stored = client
            .get_entities(GetEntitiesRequest {
                ids: vec![first.id.clone()],
                vector_names: vec![text_vector_name()],
                min_tag_confidence: 0.0,
                packed_vectors: false,
            })
            .await?
            .into_inner();
        let vector = stored.results[0]
            .entity
            .as_ref()
            .and_then(|e| e.vectors.get(&text_vector_name()))
            .ok_or("no stored vector")?
            .clone();
        let mut by_vector = search(Query::Vector(vector.clone()), 2);
        by_vector.with_vectors = true;
        let response = client.search(by_vector).await?.into_inner();
        assert_eq!(response.hits[0].id, first.id);
        assert_eq!(
            response.hits[0].vector.as_ref().map(|v| v.values.len()),
            Some(vector.values.len())
        );

        // Filters narrow to exactly the matching titles; paging walks the same ranking.
        let year_min = 2015;
        let mut filtered = search(Query::Vector(vector.clone()), 100);
        filtered.filter = Some(SearchFilter {
            year_min: Some(year_min),
            languages: vec!["en".into()],
            ..Default::default()
        });
        let hits: HashSet<String> = all_hits(&mut client, filtered).await?.into_iter().collect();
        let expected: HashSet<String> = with_synopsis
            .iter()
            .filter(|t| t.year.is_some_and(|y| u32::from(y) >= year_min) && t.language == "en")
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(hits, expected);
        let everything = all_hits(&mut client, search(Query::Vector(vector.clone()), 100)).await?;
        let mut paged = Vec::new();
        for page in 0..everything.len().div_ceil(4) {
            let mut request = search(Query::Vector(vector.clone()), 4);
            request.offset = (page * 4) as u32;
            paged.extend(all_hits(&mut client, request).await?);
        }
        assert_eq!(paged, everything);

        // Bad searches: the right code, the field named.
        let code = |r: Result<Vec<String>, tonic::Status>| match r {
            Ok(hits) => panic!("accepted: {hits:?}"),
            Err(status) => (status.code(), status.message().to_string()),
        };
        let mut unknown = search(Query::Vector(vector.clone()), 3);
        unknown.vector_name = "poster".into();
        let (c, m) = code(all_hits(&mut client, unknown).await);
        assert_eq!(c, Code::InvalidArgument);
        assert!(
            m.starts_with("vector_name: unknown vector \"poster\""),
            "{m}"
        );
        let short = Query::Vector(Vector {
            values: vec![1.0],
            packed: Vec::new(),
        });
        let (c, m) = code(all_hits(&mut client, search(short, 3)).await);
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.contains("dimension"), "{m}");
        let mut bad_filter = search(Query::Vector(vector.clone()), 3);
        bad_filter.filter = Some(SearchFilter {
            year_min: Some(2020),
            year_max: Some(2010),
            ..Default::default()
        });
        let (c, m) = code(all_hits(&mut client, bad_filter).await);
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.contains("year_min 2020 is after year_max 2010"), "{m}");
        let (c, _) = code(all_hits(&mut client, search(Query::EntityId("nope".into()), 3)).await);
        assert_eq!(c, Code::NotFound);
        let (c, m) = code(all_hits(&mut client, search(Query::Vector(vector.clone()), 5000)).await);
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.starts_with("limit + offset"), "{m}");

        // Scan: every title exactly once over pages of 4; resuming from a cursor gives exactly
        // the rest.
        let mut stream = client
            .scan_entities(ScanEntitiesRequest {
                page_size: 4,
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut pages = Vec::new();
        while let Some(page) = stream.message().await? {
            assert!(page.entities.len() <= 4);
            pages.push(page);
        }
        let ids: Vec<String> = pages
            .iter()
            .flat_map(|p| p.entities.iter().map(|e| e.id.clone()))
            .collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!((ids.len(), unique.len()), (titles.len(), titles.len()));
        assert!(pages.last().is_some_and(|p| p.next_cursor.is_empty()));
        // A full scan carries vectors: exactly the titles with a synopsis have one.
        let has_synopsis: HashSet<&str> = with_synopsis.iter().map(|t| t.id.as_str()).collect();
        for entity in pages.iter().flat_map(|p| &p.entities) {
            assert_eq!(
                entity.vectors.contains_key(&text_vector_name()),
                has_synopsis.contains(entity.id.as_str()),
                "{}",
                entity.id
            );
        }
        let mut resumed = client
            .scan_entities(ScanEntitiesRequest {
                cursor: pages[0].next_cursor.clone(),
                page_size: 100,
                skip_vectors: true,
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut rest = Vec::new();
        while let Some(page) = resumed.message().await? {
            assert!(page.entities.iter().all(|e| e.vectors.is_empty()));
            rest.extend(page.entities.into_iter().map(|e| e.id));
        }
        assert_eq!(rest, ids[pages[0].entities.len()..]);
        let bad = client
            .scan_entities(ScanEntitiesRequest {
                cursor: "not-a-cursor".into(),
                ..Default::default()
            })
            .await;
        let status = match bad {
            Ok(mut s) => s
                .get_mut()
                .message()
                .await
                .err()
                .ok_or("bad cursor accepted")?,
            Err(status) => status,
        };
        assert_eq!(status.code(), Code::InvalidArgument);

        // A client that opens a scan and never reads it does not stop the server serving others.
        let _stalled = client
            .clone()
            .scan_entities(ScanEntitiesRequest {
                page_size: 1,
                ..Default::default()
            })
            .await?;
        let mut other = EntitiesClient::connect(format!("http://{}", server.addr)).await?;
        let got = other
            .get_entities(GetEntitiesRequest {
                ids: vec![first.id.clone()],
                vector_names: vec![],
                min_tag_confidence: 0.0,
                packed_vectors: false,
            })
            .await?;
        assert!(got.get_ref().results[0].found);
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    drop(server);

    // Without --text-model, text queries are refused with the reason.
    let server = serve(&data);
    runtime.block_on(async {
        let mut client = EntitiesClient::connect(format!("http://{}", server.addr)).await?;
        let status = client
            .search(search(Query::Text("a detective".into()), 3))
            .await
            .err()
            .ok_or("a text query without a text model was accepted")?;
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().contains("--text-model"),
            "{}",
            status.message()
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

#[test]
fn bearer_tokens_and_request_limits() -> TestResult {
    let (tmp, data, _model) = ingested();
    let tokens = tmp.path().join("tokens");
    std::fs::write(&tokens, "ranker-a:0123456789abcdef0123\n")?;
    let server = serve_with(
        &data,
        &[
            "--tokens-file".as_ref(),
            tokens.as_os_str(),
            "--max-request-bytes".as_ref(),
            "2048".as_ref(),
            "--metrics-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ],
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let channel = Channel::from_shared(format!("http://{}", server.addr))?
            .connect()
            .await?;
        let request = |token: Option<&str>, ids: Vec<String>| {
            let mut r = tonic::Request::new(GetEntitiesRequest {
                ids,
                vector_names: vec![],
                min_tag_confidence: 0.0,
                packed_vectors: false,
            });
            if let Some(t) = token
                && let Ok(v) = format!("Bearer {t}").parse()
            {
                r.metadata_mut().insert("authorization", v);
            }
            r
        };
        let mut client = EntitiesClient::new(channel.clone());
        let one = vec!["tt-0001".to_string()];
        for token in [None, Some("0123456789abcdef0124")] {
            let status = client
                .get_entities(request(token, one.clone()))
                .await
                .err()
                .ok_or("a call without the right token was served")?;
            assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
        }
        let ok = client
            .get_entities(request(Some("0123456789abcdef0123"), one.clone()))
            .await?;
        assert!(ok.get_ref().results[0].found);

        // Health stays open for load balancers.
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "tessera.v1.Entities".into(),
            })
            .await?;
        assert_eq!(
            status.get_ref().status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );

        // A request over the message limit is refused, and the server goes on serving.
        let many: Vec<String> = (0..500).map(|i| format!("title-{i:05}")).collect();
        let status = client
            .get_entities(request(Some("0123456789abcdef0123"), many))
            .await
            .err()
            .ok_or("an oversized request was accepted")?;
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        let ok = client
            .get_entities(request(Some("0123456789abcdef0123"), one.clone()))
            .await?;
        assert!(ok.get_ref().results[0].found);
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;

    // The metrics endpoint counted all of it.
    let metrics = scrape(server.metrics.as_deref().ok_or("no metrics endpoint")?);
    for line in [
        "tessera_grpc_requests_total{method=\"GetEntities\",code=\"OK\"} 2",
        "tessera_grpc_unauthenticated_total 2",
        "tessera_grpc_request_duration_seconds_count{method=\"GetEntities\"} 2",
        "tessera_grpc_in_flight 0",
        // tt-0001 was read once from the store, then answered from memory.
        "tessera_entity_cache_lookups_total{result=\"miss\"} 1",
        "tessera_entity_cache_lookups_total{result=\"hit\"} 1",
        "tessera_entity_cache_titles 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    let titles = catalog::read_jsonl(&example_catalog())?.len();
    assert!(
        metrics.contains(&format!("\ntessera_store_titles {titles}\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_store_read_duration_seconds_count 2"),
        "{metrics}"
    );
    drop(server);

    // A malformed tokens file stops the server before it listens, naming the entry.
    std::fs::write(&tokens, "ranker-a:short\n")?;
    let out = tessera()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg("--tokens-file")
        .arg(&tokens)
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("entry 1") && stderr.contains("shorter"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("short\n") || stderr.contains("shorter"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn the_change_feed_resumes_follows_and_ends_on_shutdown() -> TestResult {
    let (_tmp, data, _model) = ingested();
    let titles = catalog::read_jsonl(&example_catalog())?;
    let mut server = serve(&data);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut client = EntitiesClient::connect(format!("http://{}", server.addr)).await?;
        let read_all = |after_seq: u64| {
            let mut client = client.clone();
            async move {
                let mut stream = client
                    .watch_entities(WatchEntitiesRequest {
                        after_seq,
                        page_size: 4,
                        follow: false,
                    })
                    .await?
                    .into_inner();
                let mut changes = Vec::new();
                while let Some(message) = stream.message().await? {
                    assert!(message.changes.len() <= 4);
                    changes.extend(message.changes);
                }
                Ok::<_, tonic::Status>(changes)
            }
        };
        // After one ingest: every title once, created, by that run, numbered in order.
        let all = read_all(0).await?;
        assert_eq!(all.len(), titles.len());
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(all.iter().all(|c| c.what == ["created"]
            && c.run.starts_with("run-")
            && c.at_unix_ms > 1_700_000_000_000));
        let ids: HashSet<&str> = all.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), titles.len());
        // Resuming from a seq gives exactly the rest.
        let rest = read_all(all[5].seq).await?;
        assert_eq!(rest, all[6..].to_vec());

        // Following: the backlog, then the stream stays open and quiet.
        let mut followed = client
            .watch_entities(WatchEntitiesRequest {
                after_seq: all[all.len() - 2].seq,
                page_size: 0,
                follow: true,
            })
            .await?
            .into_inner();
        let first = followed
            .message()
            .await?
            .ok_or("a followed feed ended at once")?;
        assert_eq!(first.changes, all[all.len() - 1..].to_vec());
        let quiet =
            tokio::time::timeout(std::time::Duration::from_millis(1500), followed.message()).await;
        assert!(quiet.is_err(), "a followed feed sent or ended: {quiet:?}");

        // SIGTERM: the server ends open feeds and exits cleanly.
        let status = std::process::Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()?;
        assert!(status.success());
        let end = tokio::time::timeout(std::time::Duration::from_secs(20), followed.message())
            .await
            .map_err(|_| "the followed feed did not end on shutdown")?;
        assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = server.child.try_wait()? {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(exit.success(), "serve exited with {exit}");
    Ok(())
}
