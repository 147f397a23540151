use std::path::PathBuf;

/// Everything that can go wrong loading or running a model. Each variant names the model (or
/// path, or repo) it is about, so a message read alone in a log still says what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file the model directory must hold is missing or unreadable.
    #[error("model file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// A config file exists but does not describe a supported model.
    #[error("model config {path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The model is not in the local Hugging Face cache and downloading was not allowed.
    #[error(
        "model {repo}@{revision} is not in the Hugging Face cache at {cache}; download it with \
         `huggingface-cli download {repo} --revision {revision}` on a machine with network access \
         and copy the cache over, or pass a model directory instead"
    )]
    NotInCache {
        /// Hub repo id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
        repo: String,
        /// Pinned revision (a commit sha or a branch).
        revision: String,
        /// The cache directory that was searched.
        cache: PathBuf,
    },
    /// Downloading from the hub failed.
    #[error("downloading {file} of model {repo}@{revision}: {reason}")]
    Download {
        /// Hub repo id.
        repo: String,
        /// Pinned revision.
        revision: String,
        /// The file being downloaded.
        file: String,
        /// The underlying error.
        reason: String,
    },
    /// The caller's input was rejected before it reached the model.
    #[error("model {model}: invalid input: {reason}")]
    InvalidInput {
        /// The model asked.
        model: String,
        /// What is wrong with the input.
        reason: String,
    },
    /// A media file (image, audio) is unreadable, unsupported or over a limit.
    #[error("media {file}: {reason}")]
    Media {
        /// The file (path or name).
        file: String,
        /// Why it was refused.
        reason: String,
    },
    /// A media file is over a limit (bytes, pixels, duration): refused before it could cost
    /// unbounded memory or time.
    #[error("media {file}: {reason}")]
    MediaLimit {
        /// The file (path or name).
        file: String,
        /// Which limit, and by how much.
        reason: String,
    },
    /// Tokenizing failed.
    #[error("model {model}: tokenizer: {reason}")]
    Tokenizer {
        /// The model.
        model: String,
        /// The tokenizer's error.
        reason: String,
    },
    /// The tensor computation failed.
    #[error("model {model}: {source}")]
    Candle {
        /// The model.
        model: String,
        /// The candle error.
        #[source]
        source: candle_core::Error,
    },
    /// A model file differs from the sha256 its manifest pins.
    #[error("model {model}: {path} has sha256 {got}, the manifest pins {expected}")]
    Checksum {
        /// Model name.
        model: String,
        /// The file.
        path: PathBuf,
        /// Pinned sha256.
        expected: String,
        /// Actual sha256.
        got: String,
    },
    /// The model's queue is full; the caller should back off and retry.
    #[error("model {model} is overloaded: {capacity} requests are already waiting")]
    Overloaded {
        /// The model.
        model: String,
        /// The queue's capacity.
        capacity: usize,
    },
    /// A batched call failed (the model's error, as text, is shared by every caller in the batch).
    #[error("model {model}: {reason}")]
    Batch {
        /// The model.
        model: String,
        /// What failed.
        reason: String,
    },
    /// A device was asked for that this build or machine does not have.
    #[error("device {0}")]
    Device(String),
}

impl ModelError {
    pub(crate) fn candle(model: &str) -> impl FnOnce(candle_core::Error) -> ModelError + '_ {
        move |source| ModelError::Candle {
            model: model.to_string(),
            source,
        }
    }
}
