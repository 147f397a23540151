use super::*;
use crate::{Tag, VectorSpec};
use std::collections::BTreeMap;

fn schema() -> Schema {
    Schema::new([("synopsis".to_string(), VectorSpec::dense(3, "m"))])
}

fn entity(id: &str, v: [f32; 3]) -> Entity {
    Entity {
        id: id.into(),
        name: format!("Title {id}"),
        year: Some(1999),
        language: "en".into(),
        metadata: BTreeMap::from([("genre".to_string(), "crime".to_string())]),
        vectors: BTreeMap::from([("synopsis".to_string(), v.to_vec())]),
        tags: vec![Tag {
            name: "language".into(),
            value: Some("en".into()),
            confidence: 0.9,
            plugin: "p".into(),
            plugin_version: "1.0.0".into(),
            span: Some((30.0, 60.0)),
            evidence: Some("matched \"in French\"".into()),
            run: Some("run-1".into()),
            models: Vec::new(),
        }],
        outputs: vec![Output {
            plugin: "p".into(),
            version: "1.0.0".into(),
            models: vec!["m".into()],
            run: "run-1".into(),
        }],
        ..Default::default()
    }
}

fn unit(v: [f32; 3]) -> [f32; 3] {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.map(|x| x / n)
}

#[test]
fn payloads_are_cached_in_new_stores_and_in_older_ones_reopened() -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    let config = dir.path().join(SHARD_DIR).join("edge_config.json");
    let placement = || -> Result<serde_json::Value, IndexError> {
        let text = std::fs::read_to_string(&config)
            .map_err(|e| IndexError::Engine(format!("{}: {e}", config.display())))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| IndexError::Engine(e.to_string()))?;
        Ok(json["payload_memory"].clone())
    };
    {
        let store = EdgeStore::open(dir.path(), schema())?;
        store.upsert(&[entity("a", unit([1.0, 0.0, 0.0]))])?;
        store.flush()?;
    }
    assert_eq!(placement()?, "cached");
    // A store made before the setting: its shard built with the engine's defaults, as
    // `open` used to (segments and config both without the placement).
    let shard_dir = dir.path().join(SHARD_DIR);
    std::fs::remove_dir_all(&shard_dir).map_err(|e| IndexError::Engine(e.to_string()))?;
    let mut older = EdgeConfigBuilder::new();
    for (name, spec) in &schema().vectors {
        older = older.vector(
            engine_name(name),
            EdgeVectorParamsBuilder::new(spec.dim, Distance::Cosine).build(),
        );
    }
    let shard = EdgeShard::new(&shard_dir, older.build()).map_err(engine)?;
    create_indexes(&shard)?;
    drop(shard);
    assert_ne!(placement()?, "cached");
    {
        let store = EdgeStore::open_existing(dir.path())?;
        assert_eq!(store.count()?, 0);
    }
    assert_eq!(placement()?, "cached");
    Ok(())
}

#[test]
fn survives_close_and_reopen_and_overwrites_on_reingest() -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    let a = entity("a", unit([1.0, 0.0, 0.0]));
    {
        let store = EdgeStore::open(dir.path(), schema())?;
        store.upsert(&[a.clone(), entity("b", unit([0.0, 1.0, 0.0]))])?;
        store.flush()?;
    }
    let store = EdgeStore::open_existing(dir.path())?;
    assert_eq!(store.count()?, 2);
    let got = store.get(&["a".to_string(), "zzz".to_string()])?;
    let stored = got[0]
        .clone()
        .ok_or(IndexError::Engine("a missing".into()))?;
    assert_eq!(stored.tags, a.tags);
    assert_eq!(stored.metadata, a.metadata);
    assert_eq!(stored.year, Some(1999));
    assert!(got[1].is_none());
    // A repeated id gets the title at each place.
    let ids = ["a", "b", "a"].map(String::from);
    let got: Vec<Option<String>> = store
        .get(&ids)?
        .into_iter()
        .map(|e| e.map(|e| e.id))
        .collect();
    assert_eq!(got, ids.map(Some));
    // Writing "a" again replaces it: no duplicate.
    store.upsert(&[entity("a", unit([1.0, 1.0, 0.0]))])?;
    assert_eq!(store.count()?, 2);
    Ok(())
}

