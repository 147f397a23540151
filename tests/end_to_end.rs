//! End to end through every real layer: the catalog, the real wasm plugin in the sandbox, the
//! candle model, qdrant-edge on disk, and gRPC over a real socket, all through the real binary.

mod common;
#[path = "end_to_end_models.rs"]
mod models;

use std::path::Path;

use common::*;
use std::collections::HashMap;
use tessera::catalog;
use tessera::grpc::proto::{GetEntitiesRequest, GetSchemaRequest, entities_client::EntitiesClient};
use tessera_indexes::{EdgeStore, EntityStore};
use tessera_models::{Device, SentenceEncoder, TextEmbedder};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn ingest(data: &std::path::Path, model: &std::path::Path) -> String {
    let output = run_ok(&mut ingest_command(&example_catalog(), data, model));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn catalog_through_plugin_model_store_and_grpc() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let titles = catalog::read_jsonl(&example_catalog())?;
    let stdout = ingest(&data, &model);
    assert!(
        stdout.contains(&format!("{0} of {0} titles stored, 0 failed", titles.len())),
        "{stdout}"
    );

    let server = serve(&data);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let endpoint = format!("http://{}", server.addr);
        let channel = tonic::transport::Channel::from_shared(endpoint.clone())?
            .connect()
            .await?;
        let mut health = HealthClient::new(channel);
        let status = health
            .check(HealthCheckRequest {
                service: "tessera.v1.Entities".into(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);

        let mut client = EntitiesClient::connect(endpoint).await?;
        // The schema names the plugin's vector after the model's identity: the directory's
        // name and a digest of its files.
        let identity = tessera_models::identity::identity("tiny-model", &model)?;
        let text_vector = format!("text/{identity}");
        let schema = client.get_schema(GetSchemaRequest {}).await?.into_inner();
        let listed: Vec<(&str, &str, &str, u32, &str)> = schema
            .vectors
            .iter()
            .map(|v| {
                let (name, modality, model) =
                    (v.name.as_str(), v.modality.as_str(), v.model.as_str());
                (name, modality, model, v.dimension, v.kind.as_str())
            })
            .collect();
        let dim = u32::try_from(SentenceEncoder::load(&model, "tiny", &Device::Cpu)?.dimension())?;
        assert_eq!(
            listed,
            [(
                text_vector.as_str(),
                "text",
                identity.as_str(),
                dim,
                "dense"
            )]
        );
        assert!(schema.fusion.is_empty());
        let mut ids: Vec<String> = titles.iter().map(|t| t.id.clone()).collect();
        ids.push("no-such-title".into());
        let response = client
            .get_entities(GetEntitiesRequest {
                ids: ids.clone(),
                vector_names: vec![],
                min_tag_confidence: 0.0,
                packed_vectors: false,
            })
            .await?
            .into_inner();
        assert_eq!(response.results.len(), ids.len());
        let last = response.results.last().ok_or("no results")?;
        assert!(
            last.id == "no-such-title" && !last.found && last.entity.is_none(),
            "unknown id is a per-item not-found"
        );

        // The vectors served must be exactly what the model computes directly.
        let encoder = SentenceEncoder::load(&model, "tiny", &Device::Cpu)?;
        let mut checked = 0;
        let mut posters = 0;
        for (title, result) in titles.iter().zip(&response.results) {
            assert_eq!(result.id, title.id, "results come back in request order");
            let entity = result.entity.as_ref().ok_or("found entity missing")?;
            assert!(result.found);
            assert_eq!(entity.name, title.name);
            // The store's times: first stored, last changed (here the same write).
            assert!(
                entity.created_unix_ms > 1_700_000_000_000,
                "{}",
                entity.created_unix_ms
            );
            assert_eq!(entity.updated_unix_ms, entity.created_unix_ms);
            // Each asset as the run read it: its catalog kind and URI, and its content's sha256.
            let assets: Vec<(&str, &str, String)> = title
                .assets
                .iter()
                .map(|a| {
                    // A file the run could not read is served with an empty sha256.
                    let sha = std::fs::read(&a.path)
                        .map(|bytes| tessera::manifest::sha256_hex(&bytes))
                        .unwrap_or_default();
                    (a.kind.as_str(), a.uri.as_str(), sha)
                })
                .collect();
            let served: Vec<(&str, &str, String)> = entity
                .assets
                .iter()
                .map(|a| (a.kind.as_str(), a.uri.as_str(), a.sha256.clone()))
                .collect();
            assert_eq!(served, assets, "{}", title.id);
            posters += served
                .iter()
                .filter(|(kind, _, _)| *kind == "poster")
                .count();
            let tags: HashMap<&str, Option<&str>> = entity
                .tags
                .iter()
                .map(|t| (t.name.as_str(), t.value.as_deref()))
                .collect();
            assert!(
                entity
                    .tags
                    .iter()
                    .all(|t| t.plugin == "synopsis-embedder" && !t.plugin_version.is_empty())
            );
            if title.synopsis.trim().is_empty() {
                assert!(tags.contains_key("missing-synopsis"));
                assert!(entity.vectors.is_empty());
                continue;
            }
            assert!(tags.contains_key("synopsis-length"), "{:?}", entity.tags);
            let direct = encoder.embed(&[title.synopsis.trim()])?.remove(0);
            let served = &entity
                .vectors
                .get(&text_vector)
                .ok_or("no synopsis vector")?
                .values;
            let diff = max_abs_diff(&direct, served);
            assert!(diff < 1e-5, "{}: max abs diff {diff}", title.id);
            checked += 1;
            if matches!(title.language.as_str(), "fr" | "es" | "de") {
                assert_eq!(
                    tags.get("language").copied().flatten(),
                    Some(title.language.as_str()),
                    "{}: {:?}",
                    title.id,
                    entity.tags
                );
            }
        }
        assert!(
            checked >= 12,
            "only {checked} titles had vectors to compare"
        );
        let in_catalog = titles
            .iter()
            .flat_map(|t| &t.assets)
            .filter(|a| a.kind == "poster")
            .count();
        assert!(posters >= 12 && posters == in_catalog, "{posters} posters");

        // Bad input is INVALID_ARGUMENT, not a crash, and the server keeps serving.
        let bad = client
            .get_entities(GetEntitiesRequest {
                ids: vec!["x".into()],
                vector_names: vec!["poster".into()],
                min_tag_confidence: 0.0,
                packed_vectors: false,
            })
            .await
            .err()
            .ok_or("unknown vector name was accepted")?;
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(
            bad.message().contains("unknown vector \"poster\""),
            "{}",
            bad.message()
        );
        let again = client
            .get_entities(GetEntitiesRequest {
                ids: vec![titles[0].id.clone()],
                vector_names: vec![text_vector.clone()],
                min_tag_confidence: 0.9,
                packed_vectors: false,
            })
            .await?;
        let entity = again
            .into_inner()
            .results
            .remove(0)
            .entity
            .ok_or("missing")?;
        assert!(entity.tags.iter().all(|t| t.confidence >= 0.9));
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    drop(server);

    // Re-ingesting overwrites: same count, nothing duplicated; the store reopens from disk.
    ingest(&data, &model);
    let store = EdgeStore::open_existing(&data.join("store"))?;
    assert_eq!(store.count()?, titles.len());
    Ok(())
}

#[test]
fn demo_falls_back_to_a_tiny_model_with_a_warning_and_summarises()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let output = run_ok(
        tessera()
            .arg("demo")
            .arg("--exit")
            .arg("--data")
            .arg(tmp.path().join("data")),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("carry NO meaning"), "{stderr}");
    assert!(
        stdout.contains("summary") && stdout.matches("nearest: ").count() >= 12,
        "{stdout}"
    );
    assert!(
        stdout.contains("tags:") && stdout.contains("synopsis-length="),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn ingest_reports_bad_catalog_entries_and_goes_on() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let catalog = tmp.path().join("bad.jsonl");
    std::fs::write(
        &catalog,
        [
            r#"{"id":"a","name":"A","synopsis":"A quiet harbour town."}"#,
            r#"{"id":"a","name":"A again"}"#,
            r#"{"id":"b","name":"#,
            r#"{"id":"c","name":"C","synopsis":"Two rivals.","assets":[{"kind":"poster","uri":"gone.png"},{"kind":"teaser","uri":"t.mp4"}]}"#,
        ]
        .join("\n"),
    )?;
    let data = tmp.path().join("data");
    let report = tmp.path().join("failures.jsonl");
    let output = tessera()
        .arg("ingest")
        .arg(&catalog)
        .arg("--data")
        .arg(&data)
        .arg("--failures")
        .arg(&report)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The usable titles are stored; the run says something failed.
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("2 of 2 titles stored, 0 failed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("line 2") && stderr.contains("duplicate title id"),
        "{stderr}"
    );
    // Every problem is in the report, one JSON line each, with the title where known.
    let entries: Vec<serde_json::Value> = std::fs::read_to_string(&report)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let kinds: Vec<(Option<&str>, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["title"].as_str(),
                e["kind"].as_str().unwrap_or_default(),
                e["at"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (Some("a"), "catalog-duplicate-id", "line 2"),
            (None, "catalog-malformed", "line 3"),
            (Some("c"), "catalog-missing-file", "line 4"),
            (Some("c"), "catalog-unknown-asset-kind", "line 4"),
            (Some("c"), "catalog-missing-file", "line 4"),
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| e["run"].as_str().is_some_and(|r| r.starts_with("run-")))
    );
    let store = tessera_indexes::EdgeStore::open_existing(&data.join("store"))?;
    use tessera_indexes::EntityStore;
    let stored = store.get(&["a".to_string(), "b".to_string(), "c".to_string()])?;
    assert_eq!(
        stored.iter().map(Option::is_some).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!(stored[0].as_ref().map(|e| e.name.as_str()), Some("A"));
    Ok(())
}

#[test]
fn plugin_inspect_prints_the_contract_and_refuses_non_components()
-> Result<(), Box<dyn std::error::Error>> {
    let (_, path) = tessera_plugin_artifacts::ALL
        .iter()
        .find(|(name, _)| *name == "synopsis-embedder")
        .ok_or("synopsis-embedder is not built")?;
    let output = run_ok(tessera().args(["plugin", "inspect", path]));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("contract: tessera:plugin 1.1.0"), "{text}");
    assert!(text.contains("world: tagger"), "{text}");
    assert!(
        text.contains("instance tessera:plugin/models@1.1.0: embed-text"),
        "{text}"
    );
    // The kit's 64 KiB stack, below the data; no note about a large stack.
    assert!(
        text.contains("; stack 64 KiB below the static data") && !text.contains("note:"),
        "{text}"
    );
    let output = run_ok(tessera().args(["plugin", "inspect", "--json", path]));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(json["tagger"], true);
    assert_eq!(json["contract_versions"], serde_json::json!(["1.1.0"]));
    assert_eq!(json["memory"]["stack_bytes"], 65536);
    assert!(
        json["host_support"]
            .as_str()
            .is_some_and(|s| s.starts_with("yes: linked as tessera:plugin 1.1.0")),
        "{json}"
    );

    let tmp = tempfile::tempdir()?;
    let fake = tmp.path().join("notes.wasm");
    std::fs::write(&fake, "just text")?;
    let output = tessera().args(["plugin", "inspect"]).arg(&fake).output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("notes.wasm") && stderr.contains("cannot load component"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn ingest_runs_media_plugins_with_extra_models_and_stores_tags_with_evidence()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let clip = tmp.path().join("clip");
    tessera_models::tiny::write_tiny_clip(&clip, &tessera_models::tiny::TinyClipSpec::default())?;
    std::fs::create_dir_all(tmp.path().join("media"))?;
    std::fs::copy(
        repo_root().join("tests/data/images/photo.jpg"),
        tmp.path().join("media/poster.jpg"),
    )?;
    let catalog = tmp.path().join("catalog.jsonl");
    std::fs::write(
        &catalog,
        concat!(
            r#"{"id":"m1","name":"Red Planet","synopsis":"Astronauts stranded on Mars.","assets":[{"kind":"poster","uri":"media/poster.jpg"}]}"#,
            "\n",
            r#"{"id":"m2","name":"Deep Water","synopsis":"A storm at sea.","assets":[{"kind":"poster","uri":"media/missing.jpg"}]}"#,
            "\n"
        ),
    )?;
    // The example genre tagger, with a manifest that allows `clip` and sets its taxonomy.
    let wasm = tmp.path().join("genre-tagger.wasm");
    std::fs::write(&wasm, tessera_plugin_artifacts::component("genre-tagger")?)?;
    let manifest = run_ok(
        tessera()
            .args(["plugin", "manifest", "--models", "clip"])
            .arg(&wasm),
    );
    let mut manifest = String::from_utf8(manifest.stdout)?;
    manifest.push_str(
        "\"genre.space\" = \"a film set in space\"\n\"genre.sea\" = \"a film at sea\"\n\"min-score\" = \"0\"\n",
    );
    std::fs::write(tmp.path().join("genre-tagger.toml"), manifest)?;

    let data = tmp.path().join("data");
    let output = tessera()
        .arg("ingest")
        .arg(&catalog)
        .arg("--data")
        .arg(&data)
        .arg("--text-model")
        .arg(&model)
        .arg("--model")
        .arg(format!("clip={}", clip.display()))
        .arg("--plugin")
        .arg(&wasm)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // m1 is stored; m2's poster is missing: a media error that names the file, and the run goes on.
    assert!(
        stdout.contains("1 of 2 titles stored, 1 failed"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("missing.jpg") || stderr.contains("missing.jpg"),
        "{stdout}\n{stderr}"
    );

    let store = EdgeStore::open_existing(&data.join("store"))?;
    let stored = store
        .get(&["m1".to_string()])?
        .remove(0)
        .ok_or("m1 not stored")?;
    // The poster is recorded by its content, as the run read it.
    let poster = std::fs::read(tmp.path().join("media/poster.jpg"))?;
    let sha = tessera::manifest::sha256_hex(&poster);
    assert_eq!(
        stored.assets,
        [tessera_indexes::AssetDigest {
            kind: "poster".into(),
            uri: "media/poster.jpg".into(),
            sha256: Some(sha),
        }]
    );
    let genres: Vec<&tessera_indexes::Tag> =
        stored.tags.iter().filter(|t| t.name == "genre").collect();
    assert_eq!(genres.len(), 2, "{:?}", stored.tags);
    for genre in genres {
        assert!(["space", "sea"].contains(&genre.value.as_deref().unwrap_or_default()));
        assert_eq!(genre.plugin, "genre-tagger");
        let evidence = genre.evidence.as_deref().unwrap_or_default();
        assert!(
            evidence.contains("poster") && evidence.contains("synopsis"),
            "{evidence}"
        );
    }
    Ok(())
}

#[test]
fn another_revision_of_the_model_is_refused_by_name_and_changes_nothing()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    ingest(&data, &model);
    let before = text_vector(&data);
    // Same directory name, other weights: another revision of "tiny-model".
    let other = tmp.path().join("v2").join("tiny-model");
    tessera_models::tiny::write_tiny_bert(
        &other,
        &tessera_models::tiny::TinyBertSpec {
            seed: 99,
            ..Default::default()
        },
    )?;
    let after = format!(
        "text/{}",
        tessera_models::identity::identity("tiny-model", &other)?
    );
    assert_ne!(before, after);
    let out = ingest_command(&example_catalog(), &data, &other).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another revision of a model")
            && stderr.contains(&format!("{before} (held) vs {after} (asked)")),
        "{stderr}"
    );
    // The store still holds the first revision's vectors, every title of them.
    assert_eq!(text_vector(&data), before);
    let store = EdgeStore::open_existing(&data.join("store"))?;
    assert_eq!(
        store.count()?,
        catalog::read_jsonl(&example_catalog())?.len()
    );
    Ok(())
}

#[test]
fn runs_are_recorded_and_only_stale_titles_are_reprocessed()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let model = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    let titles = catalog::read_jsonl(&example_catalog())?;
    let first = ingest(&data, &model);
    let run = run_id(&first).ok_or("no run id printed")?;
    {
        let store = EdgeStore::open_existing(&data.join("store"))?;
        let entity = store
            .get(&[titles[0].id.clone()])?
            .remove(0)
            .ok_or("not stored")?;
        assert!(
            entity
                .tags
                .iter()
                .all(|t| t.run.as_deref() == Some(run.as_str()))
        );
        assert_eq!(entity.outputs.len(), 1);
        assert_eq!(entity.outputs[0].plugin, "synopsis-embedder");
        assert_eq!(entity.outputs[0].run, run);
        // Outputs record the model by identity, so a new revision makes them stale; each tag
        // carries its plugin's models too.
        let identity = tessera_models::identity::identity("tiny-model", &model)?;
        assert_eq!(entity.outputs[0].models, std::slice::from_ref(&identity));
        assert!(
            !entity.tags.is_empty()
                && entity
                    .tags
                    .iter()
                    .all(|t| t.models == std::slice::from_ref(&identity)),
            "{:?}",
            entity.tags
        );
    }
    // Nothing changed: nothing to do.
    let again = run_ok(
        tessera()
            .arg("ingest")
            .arg(example_catalog())
            .args(["--only-stale", "--data"])
            .arg(&data)
            .arg("--text-model")
            .arg(&model),
    );
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains(&format!("0 of {} titles need processing", titles.len())),
        "{stdout}"
    );
    // A catalog with two new titles: only those are processed.
    // Assets dropped: their paths are relative to examples/, and this plugin reads none.
    let mut lines: Vec<String> = std::fs::read_to_string(example_catalog())?
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l)?;
            if let Some(map) = v.as_object_mut() {
                map.remove("assets");
            }
            Ok(v.to_string())
        })
        .collect::<Result<_, serde_json::Error>>()?;
    for id in ["new-1", "new-2"] {
        lines.push(
            serde_json::json!({"id": id, "name": id, "synopsis": "A new arrival.", "language": "en"})
                .to_string(),
        );
    }
    let grown = tmp.path().join("grown.jsonl");
    std::fs::write(&grown, lines.join("\n") + "\n")?;
    let third = run_ok(
        tessera()
            .arg("ingest")
            .arg(&grown)
            .args(["--only-stale", "--data"])
            .arg(&data)
            .arg("--text-model")
            .arg(&model),
    );
    let stdout = String::from_utf8_lossy(&third.stdout);
    assert!(
        stdout.contains(&format!("2 of {} titles need processing", titles.len() + 2)),
        "{stdout}"
    );
    assert!(stdout.contains("2 of 2 titles stored"), "{stdout}");
    Ok(())
}
