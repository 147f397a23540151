//! `tessera-models`: the models Tessera's host runs for plugins.
//!
//! Main types:
//! - [`SentenceEncoder`]: a BERT-family sentence encoder (candle-transformers `bert`) loaded from a
//!   Hugging Face model directory, with the sentence-transformers pooling and normalisation that
//!   directory declares. It implements [`TextEmbedder`], the small synchronous interface the host
//!   calls (TEI's backend shape: name, dimension, max batch, `embed`).
//! - [`ClipVisionEncoder`]: CLIP's vision tower and projection, with Pillow-exact preprocessing
//!   ([`preprocess::image`]); it implements [`ImageEmbedder`].
//! - [`WhisperAudioEncoder`]: Whisper's encoder over 30 s log-mel windows ([`preprocess::mel`]),
//!   decoded and resampled by [`preprocess::audio`]; it implements [`AudioEmbedder`], giving one
//!   vector per window and a pooled clip vector.
//! - [`SiglipVisionEncoder`] and [`SiglipTextEncoder`]: SigLIP's towers (attention-pooled image,
//!   last-token text), scored with a sigmoid in [`zero_shot`].
//! - [`ClipTextEncoder`] and [`zero_shot`]: CLIP's text tower, and scoring an image or a text
//!   against a taxonomy of tags (prompt ensembling, softmax with the model's logit scale).
//! - [`batching`]: one scheduler thread per model merges concurrent calls into batches, with an
//!   interactive and a bulk lane and a bounded queue; [`BatchedText`] puts a text model behind it.
//! - [`loader`]: detects a model directory's architecture from config.json and loads the
//!   modalities it serves; resolves `NAME[@REVISION]` through the manifests. [`Registry`] holds
//!   loaded models by name and modality, each behind its own batching scheduler.
//! - [`identity`]: a loaded model's `name@revision` (a hub commit, or a digest of a directory's
//!   files), which names its vectors in the store.
//! - [`manifest`]: TOML manifests pinning each named model's repo, revision and file sha256.
//! - [`hub`]: resolves a (repo id, pinned revision) to a local directory through hf-hub, offline
//!   first.
//! - [`tiny`]: writes deterministic tiny random-weight models in the same HF format, for tests and
//!   offline demos.
//! - [`preprocess`]: pure functions (tokenizing, pooling) kept apart from the network.
//! - `cpu_ops` (crate-private): element-wise CPU ops the encoders share (a fast exact GELU).
//! - [`packed_linear`]: on CPUs with AVX-512, linear layers whose weights are packed once at load
//!   for an AVX-512 kernel (BERT's and Whisper's projections use it; candle's matmul elsewhere).
//!
//! What this crate must not do: know about plugins, titles or stores (data flows from the host
//! into models and back, never sideways), or download anything unless a caller asks for it.

pub mod audio;
pub mod batching;
mod cpu_ops;
mod device;
mod error;
pub mod hub;
pub mod identity;
pub mod loader;
pub mod manifest;
pub mod packed_linear;
pub mod preprocess;
mod registry;
pub mod text;
pub mod tiny;
mod tower_config;
pub mod vision;
mod weights;
pub mod zero_shot;

pub use audio::{AudioEmbedder, AudioEmbedding, BatchedAudio, WhisperAudioEncoder};
pub use candle_core::Device;
pub use device::{DeviceChoice, cpu_threads, select_device};
pub use error::ModelError;
pub use registry::Registry;
pub use text::{BatchedText, ClipTextEncoder, SentenceEncoder, SiglipTextEncoder, TextEmbedder};
pub use vision::{BatchedImage, ClipVisionEncoder, ImageEmbedder, SiglipVisionEncoder};
