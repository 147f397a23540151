//! Unique semantic IDs from a codebook: deterministic collision resolution.
//!
//! A title's ID is its `levels` codes and one disambiguation code. Titles whose level codes differ
//! take the disambiguation level's code nearest their residual. When several titles share all
//! level codes, the one whose residual fits its nearest disambiguation code best keeps it and the
//! others take their next-nearest free code, in order of fit, ties by title id — so the outcome
//! depends on the vectors and ids alone, never on arrival order within a batch or on a counter.
//! Only when more titles share all level codes than the level has codes (identical vectors, in
//! practice) do the remaining ones get codes past the codebook's range, in the same fit order.
//! A title kept in its previous cell by the stability slack ranks the disambiguation codes by the
//! residual of its best cell, not of the kept one (uniqueness is unaffected).

use super::codebook::{Codebook, normalise};
use super::encode::Encoded;
use crate::IndexError;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// How much worse (relative squared reconstruction error) a title's previous level codes may fit
/// under a retrained codebook and still be kept.
pub const STABILITY_SLACK: f32 = 0.1;

/// A title's semantic ID: the codebook's level codes, then one disambiguation code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SemanticId(pub Vec<u16>);

impl SemanticId {
    /// The first `n` codes.
    pub fn prefix(&self, n: usize) -> &[u16] {
        &self.0[..n.min(self.0.len())]
    }
}

impl fmt::Display for SemanticId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u16::to_string).collect();
        f.write_str(&parts.join("-"))
    }
}

impl std::str::FromStr for SemanticId {
    type Err = IndexError;

    /// Parses `12-200-7-3` (a full ID or a prefix).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| IndexError::InvalidSemanticId {
            id: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        let codes = s
            .split('-')
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| bad("codes are numbers 0..=65535 joined by '-'"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if codes.len() > 16 {
            return Err(bad("more than 16 codes"));
        }
        Ok(SemanticId(codes))
    }
}

/// One title to give an ID.
#[derive(Debug, Clone, Copy)]
pub struct SidInput<'a> {
    /// Title id (breaks ties).
    pub id: &'a str,
    /// The vector the codebook was trained for.
    pub vector: &'a [f32],
    /// Its ID before a retrain: kept when its level codes did not change (or still fit within
    /// [`STABILITY_SLACK`]) and its disambiguation code is still free.
    pub previous: Option<&'a SemanticId>,
}

/// Hands out unique IDs from one codebook, remembering which are taken and by whom.
#[derive(Debug)]
pub struct Assigner {
    codebook: Arc<Codebook>,
    /// Level codes → disambiguation code → the title holding it.
    taken: HashMap<Vec<u16>, HashMap<u16, String>>,
    /// Title → the ID it holds here.
    held: HashMap<String, SemanticId>,
    /// Titles given an ID by this assigner: what the store says about them is out of date.
    assigned: HashSet<String>,
    /// Groups (level codes) whose stored IDs were read in (see [`Assigner::mark_loaded`]).
    loaded: HashSet<Vec<u16>>,
}

impl Assigner {
    /// An assigner with no IDs taken.
    pub fn new(codebook: Arc<Codebook>) -> Self {
        Assigner {
            codebook,
            taken: HashMap::new(),
            held: HashMap::new(),
            assigned: HashSet::new(),
            loaded: HashSet::new(),
        }
    }

    /// The codebook it assigns from.
    pub fn codebook(&self) -> &Arc<Codebook> {
        &self.codebook
    }

    /// Records that `title` holds `id` in the store; other titles will not get it. Ignored for a
    /// title this assigner already gave an ID (the store has not caught up yet), and for an ID
    /// another title already holds here (a stored duplicate keeps its first holder).
    pub fn reserve(&mut self, title: &str, id: &SemanticId) {
        let levels = self.codebook.levels();
        if id.0.len() != levels + 1 || self.assigned.contains(title) {
            return;
        }
        let group = self.taken.entry(id.0[..levels].to_vec()).or_default();
        if group
            .get(&id.0[levels])
            .is_some_and(|holder| holder != title)
        {
            return;
        }
        group.insert(id.0[levels], title.to_string());
        if let Some(old) = self.held.insert(title.to_string(), id.clone())
            && old != *id
        {
            self.free(title, &old);
        }
    }

    /// Gives up `title`'s ID here, if it still holds it.
    fn release(&mut self, title: &str) {
        if let Some(old) = self.held.remove(title) {
            self.free(title, &old);
        }
    }