#[test]
fn nearest_ranks_by_cosine_and_excludes_the_query() -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    let store = EdgeStore::open(dir.path(), schema())?;
    store.upsert(&[
        entity("x", unit([1.0, 0.0, 0.0])),
        entity("near", unit([0.9, 0.1, 0.0])),
        entity("far", unit([0.0, 0.0, 1.0])),
    ])?;
    let hits = store.nearest("synopsis", &unit([1.0, 0.0, 0.0]), 2, Some("x"))?;
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["near", "far"]);
    assert!(hits[0].score > hits[1].score);
    Ok(())
}

#[test]
fn bad_vectors_are_rejected_before_anything_is_written() -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    let store = EdgeStore::open(dir.path(), schema())?;
    let mut wrong_dim = entity("w", [1.0, 0.0, 0.0]);
    wrong_dim.vectors.insert("synopsis".into(), vec![1.0, 2.0]);
    let mut nan = entity("n", [1.0, 0.0, 0.0]);
    nan.vectors
        .insert("synopsis".into(), vec![1.0, f32::NAN, 0.0]);
    let mut unknown = entity("u", [1.0, 0.0, 0.0]);
    unknown.vectors.insert("poster".into(), vec![1.0]);
    let good = entity("g", [1.0, 0.0, 0.0]);
    for (bad, expected) in [
        (wrong_dim, "dimension 2, the store expects 3"),
        (nan, "NaN or infinity at index 1"),
        (unknown, "unknown vector \"poster\""),
    ] {
        let msg = store
            .upsert(&[good.clone(), bad])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains(expected), "{msg}");
    }
    assert_eq!(
        store.count()?,
        0,
        "a batch with a bad entity writes nothing"
    );
    Ok(())
}

#[test]
fn multivectors_round_trip_and_rank_by_maxsim() -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    let schema = Schema::new([
        ("synopsis".to_string(), VectorSpec::dense(3, "m")),
        ("windows".to_string(), VectorSpec::multi(3, "w")),
    ]);
    let with_windows = |id: &str, windows: Vec<[f32; 3]>| {
        let mut e = entity(id, unit([1.0, 0.0, 0.0]));
        e.multivectors.insert(
            "windows".into(),
            windows.into_iter().map(|w| unit(w).to_vec()).collect(),
        );
        e
    };
    {
        let store = EdgeStore::open(dir.path(), schema.clone())?;
        store.upsert(&[
            // Both query tokens have a close match: the best MaxSim.
            with_windows(
                "both",
                vec![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            ),
            // Only one does.
            with_windows("one", vec![[1.0, 0.1, 0.0], [0.0, 0.0, 1.0]]),
            with_windows("none", vec![[0.0, 0.0, 1.0]]),
            // No windows at all (no audio): stored, never a multivector hit.
            entity("plain", unit([1.0, 0.0, 0.0])),
        ])?;
        store.flush()?;
    }
    let store = EdgeStore::open_existing(dir.path())?;
    let got = store.get(&["both".to_string(), "plain".to_string()])?;
    let both = got[0].clone().ok_or(IndexError::Engine("missing".into()))?;
    assert_eq!(both.multivectors["windows"].len(), 3);
    assert!((both.multivectors["windows"][1][1] - 1.0).abs() < 1e-6);
    assert!(got[1].as_ref().is_some_and(|e| e.multivectors.is_empty()));
    let query = vec![
        unit([1.0, 0.0, 0.0]).to_vec(),
        unit([0.0, 1.0, 0.0]).to_vec(),
    ];
    let hits = store.nearest_multi("windows", &query, 3, None)?;
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["both", "one", "none"]);
    assert!(
        (hits[0].score - 2.0).abs() < 1e-4,
        "MaxSim of two exact matches: {hits:?}"
    );

    // Bad multivectors and queries are refused with the reason.
    let mut empty = entity("e", unit([1.0, 0.0, 0.0]));
    empty.multivectors.insert("windows".into(), vec![]);
    let mut short = entity("s", unit([1.0, 0.0, 0.0]));
    short
        .multivectors
        .insert("windows".into(), vec![vec![1.0, 0.0]]);
    let mut dense_as_multi = entity("d", unit([1.0, 0.0, 0.0]));
    dense_as_multi
        .multivectors
        .insert("synopsis".into(), vec![vec![1.0, 0.0, 0.0]]);
    for (bad, expected) in [
        (empty, "has 0 token vectors"),
        (short, "dimension 2, the store expects 3"),
        (dense_as_multi, "is Dense in the store's schema"),
    ] {
        let msg = store
            .upsert(&[bad])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains(expected), "{msg}");
    }
    let msg = store
        .nearest_multi("windows", &[vec![f32::NAN, 0.0, 0.0]], 3, None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("NaN"), "{msg}");
    let msg = store
        .nearest("windows", &[1.0, 0.0, 0.0], 3, None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("is Multi"), "{msg}");
    Ok(())
}

