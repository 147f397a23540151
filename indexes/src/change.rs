//! The change feed: every write records, with each title it changes, a change number from one
//! store-wide sequence and what changed. Readers follow the feed by asking for changes after the
//! last number they saw.
//!
//! The feed is compacted: a title is listed once, at its latest change, so a consumer that falls
//! behind catches up by reading each changed title once rather than replaying every write. A
//! write that changes nothing (same vectors, tags, IDs, outputs and catalog facts) records
//! nothing. (`tessera ingest` also skips titles whose inputs did not change, so re-running it on
//! an unchanged catalog leaves the feed quiet; a forced re-run records `tags` and `outputs`
//! changes, because every run stamps its id on them.) Titles stored before changes were
//! recorded enter the feed at their next change.

use crate::Entity;

/// One title's latest change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Position in the store's change sequence (from 1, increasing with every change).
    pub seq: u64,
    /// Title id.
    pub id: String,
    /// The ingestion run that made the change, when a plugin output changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// What changed: `created`, or some of `catalog` (catalog fields or asset contents),
    /// `vectors`, `tags`, `semantic_id`, `outputs`.
    pub what: Vec<String>,
    /// When the change was written, in Unix milliseconds; `None` for changes recorded before
    /// times were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// When the title was first stored, in Unix milliseconds, carried from each version to the
    /// next (and across `store migrate`); `None` when unknown (titles stored before times were
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
}

/// Now, in Unix milliseconds (0 on a clock set before 1970).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Stored vectors are unit-normalised (cosine distance), so an incoming vector equals a stored
/// one when its normalised form does, within float noise.
fn same_vector(stored: &[f32], incoming: &[f32]) -> bool {
    if stored.len() != incoming.len() {
        return false;
    }
    let norm = incoming.iter().map(|x| x * x).sum::<f32>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 1.0 };
    stored
        .iter()
        .zip(incoming)
        .all(|(s, i)| (s - i * scale).abs() <= 1e-6)
}

/// What writing `new` over `old` changes; empty when nothing does.
pub(crate) fn what_changed(old: Option<&Entity>, new: &Entity) -> Vec<String> {
    let Some(old) = old else {
        return vec!["created".into()];
    };
    let mut what = Vec::new();
    if old.name != new.name
        || old.year != new.year
        || old.language != new.language
        || old.metadata != new.metadata
        || old.input != new.input
    {
        what.push("catalog".into());
    }
    let dense_same = old.vectors.len() == new.vectors.len()
        && new
            .vectors
            .iter()
            .all(|(name, v)| old.vectors.get(name).is_some_and(|o| same_vector(o, v)));
    let multi_same = old.multivectors.len() == new.multivectors.len()
        && new.multivectors.iter().all(|(name, tokens)| {
            old.multivectors.get(name).is_some_and(|o| {
                o.len() == tokens.len() && o.iter().zip(tokens).all(|(a, b)| same_vector(a, b))
            })
        });
    if !dense_same || !multi_same {
        what.push("vectors".into());
    }
    if old.tags != new.tags || old.overrides != new.overrides {
        what.push("tags".into());
    }
    if old.semantic_id != new.semantic_id {
        what.push("semantic_id".into());
    }
    if old.outputs != new.outputs {
        what.push("outputs".into());
    }
    what
}

/// The entities of a write that change something, each with its change, numbered upwards from
/// the number `first` hands out for that many changes; titles the write leaves as they were
/// are left out. `previous` holds what the store has for each entity now.
pub(crate) fn number_changes<'a>(
    entities: &'a [Entity],
    previous: &[Option<Entity>],
    first: impl FnOnce(usize) -> Result<u64, crate::IndexError>,
) -> Result<Vec<(&'a Entity, Change)>, crate::IndexError> {
    type Changed<'e, 'p> = (&'e Entity, Vec<String>, Option<String>, Option<&'p Entity>);
    let changed: Vec<Changed<'a, '_>> = entities
        .iter()
        .zip(previous)
        .filter_map(|(entity, old)| {
            let what = what_changed(old.as_ref(), entity);
            let run = change_run(old.as_ref(), entity);
            (!what.is_empty()).then_some((entity, what, run, old.as_ref()))
        })
        .collect();
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let first = first(changed.len())?;
    let now = unix_ms();
    Ok(changed
        .into_iter()
        .zip(first..)
        .map(|((entity, what, run, old), seq)| {
            // A stored title keeps its creation time; a new one is created now, unless it
            // brings its time along (a copied title, whose time may be unknown).
            let created = match (old, entity.created_at) {
                (Some(old), _) => old.created_at,
                (None, Some(crate::UNKNOWN_TIME)) => None,
                (None, brought) => brought.or(Some(now)),
            };
            // Never before the title's last change, should the clock step back.
            let at = old
                .and_then(|o| o.updated_at)
                .map_or(now, |last| now.max(last));
            let change = Change {
                seq,
                id: entity.id.clone(),
                run,
                what,
                at: Some(at),
                created,
            };
            (entity, change)
        })
        .collect())
}

/// The run behind a change: that of an output the write changed.
pub(crate) fn change_run(old: Option<&Entity>, new: &Entity) -> Option<String> {
    new.outputs
        .iter()
        .find(|o| old.is_none_or(|old| !old.outputs.contains(o)))
        .map(|o| o.run.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entity() -> Entity {
        Entity {
            id: "t".into(),
            name: "T".into(),
            year: Some(2000),
            language: "en".into(),
            vectors: BTreeMap::from([("v".to_string(), vec![0.6, 0.8])]),
            outputs: vec![crate::Output {
                plugin: "p".into(),
                version: "1".into(),
                models: vec![],
                run: "run-1".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn names_what_a_write_changes() {
        let old = entity();
        assert_eq!(what_changed(None, &old), ["created"]);
        assert_eq!(change_run(None, &old).as_deref(), Some("run-1"));
        // The same vector scaled (as stored, normalised) is no change.
        let mut same = old.clone();
        same.vectors.insert("v".into(), vec![3.0, 4.0]);
        assert!(what_changed(Some(&old), &same).is_empty());
        assert_eq!(change_run(Some(&old), &same), None);

        let mut new = old.clone();
        new.vectors.insert("v".into(), vec![0.8, 0.6]);
        new.name = "T2".into();
        new.outputs[0].run = "run-2".into();
        assert_eq!(
            what_changed(Some(&old), &new),
            ["catalog", "vectors", "outputs"]
        );
        assert_eq!(change_run(Some(&old), &new).as_deref(), Some("run-2"));
    }
}
