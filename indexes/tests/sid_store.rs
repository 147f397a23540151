//! Semantic IDs through every backend: train over stored vectors, write IDs, look titles up
//! by full ID and by prefix, give new titles IDs at ingest, retrain.

#[macro_use]
mod common;

use common::{Backend, Fixture};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tessera_indexes::sid::{Codebook, SidConfig};
use tessera_indexes::sid_store::{IngestIds, apply, read_training, train};
use tessera_indexes::{Entity, EntityStore, IndexError, Schema, StoredSid, VectorSpec};

const DIM: usize = 8;

fn schema() -> Schema {
    Schema::new([("text".to_string(), VectorSpec::dense(DIM, "m"))])
}

fn vector(i: usize) -> Vec<f32> {
    // Eight loose clusters with a per-title wobble.
    let mut v = vec![0.1f32; DIM];
    v[i % DIM] = 1.0;
    v[(i / DIM) % DIM] += 0.3 + (i as f32 * 0.37).sin() * 0.2;
    v[(i * 7 + 3) % DIM] += (i as f32 * 1.3).cos() * 0.25;
    v
}

fn entity(i: usize) -> Entity {
    Entity {
        id: format!("t{i:04}"),
        name: format!("Title {i}"),
        language: "en".into(),
        vectors: BTreeMap::from([("text".to_string(), vector(i))]),
        ..Default::default()
    }
}

fn config() -> SidConfig {
    SidConfig {
        levels: 2,
        codes: 8,
        iterations: 15,
        seed: 1,
    }
}

/// The semantic ID the store holds for `id` now (what ingest passes to `IngestIds::assign`).
fn stored_sid(store: &dyn EntityStore, id: &str) -> Result<Option<StoredSid>, IndexError> {
    Ok(store
        .get(&[id.to_string()])?
        .pop()
        .flatten()
        .and_then(|e| e.semantic_id))
}

on_both_backends!(
    train_apply_lookup_and_ingest,
    ingest_ids_from_concurrent_workers_stay_unique,
    reingesting_moved_titles_from_several_workers_keeps_ids_unique,
    an_abandoned_id_is_free_again,
);

/// A store of `n` titles with a trained codebook and every title's ID written.
/// The fixture is returned for its lifetime: the store is removed when it drops.
type Trained = (Fixture, Arc<dyn EntityStore>, Arc<Codebook>);

fn trained_store(backend: Backend, n: usize) -> Result<Option<Trained>, IndexError> {
    let Some(fixture) = Fixture::new(backend, schema())? else {
        return Ok(None);
    };
    let store = fixture.shared();
    store.upsert(&(0..n).map(entity).collect::<Vec<_>>())?;
    let training = read_training(&*store, "text")?;
    let trained = train(&training, DIM, config(), "text", None)?;
    apply(&*store, &trained.codebook, &trained.ids)?;
    Ok(Some((fixture, store, trained.codebook)))
}

fn train_apply_lookup_and_ingest(backend: Backend) -> Result<(), IndexError> {
    let dir = tempfile::tempdir().map_err(common::io)?;
    let Some(fixture) = Fixture::new(backend, schema())? else {
        return Ok(());
    };
    let store = fixture.store();
    let first: Vec<Entity> = (0..300).map(entity).collect();
    store.upsert(&first)?;

    // Scan pages cover every title once.
    let mut seen = HashSet::new();
    let mut cursor = None;
    loop {
        let page = store.scan(cursor.as_deref(), 64, false)?;
        assert!(page.entities.iter().all(|e| e.vectors.is_empty()));
        for e in page.entities {
            assert!(seen.insert(e.id), "scan returned a title twice");
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 300);
    let msg = store
        .scan(Some("not-a-cursor"), 10, false)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("invalid scan cursor"), "{msg}");

    let training = read_training(store, "text")?;
    assert_eq!(training.ids.len(), 300);
    let trained = train(&training, DIM, config(), "text", None)?;
    assert_eq!(trained.changed, 300, "every title is new to semantic IDs");
    assert_eq!(apply(store, &trained.codebook, &trained.ids)?, 300);

    // Every stored title has a unique ID from this codebook, and lookups find it.
    let stored = store.get(&first.iter().map(|e| e.id.clone()).collect::<Vec<_>>())?;
    let mut ids = HashSet::new();
    for e in stored.iter().flatten() {
        let sid = e
            .semantic_id
            .clone()
            .ok_or(IndexError::Training(format!("{} has no ID", e.id)))?;
        assert_eq!(sid.codebook, trained.codebook.id());
        assert_eq!(sid.id.0.len(), 3);
        assert!(ids.insert(sid.id.clone()));
        let by_full = store.lookup_semantic_id(&sid.id.0, 10)?;
        assert_eq!(by_full.len(), 1, "full ID {} must name one title", sid.id);
        assert_eq!(by_full[0].0, e.id);
    }
    let probe = stored[0]
        .as_ref()
        .and_then(|e| e.semantic_id.clone())
        .ok_or(IndexError::Training("no id".into()))?;
    let by_prefix = store.lookup_semantic_id(probe.id.prefix(1), 1000)?;
    let expected = stored
        .iter()
        .flatten()
        .filter(|e| e.semantic_id.as_ref().map(|s| s.id.0[0]) == Some(probe.id.0[0]))
        .count();
    assert_eq!(by_prefix.len(), expected);
    assert!(by_prefix.iter().all(|(_, s)| s.id.0[0] == probe.id.0[0]));

    // New titles get IDs at ingest, unique against the stored ones, without retraining; a
    // re-ingested title keeps its ID.
    let ingest = IngestIds::new(trained.codebook.clone());
    for i in 300..360 {
        let mut e = entity(i);
        e.semantic_id = ingest.assign(store, &e, stored_sid(store, &e.id)?.as_ref())?;
        let sid = e
            .semantic_id
            .clone()
            .ok_or(IndexError::Training("no id".into()))?;
        assert!(ids.insert(sid.id), "ingest gave {} a taken ID", e.id);
        store.upsert(&[e])?;
    }
    let again = ingest.assign(store, &entity(5), stored_sid(store, "t0005")?.as_ref())?;
    assert_eq!(
        again,
        stored[5].as_ref().and_then(|e| e.semantic_id.clone())
    );

    // Persisted codebook round-trips; a warm retrain keeps most IDs and reports the rest.
    let path = dir.path().join("codebook.sid");
    trained.codebook.save(&path)?;
    let loaded = Codebook::load(&path)?;
    let training = read_training(store, "text")?;
    assert_eq!(training.ids.len(), 360);
    let retrained = train(&training, DIM, config(), "text", Some(&loaded))?;
    assert!(retrained.changed < 360, "changed {}", retrained.changed);
    apply(store, &retrained.codebook, &retrained.ids)?;
    let all = read_training(store, "text")?;
    let unique: HashSet<_> = all.previous.iter().flatten().map(|s| &s.id).collect();
    assert_eq!(unique.len(), 360);
    assert!(
        all.previous
            .iter()
            .flatten()
            .all(|s| s.codebook == retrained.codebook.id())
    );
    Ok(())
}

