//! Copying a store into another — embedded to server, server to embedded, or between two of
//! either — and proving the copy whole.
//!
//! The copy reads the source in pages and writes each page as one upsert, so an interrupted
//! copy resumes by running again: titles already copied are rewritten unchanged (they record no
//! change). Verification reads both stores again and compares every title: the count, and a
//! digest of each title's content — everything but its vectors and change number, which belong
//! to one store — on both sides; vectors are compared value by value, within float noise,
//! because each backend normalises what it stores for cosine distance and a second
//! normalisation may move the last bit. The digests, in the source's order, make one checksum
//! to quote for the migrated store.

use crate::convert::entity_payload;
use crate::{Entity, EntityStore, IndexError};
use sha2::{Digest, Sha256};

/// Largest difference between a copied vector component and the source's that counts as
/// the same (normalising an already unit vector again moves it by about 1e-7).
pub const VECTOR_TOLERANCE: f32 = 1e-5;

/// What a copy did.
#[derive(Debug, Clone, PartialEq)]
pub struct Copied {
    /// Titles read from the source and written to the destination.
    pub titles: usize,
}

/// What verification found: equal counts and title digests, and the largest vector difference.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Titles in each store.
    pub titles: usize,
    /// A sha256 (hex) over every title's content digest in the source's order: the same for
    /// both stores, since each title's digest matched.
    pub checksum: String,
    /// The largest difference of any vector component.
    pub max_vector_diff: f32,
}

fn mismatch(reason: String) -> IndexError {
    IndexError::Corrupt {
        entity: "(migration)".into(),
        reason,
    }
}

/// A title's content digest: its payload (without the change record) as canonical JSON (keys
/// sorted) with its creation time, plus the names and shapes of its vectors.
fn digest(entity: &Entity) -> Result<[u8; 32], IndexError> {
    let mut payload = entity_payload(entity, None);
    payload.insert("created_at".into(), serde_json::json!(entity.created_at));
    let json = serde_json::to_vec(&payload).map_err(|e| mismatch(e.to_string()))?;
    let mut hash = Sha256::new();
    hash.update(&json);
    for (name, v) in &entity.vectors {
        hash.update(format!("|dense:{name}:{}", v.len()));
    }
    for (name, m) in &entity.multivectors {
        let dims: Vec<usize> = m.iter().map(Vec::len).collect();
        hash.update(format!("|multi:{name}:{dims:?}"));
    }
    Ok(hash.finalize().into())
}

/// Copies every title of `from` into `to`, `page` titles per read and write; `progress` is told
/// the titles copied so far after each page.
pub fn copy(
    from: &dyn EntityStore,
    to: &dyn EntityStore,
    page: usize,
    mut progress: impl FnMut(usize),
) -> Result<Copied, IndexError> {
    if from.schema() != to.schema() {
        return Err(mismatch(format!(
            "the destination holds vectors {:?}, the source {:?}",
            to.schema().vectors,
            from.schema().vectors
        )));
    }
    let mut titles = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut read = from.scan(cursor.as_deref(), page.max(1), true)?;
        // A creation time the source does not know stays unknown in the copy, rather than
        // becoming the time of the copy (see `Entity::created_at`).
        for e in &mut read.entities {
            e.created_at = Some(e.created_at.unwrap_or(crate::UNKNOWN_TIME));
        }
        to.upsert(&read.entities)?;
        titles += read.entities.len();
        progress(titles);
        match read.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    to.flush()?;
    Ok(Copied { titles })
}

/// Largest component difference between two titles' vectors of the same names and shapes
/// (the digest compares names and shapes).
fn vector_diff(a: &Entity, b: &Entity) -> f32 {
    let dense = a.vectors.iter().flat_map(|(name, v)| {
        let w = b.vectors.get(name).map(Vec::as_slice).unwrap_or_default();
        v.iter().zip(w).map(|(x, y)| (x - y).abs())
    });
    let multi = a.multivectors.iter().flat_map(|(name, m)| {
        let n = b
            .multivectors
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        m.iter()
            .zip(n)
            .flat_map(|(v, w)| v.iter().zip(w).map(|(x, y)| (x - y).abs()))
    });
    // NaN must win (f32::max would drop it): a NaN difference is a mismatch.
    dense.chain(multi).fold(0.0, |m: f32, d| {
        if m.is_nan() || d.is_nan() {
            f32::NAN
        } else {
            m.max(d)
        }
    })
}

