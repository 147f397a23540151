//! Pure preprocessing functions: text to token ids, hidden states to sentence vectors. No model
//! weights, no I/O beyond reading a tokenizer file, so each piece is unit-tested on tiny inputs.

pub mod pooling;
pub mod tokenize;