    /// Frees the slot of `id` when `title` is its holder.
    fn free(&mut self, title: &str, id: &SemanticId) {
        let levels = self.codebook.levels();
        if let Some(group) = self.taken.get_mut(&id.0[..levels])
            && group
                .get(&id.0[levels])
                .is_some_and(|holder| holder == title)
        {
            group.remove(&id.0[levels]);
        }
    }

    /// Forgets what this assigner gave `title` (its write failed); the caller reserves what the
    /// store still holds for it.
    pub fn abandon(&mut self, title: &str) {
        self.release(title);
        self.assigned.remove(title);
    }

    /// Whether the stored IDs of this group (level codes) were read in.
    pub fn is_loaded(&self, levels: &[u16]) -> bool {
        self.loaded.contains(levels)
    }

    /// Records that the stored IDs of this group were read in with [`Assigner::reserve`].
    pub fn mark_loaded(&mut self, levels: &[u16]) {
        self.loaded.insert(levels.to_vec());
    }

    /// Whether `kept` codes reconstruct `vector` within [`STABILITY_SLACK`] of `best`.
    fn fits_as_well(&self, vector: &[f32], kept: &[u16], best: &[u16]) -> Result<bool, String> {
        let mut x = vector.to_vec();
        normalise(&mut x)?;
        let error = |codes: &[u16]| -> f32 {
            let r = self.codebook.reconstruct(codes);
            x.iter().zip(&r).map(|(a, b)| (a - b) * (a - b)).sum()
        };
        Ok(error(kept) <= error(best) * (1.0 + STABILITY_SLACK))
    }