/// Compares `to` with `from` title by title: same count, same content checksum, vectors within
/// [`VECTOR_TOLERANCE`]. Fails naming the first title that differs.
pub fn verify(
    from: &dyn EntityStore,
    to: &dyn EntityStore,
    page: usize,
) -> Result<Verified, IndexError> {
    let (source_count, copy_count) = (from.count()?, to.count()?);
    if source_count != copy_count {
        return Err(mismatch(format!(
            "the source holds {source_count} titles, the destination {copy_count}"
        )));
    }
    let mut checksum = Sha256::new();
    let mut max_vector_diff = 0.0f32;
    let mut titles = 0;
    let mut cursor: Option<String> = None;
    loop {
        let read = from.scan(cursor.as_deref(), page.max(1), true)?;
        let ids: Vec<String> = read.entities.iter().map(|e| e.id.clone()).collect();
        let copies = to.get(&ids)?;
        for (source, copy) in read.entities.iter().zip(copies) {
            let copy = copy.ok_or_else(|| {
                mismatch(format!(
                    "title {:?} is missing from the destination",
                    source.id
                ))
            })?;
            let (a, b) = (digest(source)?, digest(&copy)?);
            if a != b {
                return Err(mismatch(format!(
                    "title {:?} differs between source and destination",
                    source.id
                )));
            }
            let diff = vector_diff(source, &copy);
            if diff.is_nan() || diff > VECTOR_TOLERANCE {
                return Err(mismatch(format!(
                    "title {:?}: a vector differs by {diff} (tolerance {VECTOR_TOLERANCE})",
                    source.id
                )));
            }
            max_vector_diff = max_vector_diff.max(diff);
            checksum.update(a);
            titles += 1;
        }
        match read.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // The source changed under the scan (titles added or removed meanwhile).
    if titles != source_count {
        return Err(mismatch(format!(
            "read {titles} titles of the source, which counted {source_count}: was it written to during the migration?"
        )));
    }
    Ok(Verified {
        titles,
        checksum: checksum
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        max_vector_diff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EdgeStore, Schema, VectorSpec};
    use std::collections::BTreeMap;

    fn schema() -> Schema {
        Schema::new([
            ("text".to_string(), VectorSpec::dense(3, "m")),
            ("tokens".to_string(), VectorSpec::multi(2, "m")),
        ])
    }

    fn entity(i: usize) -> Entity {
        Entity {
            id: format!("t{i}"),
            name: format!("T{i}"),
            year: Some(2000),
            language: "en".into(),
            vectors: BTreeMap::from([("text".to_string(), vec![1.0, i as f32, 0.5])]),
            multivectors: BTreeMap::from([("tokens".to_string(), vec![vec![1.0, i as f32]])]),
            ..Default::default()
        }
    }

    #[test]
    fn a_copy_verifies_and_a_tampered_copy_does_not() -> Result<(), IndexError> {
        let dir = tempfile::tempdir().map_err(|e| mismatch(e.to_string()))?;
        let from = EdgeStore::open(&dir.path().join("a"), schema())?;
        let to = EdgeStore::open(&dir.path().join("b"), schema())?;
        from.upsert(&(0..250).map(entity).collect::<Vec<_>>())?;
        let mut seen = Vec::new();
        let copied = copy(&from, &to, 100, |n| seen.push(n))?;
        assert_eq!(copied.titles, 250);
        assert_eq!(seen, [100, 200, 250]);
        let verified = verify(&from, &to, 64)?;
        assert_eq!(verified.titles, 250);
        assert_eq!(verified.checksum.len(), 64);
        assert!(verified.max_vector_diff <= VECTOR_TOLERANCE);
        // Copying again changes nothing and still verifies.
        copy(&from, &to, 100, |_| ())?;
        assert_eq!(verify(&from, &to, 64)?.checksum, verified.checksum);
        // Creation times come across as they are, an unknown one stays unknown.
        let created = |store: &EdgeStore, id: &str| -> Result<Option<u64>, IndexError> {
            Ok(store
                .get(&[id.to_string()])?
                .pop()
                .flatten()
                .and_then(|e| e.created_at))
        };
        assert!(created(&from, "t3")?.is_some());
        assert_eq!(created(&to, "t3")?, created(&from, "t3")?);
        let unknown_dir = tempfile::tempdir().map_err(|e| mismatch(e.to_string()))?;
        let (old, copy_of_old) = (
            EdgeStore::open(&unknown_dir.path().join("a"), schema())?,
            EdgeStore::open(&unknown_dir.path().join("b"), schema())?,
        );
        let mut before_times = entity(1);
        before_times.created_at = Some(crate::UNKNOWN_TIME);
        old.upsert(&[before_times])?;
        assert_eq!(created(&old, "t1")?, None);
        copy(&old, &copy_of_old, 10, |_| ())?;
        assert_eq!(created(&copy_of_old, "t1")?, None);
        verify(&old, &copy_of_old, 10)?;

        // A title whose tags differ in the copy fails, named.
        let mut changed = entity(7);
        changed.name = "Other".into();
        to.upsert(&[changed])?;
        let err = verify(&from, &to, 64)
            .err()
            .unwrap_or_else(|| panic!("expected an error: tampered"))
            .to_string();
        assert!(err.contains("\"t7\""), "{err}");
        // A moved vector fails too.
        to.upsert(&[entity(7)])?;
        let mut moved = entity(8);
        moved.vectors.insert("text".into(), vec![0.0, 0.0, 1.0]);
        to.upsert(&[moved])?;
        let err = verify(&from, &to, 64)
            .err()
            .unwrap_or_else(|| panic!("expected an error: moved"))
            .to_string();
        assert!(
            err.contains("\"t8\"") && err.contains("vector differs"),
            "{err}"
        );
        // A missing title is a count mismatch.
        let extra = EdgeStore::open(&dir.path().join("c"), schema())?;
        extra.upsert(&[entity(1)])?;
        let err = verify(&from, &extra, 64)
            .err()
            .unwrap_or_else(|| panic!("expected an error: short"))
            .to_string();
        assert!(
            err.contains("250 titles") && err.contains("destination 1"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn stores_of_different_schemas_are_not_copied() -> Result<(), IndexError> {
        let dir = tempfile::tempdir().map_err(|e| mismatch(e.to_string()))?;
        let from = EdgeStore::open(&dir.path().join("a"), schema())?;
        let other = Schema::new([("text".to_string(), VectorSpec::dense(4, "m"))]);
        let to = EdgeStore::open(&dir.path().join("b"), other)?;
        let err = copy(&from, &to, 10, |_| ())
            .err()
            .unwrap_or_else(|| panic!("expected an error: schemas differ"));
        assert!(
            err.to_string().contains("destination holds vectors"),
            "{err}"
        );
        Ok(())
    }
}
