//! Filtered similarity search, on every backend: each filter part narrows the hits to exactly
//! the titles that meet it, paging is consistent, the query title stays out, bad queries and
//! filters are refused before anything is read.

#[macro_use]
mod common;

use common::{Backend, Fixture};
use std::collections::{BTreeMap, HashSet};
use tessera_indexes::sid::SemanticId;
use tessera_indexes::{
    Entity, EntityStore, HitVector, IndexError, Schema, Search, SearchFilter, SearchQuery,
    StoredSid, Tag, TagFilter, VectorSpec,
};

const DIM: usize = 4;
const N: usize = 120;

fn schema() -> Schema {
    Schema::new([
        ("text".to_string(), VectorSpec::dense(DIM, "m")),
        ("frames".to_string(), VectorSpec::multi(DIM, "m")),
    ])
}

fn vector(i: usize) -> Vec<f32> {
    // No two titles score exactly alike against any query here: ties may come back in either
    // order, which would make page boundaries ambiguous.
    let a = i as f32 * 0.05;
    vec![
        a.cos(),
        a.sin(),
        0.3 + i as f32 * 0.002,
        (i % 7) as f32 * 0.1,
    ]
}

fn tag(name: &str, value: Option<&str>, confidence: f32) -> Tag {
    Tag {
        name: name.into(),
        value: value.map(str::to_string),
        confidence,
        plugin: "p".into(),
        plugin_version: "1".into(),
        span: None,
        evidence: None,
        run: None,
        models: Vec::new(),
    }
}

/// Title i: year 1990 + i % 30 (none for every 10th), language en/fr/de by i % 3, genre
/// drama (confidence i / N) for even i, comedy for odd; mood=dark on multiples of 5 with a
/// confidence of 0.2, and a semantic ID [i % 4, i].
fn entity(i: usize) -> Entity {
    let mut tags = vec![if i.is_multiple_of(2) {
        tag("genre", Some("drama"), i as f32 / N as f32)
    } else {
        tag("genre", Some("comedy"), 0.9)
    }];
    if i.is_multiple_of(5) {
        tags.push(tag("mood", Some("dark"), 0.2));
    }
    Entity {
        id: format!("t{i:03}"),
        name: format!("Title {i}"),
        year: (!i.is_multiple_of(10)).then(|| 1990 + (i % 30) as u16),
        language: ["en", "fr", "de"][i % 3].into(),
        vectors: BTreeMap::from([("text".to_string(), vector(i))]),
        multivectors: BTreeMap::from([("frames".to_string(), vec![vector(i), vector(i + 1)])]),
        tags,
        semantic_id: Some(StoredSid {
            codebook: "sid-test".into(),
            id: SemanticId(vec![(i % 4) as u16, i as u16]),
        }),
        ..Default::default()
    }
}

on_both_backends!(
    each_filter_part_keeps_exactly_the_matching_titles,
    pages_are_consistent_and_the_query_title_is_left_out,
    bad_queries_and_filters_are_refused,
);

/// The N titles in a new store; `None` where the backend is skipped.
fn store(backend: Backend) -> Result<Option<Fixture>, IndexError> {
    let Some(fixture) = Fixture::new(backend, schema())? else {
        return Ok(None);
    };
    fixture
        .store()
        .upsert(&(0..N).map(entity).collect::<Vec<_>>())?;
    Ok(Some(fixture))
}

/// Ids of every hit (limit N) under `filter`.
fn hits(store: &dyn EntityStore, filter: SearchFilter) -> Result<HashSet<String>, IndexError> {
    let query = vector(0);
    let search = Search {
        filter,
        ..Search::new("text", SearchQuery::Dense(&query), N)
    };
    Ok(store.search(&search)?.into_iter().map(|n| n.id).collect())
}

fn expected(keep: impl Fn(usize) -> bool) -> HashSet<String> {
    (0..N)
        .filter(|&i| keep(i))
        .map(|i| format!("t{i:03}"))
        .collect()
}

