use std::path::PathBuf;

/// What can go wrong storing or reading entities. Variants name the entity, vector or path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A vector name the store's schema does not have.
    #[error("entity {entity}: unknown vector {vector:?} (the store has: {known})")]
    UnknownVector {
        /// Title id.
        entity: String,
        /// The vector name.
        vector: String,
        /// The schema's vector names.
        known: String,
    },
    /// A vector of the wrong length.
    #[error("entity {entity}: vector {vector:?} has dimension {got}, the store expects {expected}")]
    Dimension {
        /// Title id.
        entity: String,
        /// Vector name.
        vector: String,
        /// Schema dimension.
        expected: usize,
        /// Given dimension.
        got: usize,
    },
    /// A dense vector given for a multivector name, or the other way round.
    #[error("entity {entity}: vector {vector:?} is {expected:?} in the store's schema")]
    Kind {
        /// Title id.
        entity: String,
        /// Vector name.
        vector: String,
        /// What the schema says it is.
        expected: crate::VectorKind,
    },
    /// A multivector with no token vectors or too many.
    #[error("entity {entity}: multivector {vector:?} has {got} token vectors (1..={max} allowed)")]
    TokenCount {
        /// Title id.
        entity: String,
        /// Vector name.
        vector: String,
        /// Token vectors given.
        got: usize,
        /// The cap.
        max: usize,
    },
    /// NaN or infinity in a vector.
    #[error("entity {entity}: vector {vector:?} holds NaN or infinity at index {index}")]
    NonFinite {
        /// Title id.
        entity: String,
        /// Vector name.
        vector: String,
        /// First bad index.
        index: usize,
    },
    /// An entity id that cannot be stored.
    #[error("entity id {0:?} is invalid: ids must be 1..=512 bytes")]
    InvalidId(String),
    /// The store on disk was made with another schema.
    #[error("store {path}: {reason}")]
    Schema {
        /// Store directory.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The store's files could not be read or written.
    #[error("store {path}: {reason}")]
    Io {
        /// Store directory or file.
        path: PathBuf,
        /// The underlying error.
        reason: String,
    },
    /// A stored point could not be turned back into an entity.
    #[error("stored point for {entity}: {reason}")]
    Corrupt {
        /// Title id or point id.
        entity: String,
        /// What is wrong.
        reason: String,
    },
    /// A semantic-ID codebook file that cannot be used.
    #[error("codebook {path}: {reason}")]
    Codebook {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Semantic-ID training or encoding refused its input.
    #[error("semantic IDs: {0}")]
    Training(String),
    /// A semantic ID or prefix that does not parse.
    #[error("invalid semantic ID {id:?}: {reason}")]
    InvalidSemanticId {
        /// What was given.
        id: String,
        /// Why it is not an ID.
        reason: String,
    },
    /// A scan cursor this store did not hand out.
    #[error("invalid scan cursor {0:?}: pass the `next` of a previous page")]
    Cursor(String),
    /// A search filter out of bounds.
    #[error("invalid search filter: {0}")]
    Filter(String),
    /// A fused-vector recipe that cannot be used.
    #[error("fused vector: {0}")]
    Fusion(String),
    /// A Qdrant server refused or failed a call (after retrying transient failures).
    #[error("Qdrant server store {store}: {reason}")]
    Server {
        /// Server URL and collection.
        store: String,
        /// What failed, with the server's answer.
        reason: String,
        /// Whether the failure was of a kind that may pass (server restarting, overloaded,
        /// unreachable) and outlasted the retries, rather than a refused request.
        transient: bool,
    },
    /// The storage engine failed.
    #[error("qdrant-edge: {0}")]
    Engine(String),
}

impl IndexError {
    /// A store's writer lock was poisoned: a writer panicked mid-write, so what this handle
    /// holds in memory (the last change number) can no longer be trusted.
    pub(crate) fn poisoned() -> Self {
        IndexError::Engine("a writer panicked; reopen the store".into())
    }
}
