//! k-means on row-major `f32` matrices: k-means++ seeding, Lloyd iterations, re-seeding of dead
//! codes. Distances use ‖x‖² − 2x·c + ‖c‖², so the expensive part is one matrix product per chunk
//! of rows, which candle hands to its multi-threaded gemm.

use crate::IndexError;
use candle_core::{Device, Tensor};

/// Rows per matrix product: bounds the distance matrix to `CHUNK × k` floats (8 MiB at k = 256).
const CHUNK: usize = 8192;
/// Up to this many rows, dot products are plain loops rather than a matrix product.
const SMALL: usize = 4;
/// k-means++ seeds from at most this many rows; more adds time, not quality, at k ≤ a few hundred.
const SEED_SAMPLE: usize = 32_768;

fn math(e: candle_core::Error) -> IndexError {
    IndexError::Engine(format!("semantic-ID math: {e}"))
}

/// SplitMix64: a tiny deterministic generator, so that a seed gives the same codebook on every
/// machine and every version of our dependencies.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }
}

/// Independent partial sums in [`dot`] and [`sq_dist`]. A single running sum is a chain of
/// dependent additions that the compiler must keep in order (reordering float additions changes
/// the result), one lane at a time; 32 lanes written out are 32 independent chains, which it maps
/// onto SIMD registers. The result is the same on every machine: the order is the one written.
const LANES: usize = 32;

/// `Σ a·b` over the common length, summed in [`LANES`] interleaved lanes.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    lanes_sum(a, b, |x, y| x * y)
}

/// `Σ (a − b)²` over the common length, summed like [`dot`].
pub(crate) fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    lanes_sum(a, b, |x, y| (x - y) * (x - y))
}

#[inline(always)]
fn lanes_sum(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a_chunks, a_tail) = a[..n].as_chunks::<LANES>();
    let (b_chunks, b_tail) = b[..n].as_chunks::<LANES>();
    let mut acc = [0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for i in 0..LANES {
            acc[i] += term(x[i], y[i]);
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(&x, &y)| term(x, y)).sum();
    acc.iter().sum::<f32>() + tail
}

pub(crate) fn sq_norms(rows: &[f32], dim: usize) -> Vec<f32> {
    rows.chunks_exact(dim).map(|r| dot(r, r)).collect()
}

/// How a row picks its centroid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metric {
    /// Least squared distance.
    Euclidean,
    /// Largest projection `x·c/|c|`: the centroid the row points towards, whatever the
    /// centroid's length. Residuals are close to isotropic noise, and there Euclidean assignment
    /// sends most rows to the few shortest centroids (high-dimensional hubness), leaving the level
    /// with a fraction of its codes in use.
    Projection,
}

/// For every row, its centroid under `metric` and the squared distance to it.
/// `cn` holds the centroids' squared norms ([`sq_norms`]): a codebook keeps them, since for one
/// title they cost as much as the dot products.
pub(crate) fn nearest(
    rows: &[f32],
    dim: usize,
    centroids: &[f32],
    cn: &[f32],
    metric: Metric,
) -> Result<(Vec<u32>, Vec<f32>), IndexError> {
    let products = Products::for_rows(rows.len() / dim);
    nearest_via(rows, dim, centroids, cn, metric, products)
}

/// [`nearest`], with the dot products computed as `products` says: a caller splitting one batch
/// into parts passes the batch's choice, so every part's rows get the same arithmetic.
pub(crate) fn nearest_via(
    rows: &[f32],
    dim: usize,
    centroids: &[f32],
    cn: &[f32],
    metric: Metric,
    products: Products,
) -> Result<(Vec<u32>, Vec<f32>), IndexError> {
    debug_assert_eq!(cn.len(), centroids.len() / dim, "one norm per centroid");
    let mut codes = Vec::with_capacity(rows.len() / dim);
    let mut dists = Vec::with_capacity(rows.len() / dim);
    let inv_len = inverse_lengths(cn);
    for_each_dot_row(rows, dim, centroids, products, |xn, dots| {
        // The first centroid of lowest cost.
        let mut best = (0, f32::INFINITY);
        for (j, ((&d, &c), &l)) in dots.iter().zip(cn).zip(&inv_len).enumerate() {
            let cost = cost(metric, d, c, l);
            if cost < best.1 {
                best = (j, cost);
            }
        }
        let best = best.0;
        codes.push(best as u32);
        dists.push((xn - 2.0 * dots[best] + cn[best]).max(0.0));
    })?;
    Ok((codes, dists))
}

