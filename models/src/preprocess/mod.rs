//! Pure preprocessing functions: text to token ids, image bytes to pixel tensors, hidden states to
//! sentence vectors. No model weights and no I/O beyond reading the file asked for, so each piece
//! is unit-tested on tiny inputs.

pub mod audio;
pub mod image;
pub mod mel;
pub mod pooling;
pub mod resize;
pub mod tokenize;
