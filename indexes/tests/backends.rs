//! The store contract on every backend: what is written reads back whole, writes replace,
//! bad entities leave the store untouched, plugin outputs say what is missing or stale, and a
//! store refuses a schema it was not made with.

#[macro_use]
mod common;

use common::{Backend, Fixture};
use std::collections::BTreeMap;
use tessera_indexes::sid::SemanticId;
use tessera_indexes::{
    AssetDigest, Entity, EntityStore, FUSED, Fusion, IndexError, Output, Schema, StoredSid, Tag,
    TagOverride, VectorSpec,
};

on_both_backends!(
    every_field_reads_back_and_writes_replace,
    bad_entities_leave_the_store_untouched,
    outputs_name_missing_and_stale_titles,
    a_store_keeps_its_schema,
    a_fused_vector_follows_its_parts,
);

fn schema() -> Schema {
    Schema::new([
        ("text/m@1".to_string(), VectorSpec::dense(3, "m@1")),
        ("audio/w@1".to_string(), VectorSpec::multi(2, "w@1")),
    ])
}

fn unit(v: [f32; 3]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn output(plugin: &str, version: &str, run: &str) -> Output {
    Output {
        plugin: plugin.into(),
        version: version.into(),
        models: vec!["m@1".into()],
        run: run.into(),
    }
}

fn entity(id: &str, v: [f32; 3]) -> Entity {
    Entity {
        id: id.into(),
        name: format!("Title {id}"),
        year: Some(1999),
        language: "fr".into(),
        metadata: BTreeMap::from([("director".to_string(), "Varda".to_string())]),
        vectors: BTreeMap::from([("text/m@1".to_string(), unit(v))]),
        multivectors: BTreeMap::from([(
            "audio/w@1".to_string(),
            vec![vec![1.0, 0.0], vec![0.0, 1.0]],
        )]),
        tags: vec![Tag {
            name: "mood".into(),
            value: Some("calm".into()),
            confidence: 0.625,
            plugin: "mood".into(),
            plugin_version: "1.2.0".into(),
            span: Some((12.5, 30.0)),
            evidence: Some("prototype calm".into()),
            run: Some("run-1".into()),
            models: vec!["w@1".into()],
        }],
        semantic_id: Some(StoredSid {
            codebook: "sid-x".into(),
            id: SemanticId(vec![3, 250, 7]),
        }),
        outputs: vec![output("mood", "1.2.0", "run-1")],
        input: Some("in-1".into()),
        assets: vec![
            AssetDigest {
                kind: "poster".into(),
                uri: "posters/x.jpg".into(),
                sha256: Some("ab".repeat(32)),
            },
            AssetDigest {
                kind: "trailer".into(),
                uri: "gone.mp4".into(),
                sha256: None,
            },
        ],
        created_at: None,
        updated_at: None,
        overrides: vec![TagOverride {
            name: "genre".into(),
            value: Some("drama".into()),
            present: true,
            reason: "editor".into(),
            by: "ana".into(),
            at: 1_790_000_000,
        }],
    }
}

/// Vectors come back normalised and within float noise; everything else exactly.
fn assert_same(got: &Entity, want: &Entity) {
    let mut a = got.clone();
    let mut b = want.clone();
    for (name, v) in &want.vectors {
        let g = got.vectors.get(name).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(g.len(), v.len(), "{name}");
        assert!(
            g.iter().zip(v).all(|(x, y)| (x - y).abs() < 1e-6),
            "{name}: {g:?} vs {v:?}"
        );
    }
    a.vectors.clear();
    b.vectors.clear();
    // The store sets the times (tests/changes.rs checks them).
    assert!(got.created_at.is_some() && got.updated_at.is_some());
    (a.created_at, a.updated_at) = (b.created_at, b.updated_at);
    assert_eq!(a, b);
}

fn every_field_reads_back_and_writes_replace(backend: Backend) -> Result<(), IndexError> {
    let Some(fixture) = Fixture::new(backend, schema())? else {
        return Ok(());
    };
    let store = fixture.store();
    let titles: Vec<Entity> = (0..120)
        .map(|i| entity(&format!("t{i}"), [1.0, i as f32 * 0.1, 0.5]))
        .collect();
    store.upsert(&titles)?;
    assert_eq!(store.count()?, 120);
    let ids = [
        "t7".to_string(),
        "nope".to_string(),
        "t7".to_string(),
        "t119".to_string(),
    ];
    let got = store.get(&ids)?;
    assert!(got[1].is_none());
    for (g, want) in [
        (&got[0], &titles[7]),
        (&got[2], &titles[7]),
        (&got[3], &titles[119]),
    ] {
        assert_same(
            g.as_ref()
                .unwrap_or_else(|| panic!("t7 and t119 are stored")),
            want,
        );
    }
    // Reading only some vectors leaves the others out, and the payload whole.
    let ids = ["t7".to_string()];
    let only_text = store.get_selected(&ids, Some(&["text/m@1".to_string()]))?;
    let only_text = only_text[0]
        .as_ref()
        .unwrap_or_else(|| panic!("t7 is stored"));
    assert_eq!(only_text.vectors.keys().collect::<Vec<_>>(), ["text/m@1"]);
    assert!(only_text.multivectors.is_empty());
    assert_eq!(only_text.tags, titles[7].tags);
    let only_audio = store.get_selected(&ids, Some(&["audio/w@1".to_string()]))?;
    let only_audio = only_audio[0]
        .as_ref()
        .unwrap_or_else(|| panic!("t7 is stored"));
    assert!(only_audio.vectors.is_empty());
    assert_eq!(only_audio.multivectors.len(), 1);
    let none = store.get_selected(&ids, Some(&[]))?;
    let none = none[0].as_ref().unwrap_or_else(|| panic!("t7 is stored"));
    assert!(none.vectors.is_empty() && none.multivectors.is_empty());
    assert_eq!(none.name, titles[7].name);
    // Writing a title again replaces it: one point, the new fields.
    let mut again = entity("t7", [0.0, 1.0, 0.0]);
    again.tags.clear();
    again.outputs = vec![output("mood", "1.3.0", "run-2")];
    store.upsert(&[again.clone()])?;
    assert_eq!(store.count()?, 120);
    let got = store.get(&["t7".to_string()])?;
    assert_same(
        got[0].as_ref().unwrap_or_else(|| panic!("t7 is stored")),
        &again,
    );
    // Nearest on the dense vector finds it first, MaxSim on the tokens ranks all.
    let near = store.nearest("text/m@1", &[0.0, 1.0, 0.0], 3, None)?;
    assert_eq!(near[0].id, "t7");
    let tokens = [vec![1.0, 0.0]];
    assert_eq!(store.nearest_multi("audio/w@1", &tokens, 5, None)?.len(), 5);
    Ok(())
}

fn bad_entities_leave_the_store_untouched(backend: Backend) -> Result<(), IndexError> {
    let Some(fixture) = Fixture::new(backend, schema())? else {
        return Ok(());
    };
    let store = fixture.store();
    let good = entity("good", [1.0, 0.0, 0.0]);
    let mut short = entity("short", [1.0, 0.0, 0.0]);
    short.vectors.insert("text/m@1".into(), vec![1.0, 0.0]);
    let mut nan = entity("nan", [1.0, 0.0, 0.0]);
    nan.vectors
        .insert("text/m@1".into(), vec![f32::NAN, 0.0, 1.0]);
    let mut unknown = entity("unknown", [1.0, 0.0, 0.0]);
    unknown.vectors.insert("poster".into(), vec![1.0, 0.0, 0.0]);
    let mut no_tokens = entity("no_tokens", [1.0, 0.0, 0.0]);
    no_tokens
        .multivectors
        .insert("audio/w@1".into(), Vec::new());
    for (bad, matches) in [
        (short, "dimension"),
        (nan, "NaN"),
        (unknown, "unknown vector"),
        (no_tokens, "token vectors"),
    ] {
        // The good title in the same batch is not written either.
        let err = store
            .upsert(&[good.clone(), bad.clone()])
            .err()
            .unwrap_or_else(|| panic!("expected an error: {}", bad.id))
            .to_string();
        assert!(err.contains(matches) && err.contains(&bad.id), "{err}");
        assert_eq!(store.count()?, 0);
    }
    Ok(())
}

fn outputs_name_missing_and_stale_titles(backend: Backend) -> Result<(), IndexError> {
    let Some(fixture) = Fixture::new(backend, schema())? else {
        return Ok(());
    };
    let store = fixture.store();
    let mut current = entity("current", [1.0, 0.0, 0.0]);
    current.outputs = vec![output("mood", "2.0.0", "run-1")];
    let mut old = entity("old", [0.0, 1.0, 0.0]);
    old.outputs = vec![output("mood", "1.0.0", "run-1")];
    let mut none = entity("none", [0.0, 0.0, 1.0]);
    none.outputs = vec![output("genre", "1.0.0", "run-1")];
    store.upsert(&[current, old, none])?;
    // The run does not matter, only plugin, version and models.
    let needing = store.needing(&output("mood", "2.0.0", "run-9"))?;
    assert_eq!(needing.missing, ["none"]);
    assert_eq!(needing.stale, ["old"]);
    Ok(())
}

fn a_store_keeps_its_schema(backend: Backend) -> Result<(), IndexError> {
    let Some(fixture) = Fixture::new(backend, schema())? else {
        return Ok(());
    };
    fixture.store().upsert(&[entity("a", [1.0, 0.0, 0.0])])?;
    let other = Schema::new([("text/m@1".to_string(), VectorSpec::dense(4, "m@1"))]);
    let location = fixture.location().clone();
    // The embedded store is locked while open; the server allows a second client.
    if matches!(backend, Backend::Server) {
        let err = location
            .open(other)
            .err()
            .unwrap_or_else(|| panic!("expected an error: different schema"))
            .to_string();
        assert!(err.contains("holds vectors"), "{err}");
        let reopened = location.open_existing()?;
        assert_eq!(reopened.schema(), &schema());
        assert_eq!(reopened.count()?, 1);
    } else {
        let err = location
            .open(other)
            .err()
            .unwrap_or_else(|| panic!("expected an error: locked"))
            .to_string();
        assert!(err.contains("another process"), "{err}");
    }
    Ok(())
}

fn a_fused_vector_follows_its_parts(backend: Backend) -> Result<(), IndexError> {
    let parts = Schema::new([
        ("text/m@1".to_string(), VectorSpec::dense(3, "m@1")),
        ("image/c@1".to_string(), VectorSpec::dense(2, "c@1")),
    ]);
    let schema = Fusion::parse("text/m@1=3,image/c@1=1")?.apply_to(parts)?;
    let Some(mut fixture) = Fixture::new(backend, schema.clone())? else {
        return Ok(());
    };
    let title = |id: &str, text: [f32; 3], image: Option<[f32; 2]>| {
        let mut e = entity(id, text);
        e.multivectors.clear();
        if let Some(image) = image {
            e.vectors.insert("image/c@1".into(), image.to_vec());
        }
        e
    };
    let store = fixture.store();
    store.upsert(&[
        title("a", [1.0, 0.0, 0.0], Some([1.0, 0.0])),
        title("b", [0.0, 1.0, 0.0], Some([1.0, 0.0])),
        title("c", [1.0, 0.1, 0.0], None),
    ])?;
    let fused = |store: &dyn EntityStore, id: &str| -> Result<Option<Vec<f32>>, IndexError> {
        Ok(store
            .get(&[id.to_string()])?
            .pop()
            .flatten()
            .and_then(|e| e.vectors.get(FUSED).cloned()))
    };
    // Text weighs 3/4, image 1/4: a's fused vector is [√¾·text, √¼·image].
    let a = fused(store, "a")?.ok_or(IndexError::Engine("a has no fused vector".into()))?;
    assert_eq!(a.len(), 5);
    let want = [0.75f32.sqrt(), 0.0, 0.0, 0.5, 0.0];
    assert!(
        a.iter().zip(want).all(|(x, y)| (x - y).abs() < 1e-5),
        "{a:?}"
    );
    // a and b share the image only: cosine ¼. A search on the fused vector ranks by the
    // weighted mean of the parts.
    let hits = store.nearest(FUSED, &a, 3, Some("a"))?;
    assert_eq!(hits[0].id, "c");
    assert!((hits[1].score - 0.25).abs() < 1e-4, "{hits:?}");
    // A new text for b moves its fused vector with it.
    store.upsert(&[title("b", [1.0, 0.0, 0.0], Some([1.0, 0.0]))])?;
    let b = fused(store, "b")?.ok_or(IndexError::Engine("b has no fused vector".into()))?;
    assert_eq!(b.len(), 5);
    assert!(b.iter().zip(&a).all(|(x, y)| (x - y).abs() < 1e-5), "{b:?}");
    // The recipe is part of the schema: reopened, it is still there.
    fixture.reopen()?;
    assert_eq!(fixture.store().schema(), &schema);
    Ok(())
}
