//! The change feed of the embedded store: numbered in write order, compacted to each title's
//! latest change, quiet for writes that change nothing, and continued across reopening.

use std::collections::BTreeMap;
use tessera_indexes::{EdgeStore, Entity, EntityStore, IndexError, Output, Schema, VectorSpec};

fn schema() -> Schema {
    Schema::new([("text".to_string(), VectorSpec::dense(3, "m"))])
}

fn entity(id: &str, v: [f32; 3], run: &str) -> Entity {
    Entity {
        id: id.into(),
        name: id.to_uppercase(),
        year: Some(2001),
        language: "en".into(),
        metadata: BTreeMap::new(),
        vectors: BTreeMap::from([("text".to_string(), v.to_vec())]),
        multivectors: BTreeMap::new(),
        tags: Vec::new(),
        semantic_id: None,
        outputs: vec![Output {
            plugin: "p".into(),
            version: "1".into(),
            models: vec!["m".into()],
            run: run.into(),
        }],
        input: None,
        overrides: Vec::new(),
    }
}

fn feed(store: &EdgeStore, after: u64) -> Result<Vec<(u64, String, Vec<String>)>, IndexError> {
    Ok(store
        .changes(after, 100)?
        .into_iter()
        .map(|c| (c.seq, c.id, c.what))
        .collect())
}

#[test]
fn the_feed_lists_each_title_at_its_latest_change() -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(|e| IndexError::Engine(e.to_string()))?;
    {
        let store = EdgeStore::open(dir.path(), schema())?;
        store.upsert(&[
            entity("a", [1.0, 0.0, 0.0], "r1"),
            entity("b", [0.0, 1.0, 0.0], "r1"),
            entity("c", [0.0, 0.0, 1.0], "r1"),
        ])?;
        let created = vec!["created".to_string()];
        assert_eq!(
            feed(&store, 0)?,
            vec![
                (1, "a".into(), created.clone()),
                (2, "b".into(), created.clone()),
                (3, "c".into(), created.clone())
            ]
        );
        // The same titles again (vectors scaled: the same once normalised): nothing changes.
        store.upsert(&[entity("a", [2.0, 0.0, 0.0], "r1")])?;
        assert_eq!(feed(&store, 3)?, vec![]);
        // A new run with a moved vector: a is listed once more, at its new number, and no longer
        // at 1.
        store.upsert(&[entity("a", [0.6, 0.8, 0.0], "r2")])?;
        let changes = store.changes(0, 100)?;
        let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
        let a = &changes[2];
        assert_eq!(a.seq, 4);
        assert_eq!(a.run.as_deref(), Some("r2"));
        assert_eq!(a.what, ["vectors", "outputs"]);
        // Paging by the last number seen.
        assert_eq!(store.changes(0, 2)?.len(), 2);
        assert_eq!(
            store
                .changes(3, 2)?
                .iter()
                .map(|c| c.seq)
                .collect::<Vec<_>>(),
            [4]
        );
    }
    // Reopened, numbering goes on from the last change.
    let store = EdgeStore::open_existing(dir.path())?;
    let mut d = entity("d", [1.0, 1.0, 0.0], "r3");
    d.tags.push(tessera_indexes::Tag {
        name: "genre".into(),
        value: Some("drama".into()),
        confidence: 0.9,
        plugin: "p".into(),
        plugin_version: "1".into(),
        span: None,
        evidence: None,
        run: Some("r3".into()),
    });
    store.upsert(&[d])?;
    assert_eq!(
        feed(&store, 4)?,
        vec![(5, "d".into(), vec!["created".to_string()])]
    );
    Ok(())
}