/// What choosing a centroid costs a row under `metric`, from their dot product `dot`, the
/// centroid's squared norm `norm` and its inverse length `inv_len`; lower is better. Euclidean:
/// the squared distance less the row's own norm (the same for every centroid). Projection: the
/// negated projection on the centroid's direction (a zero centroid projects nothing). One
/// formula for [`nearest_via`] and [`rankings`], so a ranking starts where `nearest` chose.
#[inline]
fn cost(metric: Metric, dot: f32, norm: f32, inv_len: f32) -> f32 {
    match metric {
        Metric::Euclidean => norm - 2.0 * dot,
        Metric::Projection => -(dot * inv_len),
    }
}

/// `1 / sqrt(norm)` per centroid, 0 for a zero centroid.
fn inverse_lengths(cn: &[f32]) -> Vec<f32> {
    cn.iter()
        .map(|&c| if c > 0.0 { c.sqrt().recip() } else { 0.0 })
        .collect()
}

/// Every centroid for each row, best first under `metric` (ties by index); `cn` as in
/// [`nearest`], `products` as in [`nearest_via`].
pub(crate) fn rankings(
    rows: &[f32],
    dim: usize,
    centroids: &[f32],
    cn: &[f32],
    metric: Metric,
    products: Products,
) -> Result<Vec<Vec<u16>>, IndexError> {
    debug_assert_eq!(cn.len(), centroids.len() / dim, "one norm per centroid");
    let mut out = Vec::with_capacity(rows.len() / dim);
    let inv_len = inverse_lengths(cn);
    let mut scored: Vec<(f32, u16)> = Vec::with_capacity(cn.len());
    for_each_dot_row(rows, dim, centroids, products, |_, dots| {
        scored.clear();
        for (j, ((&d, &c), &l)) in dots.iter().zip(cn).zip(&inv_len).enumerate() {
            scored.push((cost(metric, d, c, l), j as u16));
        }
        scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out.push(scored.iter().map(|&(_, c)| c).collect());
    })?;
    Ok(out)
}

/// Rows `0..n` in runs of `size`, except that a last run of [`SMALL`] rows or fewer joins the
/// one before: gemm multiplies a single row by a separate (matrix-vector) path, whose sums
/// round differently, and a row's codes must not depend on where a batch's parts fall.
pub(crate) fn row_ranges(n: usize, size: usize) -> Vec<std::ops::Range<usize>> {
    let size = size.max(1);
    let mut ranges: Vec<std::ops::Range<usize>> = (0..n)
        .step_by(size)
        .map(|start| start..(start + size).min(n))
        .collect();
    if ranges.len() > 1
        && ranges.last().is_some_and(|r| r.len() <= SMALL)
        && let Some(tail) = ranges.pop()
        && let Some(last) = ranges.last_mut()
    {
        last.end = tail.end;
    }
    ranges
}

/// How dot products with the centroids are computed. The two ways round differently in the last
/// bits, so one batch uses one way throughout (a near-tie then resolves the same way for all of
/// its rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Products {
    /// Plain loops: for a title or a few, building tensors would cost more than the arithmetic.
    Loops,
    /// Candle's multi-threaded matrix product.
    Matrix,
}

impl Products {
    /// The way for a batch of `rows` rows.
    pub(crate) fn for_rows(rows: usize) -> Self {
        if rows <= SMALL {
            Products::Loops
        } else {
            Products::Matrix
        }
    }
}

/// Calls `f` with each row's squared norm and its dot products with every centroid, row by row.
fn for_each_dot_row(
    rows: &[f32],
    dim: usize,
    centroids: &[f32],
    products: Products,
    mut f: impl FnMut(f32, &[f32]),
) -> Result<(), IndexError> {
    let k = centroids.len() / dim;
    if products == Products::Loops {
        let mut dots = vec![0f32; k];
        for x in rows.chunks_exact(dim) {
            for (d, c) in dots.iter_mut().zip(centroids.chunks_exact(dim)) {
                *d = dot(x, c);
            }
            f(dot(x, x), &dots);
        }
        return Ok(());
    }
    let ct = Tensor::from_slice(centroids, (k, dim), &Device::Cpu)
        .and_then(|c| c.t())
        .and_then(|c| c.contiguous())
        .map_err(math)?;
    for range in row_ranges(rows.len() / dim, CHUNK) {
        let chunk = &rows[range.start * dim..range.end * dim];
        let m = chunk.len() / dim;
        let product = Tensor::from_slice(chunk, (m, dim), &Device::Cpu)
            .and_then(|x| x.matmul(&ct))
            .map_err(math)?;
        // Read in place: a copy of the product would move 8 MiB per chunk for nothing.
        let (storage, layout) = product.storage_and_layout();
        let dots = match (&*storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(cpu), Some((start, end))) => {
                &cpu.as_slice::<f32>().map_err(math)?[start..end]
            }
            _ => {
                return Err(IndexError::Engine(
                    "semantic-ID math: the matrix product is not a contiguous CPU tensor".into(),
                ));
            }
        };
        for (x, dot) in chunk.chunks_exact(dim).zip(dots.chunks_exact(k)) {
            f(self::dot(x, x), dot);
        }
    }
    Ok(())
}