    /// Gives each title a unique ID (also unique against reserved ones), in input order.
    pub fn assign(&mut self, titles: &[SidInput<'_>]) -> Result<Vec<SemanticId>, IndexError> {
        check_dims(&self.codebook, titles)?;
        let mut rows = Vec::with_capacity(titles.len() * self.codebook.dim());
        for t in titles {
            rows.extend_from_slice(t.vector);
        }
        let encoded = self
            .codebook
            .encode(&rows)
            .map_err(|e| name_title(e, titles))?;
        self.resolve(titles, &encoded)
    }

    /// Resolution over already encoded titles (`encoded[i]` belongs to `titles[i]`).
    pub fn resolve(
        &mut self,
        titles: &[SidInput<'_>],
        encoded: &[Encoded],
    ) -> Result<Vec<SemanticId>, IndexError> {
        check_dims(&self.codebook, titles)?;
        let levels = self.codebook.levels();
        if encoded.len() != titles.len() {
            return Err(IndexError::Training(format!(
                "{} titles but {} encodings",
                titles.len(),
                encoded.len()
            )));
        }
        let mut seen = HashSet::with_capacity(titles.len());
        if let Some(dup) = titles.iter().find(|t| !seen.insert(t.id)) {
            return Err(IndexError::Training(format!(
                "title {} appears twice in one assignment batch",
                dup.id
            )));
        }
        // The titles being assigned give up what they held; pass 0 may hand it back.
        let mut previous: Vec<Option<SemanticId>> = Vec::with_capacity(titles.len());
        for t in titles {
            let held = self.held.get(t.id).cloned();
            previous.push(t.previous.cloned().or(held));
            self.release(t.id);
        }
        // A title whose previous level codes still fit almost as well as the best ones keeps
        // them: without this slack a retrain moves every title near a cell boundary.
        let nearest = encoded;
        let mut encoded = encoded.to_vec();
        for (i, t) in titles.iter().enumerate() {
            if let Some(prev) = &previous[i]
                && prev.0.len() == levels + 1
                && prev.0[..levels] != encoded[i].codes[..levels]
                && prev.0[..levels]
                    .iter()
                    .all(|&c| usize::from(c) < self.codebook.codes())
                && let Ok(fits) =
                    self.fits_as_well(t.vector, &prev.0[..levels], &encoded[i].codes[..levels])
                && fits
            {
                encoded[i].codes[..levels].copy_from_slice(&prev.0[..levels]);
            }
        }
        let encoded = &encoded;
        let mut out: Vec<Option<u16>> = vec![None; titles.len()];
        // Best fit first, ties by title id: the order of every pass below.
        let mut order: Vec<usize> = (0..titles.len()).collect();
        order.sort_by(|&a, &b| {
            encoded[a].codes[..levels]
                .cmp(&encoded[b].codes[..levels])
                .then(encoded[a].distance.total_cmp(&encoded[b].distance))
                .then(titles[a].id.cmp(titles[b].id))
        });
        // Pass 0: a title keeps its ID when its level codes did not move (a retrain, a re-ingest).
        for &i in &order {
            let t = &titles[i];
            if let Some(prev) = &previous[i]
                && prev.0.len() == levels + 1
                && prev.0[..levels] == encoded[i].codes[..levels]
            {
                let group = self.taken.entry(prev.0[..levels].to_vec()).or_default();
                if let std::collections::hash_map::Entry::Vacant(slot) = group.entry(prev.0[levels])
                {
                    slot.insert(t.id.to_string());
                    out[i] = Some(prev.0[levels]);
                }
            }
        }
        // Pass 1: each title tries its nearest disambiguation code.
        let mut losers = Vec::new();
        let pending: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| out[i].is_none())
            .collect();
        for i in pending {
            let group = self
                .taken
                .entry(encoded[i].codes[..levels].to_vec())
                .or_default();
            if let std::collections::hash_map::Entry::Vacant(slot) =
                group.entry(encoded[i].codes[levels])
            {
                slot.insert(titles[i].id.to_string());
                out[i] = Some(encoded[i].codes[levels]);
            } else {
                losers.push(i);
            }
        }
        // Pass 2: the others walk down their residual's ranking of the disambiguation codes
        // (the residual under the codes encoding found, before the slack above).
        let loser_titles: Vec<SidInput<'_>> = losers.iter().map(|&i| titles[i]).collect();
        let loser_vectors: Vec<&[f32]> = loser_titles.iter().map(|t| t.vector).collect();
        let loser_codes: Vec<&[u16]> = losers
            .iter()
            .map(|&i| &nearest[i].codes[..levels])
            .collect();
        let rankings = self
            .codebook
            .disambiguation_orders(&loser_vectors, &loser_codes)
            .map_err(|e| name_title(e, &loser_titles))?;
        if rankings.len() != losers.len() {
            return Err(IndexError::Training(format!(
                "{} rankings for {} colliding titles",
                rankings.len(),
                losers.len()
            )));
        }
        for (&i, ranking) in losers.iter().zip(rankings) {
            let prefix = encoded[i].codes[..levels].to_vec();
            let group = self.taken.entry(prefix).or_default();
            let code = ranking
                .into_iter()
                .find(|c| !group.contains_key(c))
                .or_else(|| {
                    (self.codebook.codes()..=usize::from(u16::MAX))
                        .map(|c| c as u16)
                        .find(|c| !group.contains_key(c))
                })
                .ok_or_else(|| {
                    IndexError::Training(format!(
                        "title {}: over 65535 titles share the semantic-ID prefix {:?}",
                        titles[i].id,
                        &encoded[i].codes[..levels]
                    ))
                })?;
            group.insert(code, titles[i].id.to_string());
            out[i] = Some(code);
        }
        let ids: Vec<SemanticId> = out
            .into_iter()
            .zip(encoded)
            .map(|(extra, e)| {
                let mut codes = e.codes[..levels].to_vec();
                codes.push(extra.unwrap_or(e.codes[levels]));
                SemanticId(codes)
            })
            .collect();
        for (t, id) in titles.iter().zip(&ids) {
            self.held.insert(t.id.to_string(), id.clone());
            self.assigned.insert(t.id.to_string());
        }
        Ok(ids)
    }
}

fn check_dims(codebook: &Codebook, titles: &[SidInput<'_>]) -> Result<(), IndexError> {
    let dim = codebook.dim();
    for t in titles {
        if t.vector.len() != dim {
            return Err(IndexError::Dimension {
                entity: t.id.to_string(),
                vector: codebook.header().source.clone(),
                expected: dim,
                got: t.vector.len(),
            });
        }
    }
    Ok(())
}

/// Encodes one title's vector (errors name the title).
pub fn encode_title(
    codebook: &Codebook,
    title: &str,
    vector: &[f32],
) -> Result<Encoded, IndexError> {
    let input = [SidInput {
        id: title,
        vector,
        previous: None,
    }];
    check_dims(codebook, &input)?;
    codebook
        .encode(vector)
        .map_err(|e| name_title(e, &input))?
        .pop()
        .ok_or_else(|| IndexError::Training(format!("title {title}: nothing encoded")))
}

fn name_title(error: IndexError, titles: &[SidInput<'_>]) -> IndexError {
    match error {
        IndexError::Training(reason) => {
            // Encoding names rows by position; say which title that is.
            let named = reason
                .strip_prefix("vector ")
                .and_then(|rest| rest.split_once(':'))
                .and_then(|(i, why)| Some((titles.get(i.parse::<usize>().ok()?)?.id, why)));
            match named {
                Some((id, why)) => IndexError::Training(format!("title {id}:{why}")),
                None => IndexError::Training(reason),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sid::SidConfig;
    use crate::sid::kmeans::Rng;

    fn codebook(rows: &[f32], dim: usize) -> Result<Arc<Codebook>, IndexError> {
        let config = SidConfig {
            levels: 2,
            codes: 4,
            iterations: 10,
            seed: 1,
        };
        Ok(Arc::new(
            Codebook::train(rows, dim, config, "fused", None)?.0,
        ))
    }

    fn data(n: usize, dim: usize) -> Vec<f32> {
        let mut rng = Rng::new(5);
        (0..n * dim).map(|_| rng.next_f64() as f32 - 0.5).collect()
    }

    #[test]
    fn ids_are_unique_even_for_identical_vectors_and_independent_of_order() -> Result<(), IndexError>
    {
        let dim = 3;
        let mut rows = data(60, dim);
        // Ten copies of one vector: more than the 4 disambiguation codes.
        for i in 0..10 {
            let first = rows[..dim].to_vec();
            rows[i * dim..(i + 1) * dim].copy_from_slice(&first);
        }
        let cb = codebook(&rows, dim)?;
        let ids: Vec<String> = (0..60).map(|i| format!("t{i:02}")).collect();
        let inputs: Vec<SidInput> = (0..60)
            .map(|i| SidInput {
                id: &ids[i],
                vector: &rows[i * dim..(i + 1) * dim],
                previous: None,
            })
            .collect();
        let forward = Assigner::new(cb.clone()).assign(&inputs)?;
        let unique: HashSet<&SemanticId> = forward.iter().collect();
        assert_eq!(unique.len(), 60, "IDs must be unique: {forward:?}");
        let mut reversed_inputs = inputs.clone();
        reversed_inputs.reverse();
        let mut backward = Assigner::new(cb.clone()).assign(&reversed_inputs)?;
        backward.reverse();
        assert_eq!(
            forward, backward,
            "same titles, same IDs, whatever the order"
        );
        // Ten copies, four disambiguation codes: the copies past the range get the codes right
        // after it, none skipped.
        let mut beyond: Vec<u16> = forward[..10]
            .iter()
            .map(|s| s.0[2])
            .filter(|&c| c >= 4)
            .collect();
        beyond.sort();
        let expected: Vec<u16> = (4..4 + beyond.len() as u16).collect();
        assert!(beyond.len() >= 6, "{forward:?}");
        assert_eq!(beyond, expected, "{forward:?}");
        // The same title twice in one batch is refused rather than leaking a slot.
        let twice = [inputs[0], inputs[0]];
        let msg = Assigner::new(cb.clone())
            .assign(&twice)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("appears twice"), "{msg}");
        Ok(())
    }

    #[test]
    fn new_titles_avoid_reserved_ids_and_previous_ids_are_kept() -> Result<(), IndexError> {
        let dim = 3;
        let rows = data(40, dim);
        let cb = codebook(&rows, dim)?;
        let first = Assigner::new(cb.clone()).assign(&[SidInput {
            id: "a",
            vector: &rows[..dim],
            previous: None,
        }])?;
        let mut assigner = Assigner::new(cb.clone());
        assigner.reserve("a", &first[0]);
        // The same vector under another id must get another ID.
        let second = assigner.assign(&[SidInput {
            id: "b",
            vector: &rows[..dim],
            previous: None,
        }])?;
        assert_eq!(first[0].prefix(2), second[0].prefix(2));
        assert_ne!(first[0], second[0]);
        // Re-ingesting "a" keeps its own ID instead of treating it as someone else's.
        let again = assigner.assign(&[SidInput {
            id: "a",
            vector: &rows[..dim],
            previous: None,
        }])?;
        assert_eq!(again[0], first[0]);
        // A retrain with unchanged level codes keeps the old disambiguation code, even a
        // non-nearest one.
        let kept = Assigner::new(cb.clone()).assign(&[SidInput {
            id: "b",
            vector: &rows[..dim],
            previous: Some(&second[0]),
        }])?;
        assert_eq!(kept[0], second[0]);
        Ok(())
    }

    #[test]
    fn ids_print_and_parse() -> Result<(), IndexError> {
        let id: SemanticId = "12-200-7-3".parse()?;
        assert_eq!(id, SemanticId(vec![12, 200, 7, 3]));
        assert_eq!(id.to_string(), "12-200-7-3");
        for bad in ["", "1--2", "a-b", "70000", "1-2-"] {
            let msg = bad
                .parse::<SemanticId>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.contains("semantic ID"), "{bad}: {msg}");
        }
        Ok(())
    }
}
