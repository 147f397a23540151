//! Semantic IDs through the real binary: ingest, `sid train`, `sid stats`, `sid lookup`, IDs for
//! titles ingested later, and the refusals (too few titles, a corrupt codebook).

mod common;

use common::*;
use std::collections::HashSet;
use std::path::Path;
use tessera::grpc::proto::{
    GetEntitiesRequest, LookupSemanticIdsRequest, SemanticIdQuery, entities_client::EntitiesClient,
};
use tessera_indexes::{EdgeStore, EntityStore};

const WORDS: [&str; 16] = [
    "detective",
    "harbour",
    "dragon",
    "spaceship",
    "wedding",
    "orchestra",
    "desert",
    "heist",
    "vampire",
    "kitchen",
    "election",
    "mountain",
    "robot",
    "lighthouse",
    "football",
    "ballet",
];

/// A catalog of `n` titles whose synopses mix a few words each.
fn catalog(dir: &Path, name: &str, first: usize, n: usize) -> std::path::PathBuf {
    let lines: Vec<String> = (first..first + n)
        .map(|i| {
            let synopsis = format!(
                "A story about a {} and a {} near the {}.",
                WORDS[i % 16],
                WORDS[(i / 16) % 16],
                WORDS[(i * 7 + 3) % 16]
            );
            serde_json::json!({"id": format!("t{i:04}"), "name": format!("Title {i}"), "synopsis": synopsis, "language": "en"})
                .to_string()
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    path
}

fn ingest(data: &Path, model: &Path, catalog: &Path) -> std::process::Output {
    ingest_command(catalog, data, model)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn train_stats_lookup_and_ids_at_ingest() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let first = catalog(tmp.path(), "a.jsonl", 0, 120);
    assert!(ingest(&data, &model, &first).status.success());

    // Too few titles for the default 256 codes: a clear refusal, nothing written.
    let out = tessera()
        .args(["sid", "train", "--data"])
        .arg(&data)
        .output()?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("120 vectors cannot train 256 codes"),
        "{}",
        text(&out.stderr)
    );
    assert!(!data.join("semantic-ids.sid").exists());

    let out = run_ok(
        tessera()
            .args(["sid", "train", "--levels", "2", "--codes", "8", "--data"])
            .arg(&data),
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("semantic IDs: 120 titles, 120 changed"),
        "{stdout}"
    );

    let out = run_ok(
        tessera()
            .args(["sid", "stats", "--json", "--data"])
            .arg(&data),
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(stats["titles"], 120);
    assert_eq!(stats["duplicate_ids"], 0);
    assert_eq!(stats["titles_without_current_id"], 0);
    assert_eq!(stats["levels"].as_array().map(Vec::len), Some(2));

    // Every title is found by its full ID and by its first code.
    let ids: Vec<(String, Vec<u16>)> = {
        let store = EdgeStore::open_existing(&data.join("store"))?;
        let all: Vec<String> = (0..120).map(|i| format!("t{i:04}")).collect();
        store
            .get(&all)?
            .into_iter()
            .flatten()
            .map(|e| (e.id, e.semantic_id.map(|s| s.id.0).unwrap_or_default()))
            .collect()
    };
    assert_eq!(ids.len(), 120);
    let (title, codes) = &ids[0];
    assert_eq!(codes.len(), 3);
    let full: Vec<String> = codes.iter().map(u16::to_string).collect();
    let out = run_ok(
        tessera()
            .args(["sid", "lookup", &full.join("-"), "--data"])
            .arg(&data),
    );
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(title.as_str()), "{lines:?}");
    let out = run_ok(
        tessera()
            .args(["sid", "lookup", &full[0], "--data"])
            .arg(&data),
    );
    let expected = ids.iter().filter(|(_, c)| c[0] == codes[0]).count();
    assert_eq!(text(&out.stdout).lines().count(), expected);
    let out = tessera()
        .args(["sid", "lookup", "1-x", "--data"])
        .arg(&data)
        .output()?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid semantic ID"),
        "{}",
        text(&out.stderr)
    );

    // Titles ingested later get IDs from the codebook, unique against the stored ones.
    let second = catalog(tmp.path(), "b.jsonl", 120, 30);
    let out = ingest(&data, &model, &second);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = EdgeStore::open_existing(&data.join("store"))?;
    let all: Vec<String> = (0..150).map(|i| format!("t{i:04}")).collect();
    let sids: Vec<Vec<u16>> = store
        .get(&all)?
        .into_iter()
        .flatten()
        .filter_map(|e| e.semantic_id.map(|s| s.id.0))
        .collect();
    assert_eq!(sids.len(), 150, "every title has an ID");
    assert_eq!(
        sids.iter().collect::<HashSet<_>>().len(),
        150,
        "IDs are unique"
    );
    drop(store);

    // Rankers decode semantic IDs over gRPC: a full ID names its title, a prefix its cell, an
    // unknown ID matches nothing without failing the call.
    {
        let server = serve(&data);
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async {
            let mut client = EntitiesClient::connect(format!("http://{}", server.addr)).await?;
            let query = |codes: &[u16]| SemanticIdQuery {
                codes: codes.iter().map(|&c| u32::from(c)).collect(),
            };
            let response = client
                .lookup_semantic_ids(LookupSemanticIdsRequest {
                    queries: vec![query(codes), query(&codes[..1]), query(&[9999, 9999, 9999])],
                    limit_per_query: 0,
                })
                .await?
                .into_inner();
            assert_eq!(response.results.len(), 3);
            let full = &response.results[0].matches;
            assert_eq!(full.len(), 1);
            assert_eq!(&full[0].id, title);
            let wanted: Vec<u32> = codes.iter().map(|&c| u32::from(c)).collect();
            assert_eq!(full[0].semantic_id, wanted);
            assert!(full[0].codebook.starts_with("sid-"));
            let in_cell = sids.iter().filter(|c| c[0] == codes[0]).count();
            assert_eq!(response.results[1].matches.len(), in_cell.min(100));
            assert!(response.results[2].matches.is_empty());
            let bad = client
                .lookup_semantic_ids(LookupSemanticIdsRequest {
                    queries: vec![SemanticIdQuery {
                        codes: vec![70_000],
                    }],
                    limit_per_query: 0,
                })
                .await
                .err()
                .ok_or("a code over 65535 was accepted")?;
            assert_eq!(bad.code(), tonic::Code::InvalidArgument);
            let got = client
                .get_entities(GetEntitiesRequest {
                    ids: vec![title.clone()],
                    vector_names: vec![],
                    min_tag_confidence: 0.0,
                    packed_vectors: false,
                })
                .await?
                .into_inner();
            let entity = got.results[0].entity.as_ref().ok_or("not found")?;
            assert_eq!(entity.semantic_id, wanted);
            Ok::<(), Box<dyn std::error::Error>>(())
        })?;
    }

    // A corrupt codebook stops ingest with a reason instead of storing titles without IDs.
    let path = data.join("semantic-ids.sid");
    let mut bytes = std::fs::read(&path)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes)?;
    let out = ingest(&data, &model, &second);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("codebook cannot be used") && stderr.contains("corrupt file"),
        "{stderr}"
    );
    Ok(())
}