fn ingest_ids_from_concurrent_workers_stay_unique(backend: Backend) -> Result<(), IndexError> {
    let Some((_fixture, store, codebook)) = trained_store(backend, 100)? else {
        return Ok(());
    };
    let ingest = Arc::new(IngestIds::new(codebook));
    // Four workers, titles that are near-copies of each other: the collisions they race for must
    // still resolve to distinct IDs.
    std::thread::scope(|s| {
        for w in 0..4 {
            let (store, ingest) = (store.clone(), ingest.clone());
            s.spawn(move || -> Result<(), IndexError> {
                for j in 0..25 {
                    let mut e = entity(3);
                    e.id = format!("copy-{w}-{j}");
                    e.semantic_id =
                        ingest.assign(&*store, &e, stored_sid(&*store, &e.id)?.as_ref())?;
                    store.upsert(&[e])?;
                }
                Ok(())
            });
        }
    });
    let all = read_training(&*store, "text")?;
    assert_eq!(all.ids.len(), 200);
    let unique: HashSet<_> = all.previous.iter().flatten().map(|s| &s.id).collect();
    assert_eq!(
        unique.len(),
        200,
        "concurrent ingest handed out a duplicate ID"
    );
    Ok(())
}

fn reingesting_moved_titles_from_several_workers_keeps_ids_unique(
    backend: Backend,
) -> Result<(), IndexError> {
    let Some((_fixture, store, codebook)) = trained_store(backend, 200)? else {
        return Ok(());
    };
    let ingest = Arc::new(IngestIds::new(codebook));
    // Every title comes back with its vector nudged towards another title's: many change cell,
    // some stay by the stability slack, all race through four workers.
    std::thread::scope(|s| {
        for w in 0..4 {
            let (store, ingest) = (store.clone(), ingest.clone());
            s.spawn(move || -> Result<(), IndexError> {
                for i in (w..200).step_by(4) {
                    let mut e = entity(i);
                    let other = vector(i * 13 + 5);
                    for (x, o) in e.vectors.get_mut("text").into_iter().flatten().zip(&other) {
                        *x = 0.6 * *x + 0.4 * o;
                    }
                    e.semantic_id =
                        ingest.assign(&*store, &e, stored_sid(&*store, &e.id)?.as_ref())?;
                    store.upsert(&[e])?;
                }
                Ok(())
            });
        }
    });
    let all = read_training(&*store, "text")?;
    let ids: Vec<_> = all.previous.iter().flatten().map(|s| &s.id).collect();
    assert_eq!(ids.len(), 200);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        200,
        "a re-ingest handed out a duplicate ID"
    );
    Ok(())
}

fn an_abandoned_id_is_free_again(backend: Backend) -> Result<(), IndexError> {
    let Some((_fixture, store, codebook)) = trained_store(backend, 100)? else {
        return Ok(());
    };
    let store = &*store;
    let ingest = IngestIds::new(codebook);
    let mut x = entity(500);
    x.id = "x".into();
    let given = ingest.assign(store, &x, stored_sid(store, &x.id)?.as_ref())?;
    // Writing "x" failed: its ID goes back, so the next title with the same vector gets it.
    ingest.abandon(store, "x")?;
    let mut y = entity(500);
    y.id = "y".into();
    assert_eq!(
        ingest.assign(store, &y, stored_sid(store, &y.id)?.as_ref())?,
        given
    );
    Ok(())
}