#[test]
fn the_store_names_titles_missing_or_stale_for_a_plugin_version() -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    let store = EdgeStore::open(dir.path(), schema())?;
    let current = entity("current", unit([1.0, 0.0, 0.0]));
    let mut old_version = entity("old-version", unit([1.0, 0.0, 0.0]));
    old_version.outputs[0].version = "0.9.0".into();
    let mut other_model = entity("other-model", unit([1.0, 0.0, 0.0]));
    other_model.outputs[0].models = vec!["m2".into()];
    let mut untouched = entity("untouched", unit([1.0, 0.0, 0.0]));
    untouched.outputs.clear();
    let mut other_run = entity("other-run", unit([1.0, 0.0, 0.0]));
    other_run.outputs[0].run = "run-0".into();
    store.upsert(&[current, old_version, other_model, untouched, other_run])?;
    let plugin = Output {
        plugin: "p".into(),
        version: "1.0.0".into(),
        models: vec!["m".into()],
        run: "run-2".into(),
    };
    let mut needing = store.needing(&plugin)?;
    needing.stale.sort();
    assert_eq!(needing.missing, ["untouched"]);
    assert_eq!(needing.stale, ["old-version", "other-model"]);
    let reread = store.get(&["current".to_string()])?.remove(0);
    assert_eq!(
        reread.map(|e| e.outputs[0].run.clone()),
        Some("run-1".to_string())
    );
    Ok(())
}

#[test]
fn titles_stored_before_the_change_feed_get_numbered_on_open() -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    {
        let store = EdgeStore::open(dir.path(), schema())?;
        store.upsert(&[entity("new", unit([1.0, 0.0, 0.0]))])?;
        // Points as an older Tessera wrote them: no change record.
        let mut points = Vec::new();
        for id in ["old-1", "old-2"] {
            let mut point = entity_to_point(
                &entity(id, unit([0.0, 1.0, 0.0])),
                &Change {
                    seq: 0,
                    id: id.into(),
                    run: None,
                    what: vec![],
                    at: None,
                    created: None,
                },
            );
            if let Some(payload) = &mut point.payload {
                payload.0.remove("change");
            }
            points.push(point);
        }
        store
            .shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
            ))
            .map_err(engine)?;
        let listed: Vec<String> = store.changes(0, 10)?.into_iter().map(|c| c.id).collect();
        assert_eq!(listed, ["new"]);
    }
    let store = EdgeStore::open_existing(dir.path())?;
    let changes = store.changes(0, 10)?;
    let listed: Vec<(u64, &str)> = changes.iter().map(|c| (c.seq, c.id.as_str())).collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0], (1, "new"));
    assert_eq!(changes[1].what, ["created"]);
    assert_eq!(changes[2].seq, 3);
    // Their data is untouched.
    let old = store.get(&["old-1".to_string()])?.remove(0);
    let expected = entity("old-1", unit([0.0, 1.0, 0.0]));
    assert_eq!(old.as_ref().map(|e| &e.tags), Some(&expected.tags));
    assert_eq!(old.map(|e| e.name), Some(expected.name));
    Ok(())
}

#[test]
fn a_second_open_is_refused_and_schema_changes_are_caught() -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    let store = EdgeStore::open(dir.path(), schema())?;
    let msg = EdgeStore::open_existing(dir.path())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("open in another process"), "{msg}");
    drop(store);
    let other = Schema::new([("synopsis".to_string(), VectorSpec::dense(4, "m"))]);
    let msg = EdgeStore::open(dir.path(), other)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("use a new data directory"), "{msg}");
    let empty = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    let msg = EdgeStore::open_existing(empty.path())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("run `tessera ingest` first"), "{msg}");
    Ok(())
}
