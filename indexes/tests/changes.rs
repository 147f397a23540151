//! The change feed, on every backend: numbered in write order, compacted to each title's latest
//! change, quiet for writes that change nothing, and continued across reopening.

#[macro_use]
mod common;

use common::{Backend, Fixture};
use std::collections::BTreeMap;
use tessera_indexes::{Entity, EntityStore, IndexError, Output, Schema, VectorSpec};

on_both_backends!(
    the_feed_lists_each_title_at_its_latest_change,
    titles_keep_their_creation_time_and_the_time_of_their_last_change,
);

fn schema() -> Schema {
    Schema::new([("text".to_string(), VectorSpec::dense(3, "m"))])
}

fn entity(id: &str, v: [f32; 3], run: &str) -> Entity {
    Entity {
        id: id.into(),
        name: id.to_uppercase(),
        year: Some(2001),
        language: "en".into(),
        vectors: BTreeMap::from([("text".to_string(), v.to_vec())]),
        outputs: vec![Output {
            plugin: "p".into(),
            version: "1".into(),
            models: vec!["m".into()],
            run: run.into(),
        }],
        ..Default::default()
    }
}

/// The feed after `after`: ids and what changed, checking that numbers increase.
fn feed(store: &dyn EntityStore, after: u64) -> Result<Vec<(String, Vec<String>)>, IndexError> {
    let changes = store.changes(after, 100)?;
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(changes.iter().all(|c| c.seq > after));
    Ok(changes.into_iter().map(|c| (c.id, c.what)).collect())
}

fn last(store: &dyn EntityStore) -> Result<u64, IndexError> {
    Ok(store.changes(0, 100)?.last().map_or(0, |c| c.seq))
}

fn the_feed_lists_each_title_at_its_latest_change(backend: Backend) -> Result<(), IndexError> {
    let Some(mut fixture) = Fixture::new(backend, schema())? else {
        return Ok(());
    };
    let store = fixture.store();
    assert_eq!(store.last_change()?, 0);
    store.upsert(&[
        entity("a", [1.0, 0.0, 0.0], "r1"),
        entity("b", [0.0, 1.0, 0.0], "r1"),
        entity("c", [0.0, 0.0, 1.0], "r1"),
    ])?;
    let created = vec!["created".to_string()];
    assert_eq!(
        feed(store, 0)?,
        vec![
            ("a".into(), created.clone()),
            ("b".into(), created.clone()),
            ("c".into(), created.clone())
        ]
    );
    let after_c = last(store)?;
    // The embedded store numbers its changes 1, 2, 3, … with no gaps; a server store's numbers
    // come from the clock (microseconds, so that several writers can share one) and only
    // increase.
    let exact = matches!(backend, Backend::Edge);
    if exact {
        let seqs: Vec<u64> = store.changes(0, 100)?.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }
    // The same titles again (vectors scaled: the same once normalised): nothing changes.
    store.upsert(&[entity("a", [2.0, 0.0, 0.0], "r1")])?;
    assert_eq!(feed(store, after_c)?, vec![]);
    // A new run with a moved vector: a is listed once more, at a new number, and no longer at
    // its first.
    store.upsert(&[entity("a", [0.6, 0.8, 0.0], "r2")])?;
    let changes = store.changes(0, 100)?;
    let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "a"]);
    let a = &changes[2];
    assert!(a.seq > after_c);
    if exact {
        assert_eq!(a.seq, 4, "the no-op upsert took no number");
    }
    assert_eq!(a.run.as_deref(), Some("r2"));
    assert_eq!(a.what, ["vectors", "outputs"]);
    // Paging by the last number seen.
    assert_eq!(store.changes(0, 2)?.len(), 2);
    assert_eq!(
        store
            .changes(changes[1].seq, 2)?
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(store.last_change()?, a.seq);
    let before_reopen = a.seq;
    // Reopened, numbering goes on after the last change.
    fixture.reopen()?;
    let store = fixture.store();
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
        models: Vec::new(),
    });
    assert_eq!(store.last_change()?, before_reopen);
    store.upsert(&[d])?;
    assert!(store.last_change()? > before_reopen);
    if exact {
        assert_eq!(store.last_change()?, 5);
    }
    assert_eq!(
        feed(store, before_reopen)?,
        vec![("d".into(), vec!["created".to_string()])]
    );
    Ok(())
}

fn titles_keep_their_creation_time_and_the_time_of_their_last_change(
    backend: Backend,
) -> Result<(), IndexError> {
    let Some(fixture) = Fixture::new(backend, schema())? else {
        return Ok(());
    };
    let store = fixture.store();
    let read = |id: &str| -> Result<Entity, IndexError> {
        store
            .get(&[id.to_string()])?
            .pop()
            .flatten()
            .ok_or_else(|| IndexError::Engine(format!("{id} is not stored")))
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    let before = now();
    store.upsert(&[entity("a", [1.0, 0.0, 0.0], "run-1")])?;
    let first = read("a")?;
    let created = first
        .created_at
        .ok_or(IndexError::Engine("no created_at".into()))?;
    assert!(before <= created && created <= now(), "{created}");
    assert_eq!(first.updated_at, Some(created));
    // The feed carries the same time.
    assert_eq!(
        store.changes(0, 10)?.last().and_then(|c| c.at),
        Some(created)
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    // A write that changes nothing leaves both times.
    store.upsert(&[entity("a", [1.0, 0.0, 0.0], "run-1")])?;
    let same = read("a")?;
    assert_eq!(
        (same.created_at, same.updated_at),
        (Some(created), Some(created))
    );
    // A change moves the update time, never the creation time, whatever the writer sends.
    let mut changed = entity("a", [0.0, 1.0, 0.0], "run-2");
    changed.created_at = Some(1);
    changed.updated_at = Some(1);
    store.upsert(&[changed])?;
    let second = read("a")?;
    assert_eq!(second.created_at, Some(created));
    let updated = second
        .updated_at
        .ok_or(IndexError::Engine("no updated_at".into()))?;
    assert!(updated > created, "{updated} vs {created}");
    // A title new to this store that brings its creation time (a migrated one) keeps it.
    let mut migrated = entity("b", [0.0, 0.0, 1.0], "run-1");
    migrated.created_at = Some(1_700_000_000_000);
    store.upsert(&[migrated])?;
    let b = read("b")?;
    assert_eq!(b.created_at, Some(1_700_000_000_000));
    assert!(b.updated_at.is_some_and(|t| t >= updated));
    Ok(())
}
