//! Semantic IDs: a title's vector turned into a short sequence of discrete codes.
//!
//! Rankers that generate item ids (generative retrieval) and features that bucket titles need
//! ids where nearby titles share prefixes. A [`Codebook`] is trained by residual k-means
//! (RQ-KMeans: k-means++ seeding, Lloyd iterations, dead codes re-seeded) on stored vectors; each
//! level quantises what the levels before it left over. [`Codebook::encode`] gives a new title its
//! codes without retraining; [`Assigner`] makes every title's [`SemanticId`] unique with one more
//! code taken from the residual (see `assign.rs` for the rule). [`stats`] reports utilisation,
//! perplexity, collisions, reconstruction error and prefix-neighbour recall.
//!
//! Codebooks are files with a content id (`sid-…`) that every stored ID records, so IDs from an
//! older codebook are recognisable.

mod assign;
mod codebook;
mod encode;
mod kmeans;
mod stats;
pub mod synthetic;

pub use assign::{Assigner, STABILITY_SLACK, SemanticId, SidInput, encode_title};
pub use codebook::{CODEBOOK_FORMAT, Codebook, Header, SidConfig, TrainReport};
pub use encode::Encoded;
pub use stats::{LevelStats, SidStats, stats};