/// Calls `f` with the squared distances of each row to every centroid, row by row in order.
pub(crate) fn for_each_distance_row(
    rows: &[f32],
    dim: usize,
    centroids: &[f32],
    mut f: impl FnMut(&[f32]),
) -> Result<(), IndexError> {
    let cn = sq_norms(centroids, dim);
    let mut row = vec![0f32; cn.len()];
    let products = Products::for_rows(rows.len() / dim);
    for_each_dot_row(rows, dim, centroids, products, |xn, dots| {
        for ((r, d), c) in row.iter_mut().zip(dots).zip(&cn) {
            *r = (xn - 2.0 * d + c).max(0.0);
        }
        f(&row);
    })
}

/// k-means++ seeding (D² sampling) on a random sample of the rows.
fn seed(rows: &[f32], dim: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let n = rows.len() / dim;
    let sample: Vec<usize> = if n <= SEED_SAMPLE {
        (0..n).collect()
    } else {
        (0..SEED_SAMPLE).map(|_| rng.below(n)).collect()
    };
    let row = |i: usize| &rows[i * dim..(i + 1) * dim];
    let mut centroids = Vec::with_capacity(k * dim);
    let first = sample[rng.below(sample.len())];
    centroids.extend_from_slice(row(first));
    let mut d2: Vec<f32> = sample
        .iter()
        .map(|&i| sq_dist(row(i), row(first)))
        .collect();
    for _ in 1..k {
        let total: f64 = d2.iter().map(|&d| f64::from(d)).sum();
        let pick = if total > 0.0 {
            let mut target = rng.next_f64() * total;
            let mut chosen = d2.len() - 1;
            for (j, &d) in d2.iter().enumerate() {
                target -= f64::from(d);
                if target <= 0.0 {
                    chosen = j;
                    break;
                }
            }
            chosen
        } else {
            // Every sampled row coincides with a centroid already: duplicates are all that is left.
            rng.below(d2.len())
        };
        let c = row(sample[pick]).to_vec();
        for (j, &i) in sample.iter().enumerate() {
            d2[j] = d2[j].min(sq_dist(row(i), &c));
        }
        centroids.extend_from_slice(&c);
    }
    centroids
}

/// What one k-means run produced.
#[derive(Debug)]
pub(crate) struct Trained {
    pub centroids: Vec<f32>,
    pub assignments: Vec<u32>,
    pub iterations: usize,
    pub reseeded: usize,
}