fn each_filter_part_keeps_exactly_the_matching_titles(backend: Backend) -> Result<(), IndexError> {
    let Some(fixture) = store(backend)? else {
        return Ok(());
    };
    let store = fixture.store();
    assert_eq!(hits(store, SearchFilter::default())?, expected(|_| true));

    let drama = |min_confidence: f32| TagFilter {
        name: "genre".into(),
        value: Some("drama".into()),
        min_confidence,
    };
    assert_eq!(
        hits(
            store,
            SearchFilter {
                tags: vec![drama(0.0)],
                ..Default::default()
            }
        )?,
        expected(|i| i % 2 == 0)
    );
    // Confidence must hold on the same tag entry as the value: odd titles have genre=comedy at
    // 0.9, which must not satisfy "drama with confidence >= 0.5".
    assert_eq!(
        hits(
            store,
            SearchFilter {
                tags: vec![drama(0.5)],
                ..Default::default()
            }
        )?,
        expected(|i| i % 2 == 0 && i as f32 / N as f32 >= 0.5)
    );
    // Two tags: both must be present.
    assert_eq!(
        hits(
            store,
            SearchFilter {
                tags: vec![
                    drama(0.0),
                    TagFilter {
                        name: "mood".into(),
                        value: None,
                        min_confidence: 0.0
                    }
                ],
                ..Default::default()
            }
        )?,
        expected(|i| i % 10 == 0)
    );
    let year = |i: usize| (!i.is_multiple_of(10)).then(|| 1990 + i % 30);
    assert_eq!(
        hits(
            store,
            SearchFilter {
                year_min: Some(2000),
                year_max: Some(2005),
                ..Default::default()
            }
        )?,
        expected(|i| year(i).is_some_and(|y| (2000..=2005).contains(&y)))
    );
    assert_eq!(
        hits(
            store,
            SearchFilter {
                languages: vec!["fr".into(), "de".into()],
                ..Default::default()
            }
        )?,
        expected(|i| i % 3 != 0)
    );
    assert_eq!(
        hits(
            store,
            SearchFilter {
                sid_prefix: vec![2],
                languages: vec!["en".into()],
                ..Default::default()
            }
        )?,
        expected(|i| i % 4 == 2 && i % 3 == 0)
    );
    assert_eq!(
        hits(
            store,
            SearchFilter {
                sid_prefix: vec![3, 7],
                ..Default::default()
            }
        )?,
        expected(|i| i == 7)
    );
    Ok(())
}

fn pages_are_consistent_and_the_query_title_is_left_out(
    backend: Backend,
) -> Result<(), IndexError> {
    let Some(fixture) = store(backend)? else {
        return Ok(());
    };
    let store = fixture.store();
    let query = vector(40);
    let all = store.search(&Search {
        exclude: Some("t040"),
        ..Search::new("text", SearchQuery::Dense(&query), 30)
    })?;
    assert_eq!(all.len(), 30);
    assert!(all.iter().all(|n| n.id != "t040"));
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
    let mut paged = Vec::new();
    for page in 0..3 {
        paged.extend(store.search(&Search {
            exclude: Some("t040"),
            offset: page * 10,
            ..Search::new("text", SearchQuery::Dense(&query), 10)
        })?);
    }
    let ids = |v: &[tessera_indexes::Neighbor]| v.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&all));

    // Vectors come back only when asked for, normalised as stored.
    assert!(all.iter().all(|n| n.vector.is_none()));
    let with = store.search(&Search {
        with_vectors: true,
        ..Search::new("text", SearchQuery::Dense(&query), 3)
    })?;
    match &with[0].vector {
        Some(HitVector::Dense(v)) => {
            assert_eq!(v.len(), DIM);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
        }
        other => panic!("expected a dense vector, got {other:?}"),
    }
    let tokens = vec![vector(9), vector(10)];
    let multi = store.search(&Search {
        with_vectors: true,
        filter: SearchFilter {
            languages: vec!["en".into()],
            ..Default::default()
        },
        ..Search::new("frames", SearchQuery::Multi(&tokens), 2)
    })?;
    assert_eq!(multi[0].id, "t009");
    assert!(matches!(&multi[0].vector, Some(HitVector::Multi(t)) if t.len() == 2));
    Ok(())
}

fn bad_queries_and_filters_are_refused(backend: Backend) -> Result<(), IndexError> {
    let Some(fixture) = store(backend)? else {
        return Ok(());
    };
    let store = fixture.store();
    let query = vector(1);
    let bad_filter = Search {
        filter: SearchFilter {
            year_min: Some(2010),
            year_max: Some(2000),
            ..Default::default()
        },
        ..Search::new("text", SearchQuery::Dense(&query), 5)
    };
    assert!(matches!(
        store.search(&bad_filter),
        Err(IndexError::Filter(_))
    ));
    let unknown = Search::new("poster", SearchQuery::Dense(&query), 5);
    assert!(matches!(
        store.search(&unknown),
        Err(IndexError::UnknownVector { .. })
    ));
    let wrong_kind = Search::new("frames", SearchQuery::Dense(&query), 5);
    assert!(matches!(
        store.search(&wrong_kind),
        Err(IndexError::Kind { .. })
    ));
    let short = [1.0f32, 0.0];
    let wrong_dim = Search::new("text", SearchQuery::Dense(&short), 5);
    assert!(matches!(
        store.search(&wrong_dim),
        Err(IndexError::Dimension { .. })
    ));
    let nan = [f32::NAN, 0.0, 0.0, 0.0];
    assert!(matches!(
        store.search(&Search::new("text", SearchQuery::Dense(&nan), 5)),
        Err(IndexError::NonFinite { .. })
    ));
    Ok(())
}
