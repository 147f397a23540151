//! Encoding with a trained [`Codebook`]: a batch of vectors to their level codes, and a colliding
//! title's ranking of the disambiguation codes. Kept apart from training and the file format
//! (codebook.rs); both read the same centroids.

use super::codebook::{Codebook, metric, normalise_rows, normalise_rows_from};
use super::kmeans::{self, Products};
use crate::IndexError;
use rayon::prelude::*;

/// Rows per part of an encoded batch: a part's residuals and products (6 + 4 MiB at 384-d and
/// 256 codes) stay near the cache while it goes through every level.
const ENCODE_PART: usize = 4096;

impl Codebook {
    /// Encodes rows: per row, `levels + 1` codes (the last is the disambiguation level's nearest
    /// code) and the squared distance of the final residual to it. Rows are normalised first; a
    /// zero or non-finite row is an error naming its position.
    pub fn encode(&self, rows: &[f32]) -> Result<Vec<Encoded>, IndexError> {
        let dim = self.header.dim;
        if !rows.len().is_multiple_of(dim) {
            return Err(IndexError::Training(format!(
                "{} floats do not form vectors of the codebook's dimension {dim}",
                rows.len()
            )));
        }
        let products = Products::for_rows(rows.len() / dim);
        if products == Products::Loops {
            return self.encode_part(rows, 0, products);
        }
        // A part goes through every level while it is in cache, and parts run side by side on
        // the thread pool, so the work between the matrix products (picking codes, residuals)
        // uses every core too.
        let parts: Vec<Result<Vec<Encoded>, IndexError>> =
            kmeans::row_ranges(rows.len() / dim, ENCODE_PART)
                .into_par_iter()
                .map(|r| self.encode_part(&rows[r.start * dim..r.end * dim], r.start, products))
                .collect();
        let mut out = Vec::with_capacity(rows.len() / dim);
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// [`Codebook::encode`] for rows that start at row `first` of the caller's batch.
    fn encode_part(
        &self,
        rows: &[f32],
        first: usize,
        products: Products,
    ) -> Result<Vec<Encoded>, IndexError> {
        let dim = self.header.dim;
        let mut residual = rows.to_vec();
        normalise_rows_from(&mut residual, dim, first)?;
        let mut out: Vec<Encoded> = (0..rows.len() / dim)
            .map(|_| Encoded {
                codes: Vec::with_capacity(self.centroids.len()),
                distance: 0.0,
            })
            .collect();
        for (l, (level, norms)) in self.centroids.iter().zip(&self.norms).enumerate() {
            let (codes, dists) =
                kmeans::nearest_via(&residual, dim, level, norms, metric(l), products)?;
            for ((x, e), (&c, &d)) in residual
                .chunks_exact_mut(dim)
                .zip(out.iter_mut())
                .zip(codes.iter().zip(&dists))
            {
                let centroid = &level[c as usize * dim..(c as usize + 1) * dim];
                x.iter_mut().zip(centroid).for_each(|(v, c)| *v -= c);
                e.codes.push(c as u16);
                e.distance = d;
            }
        }
        Ok(out)
    }

    /// The disambiguation level's codes for each vector, nearest first: the order in which a
    /// colliding title tries them. `prefixes[i]` holds the level codes [`Codebook::encode`] gave
    /// `vectors[i]`: its residual is rebuilt from them (the same subtractions as encoding), not
    /// searched for again. Computed for all colliding titles of a batch at once.
    pub(crate) fn disambiguation_orders(
        &self,
        vectors: &[&[f32]],
        prefixes: &[&[u16]],
    ) -> Result<Vec<Vec<u16>>, IndexError> {
        let dim = self.header.dim;
        if vectors.is_empty() {
            return Ok(Vec::new());
        }
        let ((extra, levels), (extra_norms, _)) = self
            .centroids
            .split_last()
            .zip(self.norms.split_last())
            .ok_or_else(|| IndexError::Training("codebook has no levels".into()))?;
        if vectors.len() != prefixes.len() {
            return Err(IndexError::Training(format!(
                "{} vectors but {} code prefixes",
                vectors.len(),
                prefixes.len()
            )));
        }
        let mut residual: Vec<f32> = Vec::with_capacity(vectors.len() * dim);
        for (i, v) in vectors.iter().enumerate() {
            if v.len() != dim {
                return Err(IndexError::Training(format!(
                    "vector {i}: {} values; the codebook encodes {dim}-d vectors",
                    v.len()
                )));
            }
            residual.extend_from_slice(v);
        }
        normalise_rows(&mut residual, dim)?;
        for (i, (x, codes)) in residual.chunks_exact_mut(dim).zip(prefixes).enumerate() {
            if codes.len() != levels.len() {
                return Err(IndexError::Training(format!(
                    "vector {i}: {} level codes; the codebook has {} levels",
                    codes.len(),
                    levels.len()
                )));
            }
            for (level, &c) in levels.iter().zip(*codes) {
                let c = usize::from(c);
                let centroid = level.get(c * dim..(c + 1) * dim).ok_or_else(|| {
                    IndexError::Training(format!("vector {i}: code {c} is not in the codebook"))
                })?;
                x.iter_mut().zip(centroid).for_each(|(v, c)| *v -= c);
            }
        }
        kmeans::rankings(
            &residual,
            dim,
            extra,
            extra_norms,
            metric(levels.len()),
            Products::for_rows(vectors.len()),
        )
    }
}

/// One vector's codes.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// `levels` codes, then the disambiguation level's nearest code.
    pub codes: Vec<u16>,
    /// Squared distance of the last residual to that disambiguation code.
    pub distance: f32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sid::codebook::tests::{config, rows};

