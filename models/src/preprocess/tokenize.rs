//! Tokenizing a batch of texts into padded id and mask matrices.

use crate::ModelError;
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// A batch of tokenized texts, padded to its longest member, laid out row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids, `rows × seq_len`.
    pub ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding, `rows × seq_len`.
    pub mask: Vec<u32>,
    /// Number of texts.
    pub rows: usize,
    /// Padded length.
    pub seq_len: usize,
}

/// Loads `tokenizer.json` and sets it up for sentence embedding: truncate at `max_len` tokens and
/// pad each batch to its longest text with the tokenizer's own pad token.
pub fn load_tokenizer(path: &Path, model: &str, max_len: usize) -> Result<Tokenizer, ModelError> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| ModelError::File {
        path: path.to_path_buf(),
        reason: format!("not a readable tokenizer.json: {e}"),
    })?;
    // BERT pads with [PAD], T5/XLM-R with <pad>, CLIP with its end-of-text token.
    let (pad_id, pad_token) = ["[PAD]", "<pad>", "<|endoftext|>"]
        .iter()
        .find_map(|t| tokenizer.token_to_id(t).map(|id| (id, t.to_string())))
        .unwrap_or((0, "[PAD]".to_string()));
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        pad_id,
        pad_token,
        ..PaddingParams::default()
    }));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..TruncationParams::default()
        }))
        .map_err(|e| ModelError::Tokenizer {
            model: model.to_string(),
            reason: e.to_string(),
        })?;
    Ok(tokenizer)
}

/// Tokenizes `texts` (with special tokens) into one padded batch.
pub fn encode_batch(
    tokenizer: &Tokenizer,
    model: &str,
    texts: &[&str],
) -> Result<TokenBatch, ModelError> {
    let encodings =
        tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Tokenizer {
                model: model.to_string(),
                reason: e.to_string(),
            })?;
    let rows = encodings.len();
    let seq_len = encodings
        .iter()
        .map(|e| e.get_ids().len())
        .max()
        .unwrap_or(0);
    let mut ids = Vec::with_capacity(rows * seq_len);
    let mut mask = Vec::with_capacity(rows * seq_len);
    for encoding in &encodings {
        // Padding is already applied (BatchLongest), but a tokenizer loaded elsewhere may not
        // pad; pad here too so the matrix is always rectangular.
        let (e_ids, e_mask) = (encoding.get_ids(), encoding.get_attention_mask());
        ids.extend_from_slice(e_ids);
        mask.extend_from_slice(e_mask);
        ids.extend(std::iter::repeat_n(0, seq_len - e_ids.len()));
        mask.extend(std::iter::repeat_n(0, seq_len - e_mask.len()));
    }
    Ok(TokenBatch {
        ids,
        mask,
        rows,
        seq_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny;

    #[test]
    fn pads_to_longest_and_truncates() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        tiny::write_tiny_bert(dir.path(), &tiny::TinyBertSpec::default())?;
        let tokenizer = load_tokenizer(&dir.path().join("tokenizer.json"), "tiny", 8)?;
        let batch = encode_batch(
            &tokenizer,
            "tiny",
            &["the family", "a much longer sentence that goes on and on"],
        )?;
        assert_eq!(batch.rows, 2);
        assert_eq!(batch.seq_len, 8, "truncated at max_len");
        // "[CLS] the family [SEP]" then padding.
        assert_eq!(&batch.mask[..8], &[1, 1, 1, 1, 0, 0, 0, 0]);
        assert_eq!(&batch.mask[8..], &[1; 8]);
        assert_eq!(
            batch.ids[3],
            tokenizer.token_to_id("[SEP]").unwrap_or(u32::MAX)
        );
        Ok(())
    }

    #[test]
    fn missing_tokenizer_names_the_path() {
        let err = load_tokenizer(Path::new("/nonexistent/tokenizer.json"), "m", 8).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("/nonexistent/tokenizer.json"), "{msg}");
    }
}
