//! Reading a checkpoint's `model.safetensors` into a `VarBuilder`, with errors that name the file.

use crate::ModelError;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};

/// The one weights file every encoder loads from its directory. Other checkpoints lying beside it
/// (`pytorch_model.bin`, ONNX or adapter files) are never read.
pub(crate) const WEIGHTS_FILE: &str = "model.safetensors";

/// A model directory's weights, ready for a model's `load`.
pub(crate) struct Checkpoint {
    /// The weights file, for error messages.
    pub path: PathBuf,
    /// The tensors.
    pub vb: VarBuilder<'static>,
}

impl Checkpoint {
    /// Reads `dir/model.safetensors` onto `device`. The file is read into memory rather than
    /// mmapped: mmap needs `unsafe` (the file could change under us), and encoder weights are
    /// small next to the process.
    pub(crate) fn read(dir: &Path, dtype: DType, device: &Device) -> Result<Self, ModelError> {
        let path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| ModelError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, dtype, device).map_err(|e| {
            ModelError::File {
                path: path.clone(),
                reason: format!("not a readable safetensors file: {e}"),
            }
        })?;
        Ok(Checkpoint { path, vb })
    }

    /// Maps a model-construction error: the tensors do not fit the config.
    pub(crate) fn mismatch(&self) -> impl Fn(candle_core::Error) -> ModelError + '_ {
        |e| ModelError::File {
            path: self.path.clone(),
            reason: format!("weights do not match config.json: {e}"),
        }
    }
}
