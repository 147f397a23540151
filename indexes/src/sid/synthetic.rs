//! Synthetic catalogue-like vectors for semantic-ID tests and benchmarks: titles cluster by
//! genre and sub-genre, as embeddings of real titles do, but no two coincide. Deterministic for a
//! seed on every machine.
//!
//! The default shape gives a title's nearest neighbour a cosine of about 0.77 (random pairs about
//! 0), close to sentence embeddings of distinct synopses. Clumpier data (near-duplicate titles)
//! collides more before disambiguation; BENCHMARKS.md has the figures.

use super::kmeans::Rng;

/// Shape of a synthetic catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Clustered {
    /// Vector dimension.
    pub dim: usize,
    /// Top-level clusters.
    pub genres: usize,
    /// Sub-clusters per genre.
    pub subgenres: usize,
    /// Spread of sub-genre centres around their genre (per coordinate, genre centres have 1).
    pub subgenre_spread: f32,
    /// Spread of titles around their sub-genre.
    pub title_spread: f32,
}

impl Default for Clustered {
    fn default() -> Self {
        Clustered {
            dim: 64,
            genres: 64,
            subgenres: 32,
            subgenre_spread: 0.4,
            title_spread: 0.8,
        }
    }
}

fn normal(rng: &mut Rng) -> f32 {
    let u = rng.next_f64().max(1e-12);
    let v = rng.next_f64();
    ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
}

impl Clustered {
    /// `n` vectors, row-major.
    pub fn generate(&self, n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let dim = self.dim;
        let genres: Vec<Vec<f32>> = (0..self.genres)
            .map(|_| (0..dim).map(|_| normal(&mut rng)).collect())
            .collect();
        let subs: Vec<Vec<f32>> = (0..self.genres * self.subgenres)
            .map(|s| {
                genres[s / self.subgenres]
                    .iter()
                    .map(|g| g + self.subgenre_spread * normal(&mut rng))
                    .collect()
            })
            .collect();
        let mut rows = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let sub = &subs[rng.below(subs.len())];
            rows.extend(sub.iter().map(|c| c + self.title_spread * normal(&mut rng)));
        }
        rows
    }
}