    #[test]
    fn a_batch_encoded_in_parts_matches_one_pass_over_all_rows() -> Result<(), IndexError> {
        // More rows than one part, the last part short (one row: it joins the part before, or
        // gemm would take its matrix-vector path), a bad row in a later part.
        for (n, dim) in [(2 * ENCODE_PART + 37, 8), (ENCODE_PART + 1, 384)] {
            parts_match_one_pass(n, dim)?;
        }
        Ok(())
    }

    fn parts_match_one_pass(n: usize, dim: usize) -> Result<(), IndexError> {
        let data = rows(n, dim, 4);
        let (book, _) = Codebook::train(&data[..2000 * dim], dim, config(), "fused", None)?;
        let parts = book.encode(&data)?;
        // Reference: every level over the whole batch at once.
        let mut residual = data.clone();
        normalise_rows(&mut residual, dim)?;
        let mut whole: Vec<Vec<u16>> = vec![Vec::new(); n];
        let mut last = vec![0f32; n];
        for (l, (level, norms)) in book.centroids.iter().zip(&book.norms).enumerate() {
            let (codes, dists) = kmeans::nearest(&residual, dim, level, norms, metric(l))?;
            for (i, x) in residual.chunks_exact_mut(dim).enumerate() {
                let c = codes[i] as usize;
                x.iter_mut()
                    .zip(&level[c * dim..(c + 1) * dim])
                    .for_each(|(v, c)| *v -= c);
                whole[i].push(c as u16);
                last[i] = dists[i];
            }
        }
        assert_eq!(parts.len(), n);
        for (i, e) in parts.iter().enumerate() {
            assert_eq!((&e.codes, e.distance), (&whole[i], last[i]), "row {i}");
        }
        // A colliding title's ranking starts at its own nearest disambiguation code.
        let vectors: Vec<&[f32]> = data.chunks_exact(dim).take(50).collect();
        let prefixes: Vec<&[u16]> = whole.iter().take(50).map(|c| &c[..book.levels()]).collect();
        let orders = book.disambiguation_orders(&vectors, &prefixes)?;
        for (i, order) in orders.iter().enumerate() {
            assert_eq!(order.len(), book.codes());
            assert_eq!(order[0], whole[i][2], "row {i}");
        }
        // A bad row is named by its position in the whole batch.
        let mut bad = data.clone();
        bad[(n - 1) * dim] = f32::NAN;
        let err = book.encode(&bad).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains(&format!("vector {}:", n - 1))),
            "{err:?}"
        );
        Ok(())
    }
}
