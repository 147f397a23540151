//! A small CLIP tokenizer: byte-level BPE with CLIP's layout (the 256 byte symbols, the same with
//! `</w>`, merges, then `<|startoftext|>` and `<|endoftext|>` as the last two ids) and the exact
//! pipeline transformers' `CLIPTokenizer` builds (NFC, whitespace collapse, lowercase, CLIP's
//! split regex, byte-level, RoBERTa-style `<|startoftext|> … <|endoftext|>`). Its merges spell out
//! a few hundred words of film and prompt vocabulary letter by letter; anything else falls back
//! to single bytes, so every text still tokenizes.

use super::{file_error, write_json};
use crate::ModelError;
use std::collections::HashSet;
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence as Normalizers};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizers;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

pub(crate) const BOS: &str = "<|startoftext|>";
pub(crate) const EOS: &str = "<|endoftext|>";

/// Words whose spelling gets merges (so prompts tokenize into whole words).
const WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "photo",
    "picture",
    "image",
    "still",
    "poster",
    "scene",
    "from",
    "film",
    "movie",
    "series",
    "show",
    "about",
    "with",
    "and",
    "in",
    "on",
    "at",
    "is",
    "this",
    "that",
    "dark",
    "bright",
    "night",
    "day",
    "city",
    "sea",
    "ocean",
    "space",
    "forest",
    "desert",
    "snow",
    "love",
    "war",
    "family",
    "crime",
    "comedy",
    "drama",
    "horror",
    "romance",
    "action",
    "documentary",
    "animation",
    "cartoon",
    "thriller",
    "mystery",
    "western",
    "music",
    "sport",
    "dog",
    "cat",
    "horse",
    "car",
    "ship",
    "robot",
    "monster",
    "ghost",
    "hero",
    "detective",
    "chef",
    "kitchen",
    "food",
    "red",
    "blue",
    "green",
    "yellow",
    "black",
    "white",
    "grey",
    "stripes",
    "gradient",
    "text",
    "people",
    "person",
    "face",
    "crowd",
    "landscape",
    "portrait",
];

/// GPT-2's byte → printable-character table that CLIP's BPE is written in.
fn bytes_to_unicode() -> Vec<char> {
    let printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut table = vec!['\0'; 256];
    let mut extra = 0u32;
    for b in 0..256u32 {
        let code = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        table[b as usize] = char::from_u32(code).unwrap_or('?');
    }
    table
}

/// The vocabulary in id order and the merges in rank order.
pub(crate) fn vocab_and_merges() -> (Vec<String>, Vec<(String, String)>) {
    let table = bytes_to_unicode();
    // CLIP orders the byte symbols printable ranges first, then the remapped ones.
    let mut order: Vec<u8> = (0..=255u8).collect();
    order.sort_by_key(|b| u32::from(table[usize::from(*b)]));
    let singles: Vec<String> = order
        .iter()
        .map(|b| table[usize::from(*b)].to_string())
        .collect();
    let mut vocab: Vec<String> = singles.clone();
    vocab.extend(singles.iter().map(|s| format!("{s}</w>")));
    let mut seen: HashSet<String> = vocab.iter().cloned().collect();
    let mut merges = Vec::new();
    for word in WORDS {
        let symbols: Vec<String> = word
            .bytes()
            .map(|b| table[usize::from(b)].to_string())
            .collect();
        let Some((last, init)) = symbols.split_last() else {
            continue;
        };
        let mut parts: Vec<String> = init.to_vec();
        parts.push(format!("{last}</w>"));
        let mut current = parts[0].clone();
        for next in &parts[1..] {
            let merged = format!("{current}{next}");
            if seen.insert(merged.clone()) {
                merges.push((current.clone(), next.clone()));
                vocab.push(merged.clone());
            }
            current = merged;
        }
    }
    vocab.push(BOS.to_string());
    vocab.push(EOS.to_string());
    (vocab, merges)
}

/// Writes vocab.json, merges.txt, tokenizer.json and the tokenizer configs into `dir`.
pub(crate) fn write_clip_tokenizer(dir: &Path, max_len: usize) -> Result<usize, ModelError> {
    let (vocab, merges) = vocab_and_merges();
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), serde_json::json!(id)))
        .collect();
    let vocab_path = dir.join("vocab.json");
    write_json(&vocab_path, &serde_json::Value::Object(map))?;
    let merges_path = dir.join("merges.txt");
    let mut text = String::from("#version: 0.2\n");
    for (a, b) in &merges {
        text.push_str(&format!("{a} {b}\n"));
    }
    std::fs::write(&merges_path, text).map_err(|e| file_error(&merges_path, e))?;

    let path = dir.join("tokenizer.json");
    let fail = |reason: String| ModelError::File {
        path: path.clone(),
        reason,
    };
    let model = BPE::from_file(
        &vocab_path.to_string_lossy(),
        &merges_path.to_string_lossy(),
    )
    .continuing_subword_prefix(String::new())
    .end_of_word_suffix("</w>".into())
    .unk_token(EOS.into())
    .fuse_unk(false)
    .build()
    .map_err(|e| fail(e.to_string()))?;
    let normalizer = Normalizers::new(vec![
        NFC.into(),
        Replace::new(
            tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
            " ",
        )
        .map_err(|e| fail(e.to_string()))?
        .into(),
        Lowercase.into(),
    ]);
    let split = Split::new(
        SplitPattern::Regex(
            r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
                .into(),
        ),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(|e| fail(e.to_string()))?;
    let pre = PreTokenizers::new(vec![split.into(), ByteLevel::new(false, true, true).into()]);
    let (bos_id, eos_id) = (vocab.len() as u32 - 2, vocab.len() as u32 - 1);
    let post = RobertaProcessing::new((EOS.into(), eos_id), (BOS.into(), bos_id))
        .trim_offsets(false)
        .add_prefix_space(false);
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(|e| fail(e.to_string()))?;
    tokenizer.with_pre_tokenizer(Some(pre));
    tokenizer.with_post_processor(Some(post));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    tokenizer
        .add_special_tokens([BOS, EOS].map(|t| AddedToken::from(t, true)))
        .map_err(|e| fail(e.to_string()))?;
    tokenizer
        .save(&path, false)
        .map_err(|e| fail(e.to_string()))?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &serde_json::json!({
            "tokenizer_class": "CLIPTokenizer",
            "bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS,
            "model_max_length": max_len, "do_lower_case": true,
        }),
    )?;
    write_json(
        &dir.join("special_tokens_map.json"),
        &serde_json::json!({"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}),
    )?;
    Ok(vocab.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_prompts_into_words_and_anything_into_bytes()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let size = write_clip_tokenizer(dir.path(), 77)?;
        let tokenizer =
            Tokenizer::from_file(dir.path().join("tokenizer.json")).map_err(|e| e.to_string())?;
        let encoding = tokenizer
            .encode("A photo of  a DOG!", true)
            .map_err(|e| e.to_string())?;
        let tokens = encoding.get_tokens();
        assert_eq!(
            tokens,
            [
                BOS,
                "a</w>",
                "photo</w>",
                "of</w>",
                "a</w>",
                "dog</w>",
                "!</w>",
                EOS
            ]
        );
        assert_eq!(encoding.get_ids().last().copied(), Some(size as u32 - 1));
        let odd = tokenizer
            .encode("Zürich 42", true)
            .map_err(|e| e.to_string())?;
        assert!(odd.get_ids().len() > 4);
        Ok(())
    }
}
