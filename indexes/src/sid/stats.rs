//! Quality figures of a codebook over a set of vectors (`tessera sid stats`).

use super::codebook::{Codebook, normalise_rows};
use super::encode::Encoded;
use super::kmeans;
use crate::IndexError;
use serde::Serialize;
use std::collections::HashMap;

/// Neighbours per query for prefix-neighbour recall.
const RECALL_K: usize = 10;
/// Most recall queries: the distance buffer holds 8192 × queries floats.
const MAX_QUERIES: usize = 10_000;

/// One level's code usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelStats {
    /// Codes that at least one vector uses.
    pub used: usize,
    /// `used / codes`.
    pub utilisation: f64,
    /// exp(entropy of the code distribution): the number of equally used codes it is worth.
    pub perplexity: f64,
    /// Mean squared error of the reconstruction from the levels up to this one (unit vectors,
    /// so 1.0 is what reconstructing nothing scores).
    pub reconstruction_mse: f64,
}

/// Quality of a codebook over a set of vectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SidStats {
    /// Codebook id.
    pub codebook: String,
    /// Vectors measured.
    pub titles: usize,
    /// Per level, first to last (disambiguation level not included).
    pub levels: Vec<LevelStats>,
    /// Share of titles whose level codes an earlier title already holds: how many need the
    /// disambiguation level, `1 − distinct / titles`.
    pub collision_rate: f64,
    /// Most titles sharing one set of level codes.
    pub largest_collision_group: usize,
    /// Share of a title's exact top-10 cosine neighbours that share its first code, averaged
    /// over the sampled queries.
    pub prefix_recall_at_10: f64,
    /// Queries sampled for the recall.
    pub recall_queries: usize,
}

/// Measures `codebook` over `rows` (row-major; normalised here). `encoded` must be
/// `codebook.encode(rows)`; recall is computed for up to `recall_queries` evenly spaced titles
/// against all of them, exactly.
pub fn stats(
    codebook: &Codebook,
    rows: &[f32],
    encoded: &[Encoded],
    recall_queries: usize,
) -> Result<SidStats, IndexError> {
    let dim = codebook.dim();
    let n = encoded.len();
    if rows.len() != n * dim {
        return Err(IndexError::Training(format!(
            "{} vectors of dimension {dim} but {n} encodings",
            rows.len() / dim.max(1)
        )));
    }
    let mut unit = rows.to_vec();
    normalise_rows(&mut unit, dim)?;
    let levels = codebook.levels();
    let mut level_stats = Vec::with_capacity(levels);
    for level in 0..levels {
        let mut counts = vec![0usize; codebook.codes()];
        for e in encoded {
            if let Some(c) = counts.get_mut(usize::from(e.codes[level])) {
                *c += 1;
            }
        }
        let used = counts.iter().filter(|&&c| c > 0).count();
        let entropy: f64 = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / n as f64;
                -p * p.ln()
            })
            .sum();
        let mse = encoded
            .iter()
            .zip(unit.chunks_exact(dim))
            .map(|(e, x)| {
                let r = codebook.reconstruct(&e.codes[..=level]);
                x.iter()
                    .zip(&r)
                    .map(|(a, b)| f64::from((a - b) * (a - b)))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n.max(1) as f64;
        level_stats.push(LevelStats {
            used,
            utilisation: used as f64 / codebook.codes() as f64,
            perplexity: entropy.exp(),
            reconstruction_mse: mse,
        });
    }
    let mut groups: HashMap<&[u16], usize> = HashMap::new();
    for e in encoded {
        *groups.entry(&e.codes[..levels]).or_default() += 1;
    }
    let collision_rate = if n == 0 {
        0.0
    } else {
        1.0 - groups.len() as f64 / n as f64
    };
    let (recall, queries) = prefix_recall(&unit, dim, encoded, recall_queries)?;
    Ok(SidStats {
        codebook: codebook.id().to_string(),
        titles: n,
        levels: level_stats,
        collision_rate,
        largest_collision_group: groups.values().copied().max().unwrap_or(0),
        prefix_recall_at_10: recall,
        recall_queries: queries,
    })
}

/// Exact top-k neighbours of evenly spaced queries (one pass over the data, one matrix product
/// per chunk), then the share of them in the query's first-level cell.
fn prefix_recall(
    unit: &[f32],
    dim: usize,
    encoded: &[Encoded],
    wanted: usize,
) -> Result<(f64, usize), IndexError> {
    let n = encoded.len();
    if n <= RECALL_K || wanted == 0 {
        return Ok((0.0, 0));
    }
    let q = wanted.min(n).min(MAX_QUERIES);
    let picks: Vec<usize> = (0..q).map(|j| j * n / q).collect();
    let mut queries = Vec::with_capacity(q * dim);
    for &p in &picks {
        queries.extend_from_slice(&unit[p * dim..(p + 1) * dim]);
    }
    // Per query, its current top-k as (distance, row), worst last.
    let mut best: Vec<Vec<(f32, usize)>> = vec![Vec::with_capacity(RECALL_K + 1); q];
    let mut row = 0;
    kmeans::for_each_distance_row(unit, dim, &queries, |dists| {
        for (j, &d) in dists.iter().enumerate() {
            if row == picks[j] {
                continue;
            }
            let top = &mut best[j];
            if top.len() == RECALL_K && d >= top[RECALL_K - 1].0 {
                continue;
            }
            let at = top.partition_point(|&(e, _)| e <= d);
            top.insert(at, (d, row));
            top.truncate(RECALL_K);
        }
        row += 1;
    })?;
    let mut hits = 0usize;
    let mut total = 0usize;
    for (j, top) in best.iter().enumerate() {
        let cell = encoded[picks[j]].codes[0];
        hits += top
            .iter()
            .filter(|&&(_, r)| encoded[r].codes[0] == cell)
            .count();
        total += top.len();
    }
    Ok((hits as f64 / total.max(1) as f64, q))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sid::SidConfig;
    use crate::sid::kmeans::Rng;

    #[test]
    fn figures_describe_a_small_codebook() -> Result<(), IndexError> {
        // Two far-apart blobs: the first level separates them, so neighbours share the first code.
        let dim = 4;
        let mut rng = Rng::new(9);
        let mut rows = Vec::new();
        for i in 0..200 {
            let centre = if i % 2 == 0 {
                [1.0, 0.0, 0.0, 0.0]
            } else {
                [0.0, 1.0, 0.0, 0.0]
            };
            for c in centre {
                rows.push(c + 0.05 * (rng.next_f64() as f32 - 0.5));
            }
        }
        let config = SidConfig {
            levels: 2,
            codes: 2,
            iterations: 10,
            seed: 2,
        };
        let (cb, _) = Codebook::train(&rows, dim, config, "f", None)?;
        let encoded = cb.encode(&rows)?;
        let s = stats(&cb, &rows, &encoded, 50)?;
        assert_eq!(s.titles, 200);
        assert_eq!(s.levels[0].used, 2);
        assert!((s.levels[0].perplexity - 2.0).abs() < 1e-6, "{s:?}");
        assert!(s.levels[1].reconstruction_mse < s.levels[0].reconstruction_mse);
        assert!((s.prefix_recall_at_10 - 1.0).abs() < 1e-9, "{s:?}");
        // 200 titles in at most 4 cells: almost all collide.
        assert!(s.collision_rate >= 0.98, "{s:?}");
        assert!(s.largest_collision_group >= 50);
        Ok(())
    }
}
