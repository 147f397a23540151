//! `tessera export` for training pipelines: JSON Lines checked against the store here, Parquet
//! read back with pyarrow (needs `TESSERA_TEST_PYTHON`, as the Python client test does).

mod common;

use common::*;
use std::collections::BTreeMap;
use tessera_indexes::{EdgeStore, EntityStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An exported vector is the stored one (both absent for titles without it).
fn same_vector(exported: Option<&[f32]>, stored: Option<&Vec<f32>>, id: &str) {
    match (exported, stored) {
        (Some(a), Some(b)) => assert!(max_abs_diff(a, b) < 1e-6, "{id}"),
        (None, None) => {}
        (a, b) => panic!("{id}: exported {a:?}, stored {b:?}"),
    }
}

#[test]
fn exports_every_title_with_vectors_ids_and_tags() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (data, _model) = ingest_example(tmp.path());
    run_ok(
        tessera()
            .args(["sid", "train", "--levels", "2", "--codes", "4", "--data"])
            .arg(&data),
    );
    let stored = {
        let store = EdgeStore::open_existing(&data.join("store"))?;
        let mut all = BTreeMap::new();
        let page = store.scan(None, 1000, true)?;
        for e in page.entities {
            all.insert(e.id.clone(), e);
        }
        all
    };
    // The one dense vector, named after the text model; most example titles have it.
    let vector_name = text_vector(&data);
    let with_vector = stored
        .values()
        .filter(|e| e.vectors.contains_key(&vector_name))
        .count();
    assert!(with_vector >= 12, "{with_vector} titles with {vector_name}");

    // JSON Lines, in small pages: every title once, as stored.
    let jsonl = tmp.path().join("out/titles.jsonl");
    let out = run_ok(
        tessera()
            .args(["export", "--format", "jsonl", "--page", "4", "--out"])
            .arg(&jsonl)
            .arg("--data")
            .arg(&data),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("exported {} titles", stored.len()))
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), stored.len());
    for line in &lines {
        let id = line["id"].as_str().ok_or("no id")?;
        let entity = &stored[id];
        assert_eq!(line["name"], entity.name.as_str());
        let vector: Option<Vec<f32>> =
            serde_json::from_value(line["vectors"][vector_name.as_str()].clone())?;
        same_vector(vector.as_deref(), entity.vectors.get(&vector_name), id);
        let sid: Option<Vec<u16>> = serde_json::from_value(line["semantic_id"].clone())?;
        assert_eq!(sid, entity.semantic_id.as_ref().map(|s| s.id.0.clone()));
        assert_eq!(
            line["tags"].as_array().map(Vec::len),
            Some(entity.tags.len())
        );
    }
    assert!(!tmp.path().join("out/.titles.jsonl.partial").exists());

    // Parquet, read by pyarrow as a training pipeline would.
    let Some(python) = std::env::var_os("TESSERA_TEST_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Parquet check: set TESSERA_TEST_PYTHON (.ci/run does)"
        );
        println!("skipping the Parquet read-back: set TESSERA_TEST_PYTHON");
        return Ok(());
    };
    let parquet = tmp.path().join("out/titles.parquet");
    run_ok(
        tessera()
            .args(["export", "--format", "parquet", "--page", "4", "--out"])
            .arg(&parquet)
            .arg("--data")
            .arg(&data),
    );
    let script = r#"
import json, sys
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
rows = table.to_pylist()
print(json.dumps({
    "row_groups": pq.ParquetFile(sys.argv[1]).num_row_groups,
    "columns": table.column_names,
    "rows": {r["id"]: {"vector": r[sys.argv[2]], "semantic_id": r["semantic_id"],
                       "year": r["year"], "tags": json.loads(r["tags_json"])} for r in rows},
}))
"#;
    let out = run_ok(
        std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(&parquet)
            .arg(&vector_name),
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(read["row_groups"], stored.len().div_ceil(4));
    let rows = read["rows"].as_object().ok_or("no rows")?;
    assert_eq!(rows.len(), stored.len());
    for (id, entity) in &stored {
        let row = &rows[id];
        let vector: Option<Vec<f32>> = serde_json::from_value(row["vector"].clone())?;
        same_vector(vector.as_deref(), entity.vectors.get(&vector_name), id);
        let sid: Option<Vec<u16>> = serde_json::from_value(row["semantic_id"].clone())?;
        assert_eq!(
            sid,
            entity.semantic_id.as_ref().map(|s| s.id.0.clone()),
            "{id}"
        );
        assert_eq!(row["year"].as_u64(), entity.year.map(u64::from), "{id}");
        assert_eq!(
            row["tags"].as_array().map(Vec::len),
            Some(entity.tags.len()),
            "{id}"
        );
    }
    Ok(())
}