/// Lloyd's k-means with `k` centroids over `rows`. `init` warm-starts from earlier centroids (a
/// retrain keeps code numbers where the data did not move). Codes left without rows are re-seeded
/// with the rows worst served by their centroid, so that the whole codebook stays in use.
pub(crate) fn train(
    rows: &[f32],
    dim: usize,
    k: usize,
    max_iterations: usize,
    init: Option<&[f32]>,
    metric: Metric,
    rng: &mut Rng,
) -> Result<Trained, IndexError> {
    let n = rows.len() / dim;
    if n < k {
        return Err(IndexError::Training(format!(
            "{n} vectors cannot train {k} codes per level; store at least {k} titles or use fewer codes"
        )));
    }
    let mut centroids = match init {
        Some(c) if c.len() == k * dim => c.to_vec(),
        _ => seed(rows, dim, k, rng),
    };
    let mut reseeded = 0;
    let mut iterations = 0;
    let mut assignments = Vec::new();
    for iteration in 0..=max_iterations {
        let (codes, dists) = nearest(rows, dim, &centroids, &sq_norms(&centroids, dim), metric)?;
        assignments = codes;
        iterations = iteration;
        if iteration == max_iterations {
            break;
        }
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (x, &c) in rows.chunks_exact(dim).zip(&assignments) {
            let c = c as usize;
            counts[c] += 1;
            for (s, v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                *s += f64::from(*v);
            }
        }
        let mut moved = 0f64;
        for c in 0..k {
            if counts[c] == 0 {
                continue;
            }
            for (j, s) in sums[c * dim..(c + 1) * dim].iter().enumerate() {
                let new = (*s / counts[c] as f64) as f32;
                moved += f64::from((new - centroids[c * dim + j]).abs());
                centroids[c * dim + j] = new;
            }
        }
        let dead: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
        if !dead.is_empty() {
            // The rows farthest from their centroid, most poorly served first.
            let mut worst: Vec<usize> = (0..n).collect();
            worst.sort_by(|&a, &b| dists[b].total_cmp(&dists[a]).then(a.cmp(&b)));
            for (c, &i) in dead.iter().zip(&worst) {
                centroids[c * dim..(c + 1) * dim].copy_from_slice(&rows[i * dim..(i + 1) * dim]);
            }
            reseeded += dead.len();
            continue;
        }
        if moved < 1e-6 * k as f64 {
            let (codes, _) = nearest(rows, dim, &centroids, &sq_norms(&centroids, dim), metric)?;
            assignments = codes;
            iterations = iteration + 1;
            break;
        }
    }
    Ok(Trained {
        centroids,
        assignments,
        iterations,
        reseeded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_last_run_joins_the_one_before() {
        let ends = |n, size| {
            row_ranges(n, size)
                .iter()
                .map(|r| (r.start, r.end))
                .collect::<Vec<_>>()
        };
        assert_eq!(ends(10, 4), [(0, 4), (4, 10)]);
        assert_eq!(ends(13, 4), [(0, 4), (4, 8), (8, 13)]);
        assert_eq!(ends(20, 8), [(0, 8), (8, 20)]);
        assert_eq!(ends(21, 8), [(0, 8), (8, 16), (16, 21)]);
        assert_eq!(ends(3, 8), [(0, 3)]);
        assert!(row_ranges(0, 8).is_empty());
    }

    #[test]
    fn lane_sums_match_plain_sums() {
        let mut rng = Rng::new(9);
        for n in [0, 1, 5, 31, 32, 33, 384, 1000] {
            let a: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            assert!(
                (f64::from(dot(&a, &b)) - plain).abs() < 1e-4,
                "dot, n = {n}"
            );
            let plain: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from((x - y) * (x - y)))
                .sum();
            assert!(
                (f64::from(sq_dist(&a, &b)) - plain).abs() < 1e-4,
                "sq_dist, n = {n}"
            );
        }
        // Unequal lengths: the common prefix, also past whole lanes.
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0);
        let a: Vec<f32> = (0..70).map(|i| i as f32 * 0.25).collect();
        let b: Vec<f32> = (0..33).map(|i| 1.0 - i as f32 * 0.5).collect();
        let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
        assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-3);
        assert!((f64::from(dot(&b, &a)) - plain).abs() < 1e-3);
    }

    #[test]
    fn nearest_matches_brute_force() -> Result<(), IndexError> {
        let mut rng = Rng::new(1);
        let dim = 5;
        let rows: Vec<f32> = (0..40 * dim).map(|_| rng.next_f64() as f32 - 0.5).collect();
        let cents: Vec<f32> = (0..7 * dim).map(|_| rng.next_f64() as f32 - 0.5).collect();
        let (codes, dists) = nearest(
            &rows,
            dim,
            &cents,
            &sq_norms(&cents, dim),
            Metric::Euclidean,
        )?;
        for (i, x) in rows.chunks_exact(dim).enumerate() {
            let brute: Vec<f32> = cents
                .chunks_exact(dim)
                .map(|c| x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum())
                .collect();
            let (best, d) =
                brute
                    .iter()
                    .copied()
                    .enumerate()
                    .fold(
                        (0, f32::INFINITY),
                        |b, (j, d)| if d < b.1 { (j, d) } else { b },
                    );
            assert_eq!(codes[i] as usize, best);
            assert!((dists[i] - d).abs() < 1e-5);
        }
        Ok(())
    }

    #[test]
    fn finds_well_separated_clusters_and_keeps_every_code_alive() -> Result<(), IndexError> {
        // Four tight clusters in 2-d, many duplicates: every code must end up used.
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let mut rows = Vec::new();
        let mut rng = Rng::new(7);
        for i in 0..400 {
            let c = centres[i % 4];
            rows.push(c[0] + rng.next_f64() as f32 * 0.1);
            rows.push(c[1] + rng.next_f64() as f32 * 0.1);
        }
        let t = train(&rows, 2, 4, 25, None, Metric::Euclidean, &mut rng)?;
        let mut used = [0usize; 4];
        for &a in &t.assignments {
            used[a as usize] += 1;
        }
        assert_eq!(used, [100; 4], "one code per cluster: {used:?}");
        // Eight codes over four clusters: no code may be dead after training.
        let t = train(&rows, 2, 8, 25, None, Metric::Euclidean, &mut rng)?;
        let mut used = [0usize; 8];
        for &a in &t.assignments {
            used[a as usize] += 1;
        }
        assert!(used.iter().all(|&u| u > 0), "dead codes left: {used:?}");
        Ok(())
    }

    #[test]
    fn too_few_rows_is_a_clear_error() {
        let rows = vec![0.0f32; 3 * 4];
        let msg = train(&rows, 4, 8, 5, None, Metric::Euclidean, &mut Rng::new(0))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("3 vectors cannot train 8 codes"), "{msg}");
    }
}
