//! A tiny BERT sentence encoder: config.json, model.safetensors with BERT's tensor names,
//! tokenizer.json (WordPiece), vocab.txt and the sentence-transformers files.

use super::{Init, Weights, file_error, write_json};
use crate::ModelError;
use std::collections::HashMap;
use std::path::Path;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// Shape and seed of a tiny BERT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyBertSpec {
    /// Hidden size (= embedding dimension).
    pub hidden: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Attention heads (must divide `hidden`).
    pub heads: usize,
    /// Feed-forward size.
    pub intermediate: usize,
    /// Longest input in tokens.
    pub max_position: usize,
    /// Seed of the weight generator.
    pub seed: u64,
}

impl Default for TinyBertSpec {
    fn default() -> Self {
        TinyBertSpec {
            hidden: 32,
            layers: 2,
            heads: 4,
            intermediate: 64,
            max_position: 128,
            seed: 42,
        }
    }
}

const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const WORDS: &str = "the a an and or but of to in on at by for with from as is are was were be been \
    his her their its he she they it who whom which that this these those when where while after before \
    one two three last first new old young man woman girl boy family friend friends town city village \
    house home world war love life death night day time years year story secret past future detective \
    case crime police murder killer mystery space ship planet earth mars crew station star stars alien \
    ocean sea island mountain river forest desert storm winter summer school team game coach match race \
    music band song dance film director king queen kingdom dragon magic witch ghost haunted dark light \
    must find save escape return returns back lost discovers learns begins fight fights hunt search \
    stranded survive rescue food grow recipe flour salt cups pinch calls retired solve final grew up \
    goes ex investigator astronauts until arrives comedy drama documentary animated horror thriller \
    le la les et des un une du est dans qui que sur pour au son sa el los las y de en por con para su \
    der die das und ein eine ist mit sich den dem auf nicht von zu";

/// Writes a tiny BERT sentence encoder into `dir` (created if missing).
pub fn write_tiny_bert(dir: &Path, spec: &TinyBertSpec) -> Result<(), ModelError> {
    if spec.heads == 0 || !spec.hidden.is_multiple_of(spec.heads) {
        return Err(ModelError::Config {
            path: dir.join("config.json"),
            reason: format!(
                "{} heads do not divide hidden size {}",
                spec.heads, spec.hidden
            ),
        });
    }
    std::fs::create_dir_all(dir.join("1_Pooling")).map_err(|e| file_error(dir, e))?;
    let vocab = vocabulary();
    let vocab_txt: String = ordered_vocab(&vocab)
        .iter()
        .map(|t| format!("{t}\n"))
        .collect();
    std::fs::write(dir.join("vocab.txt"), vocab_txt).map_err(|e| file_error(dir, e))?;
    write_tokenizer(dir, &vocab)?;
    write_weights(dir, spec, vocab.len())?;

    let config = serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "tessera_tiny": true,
        "vocab_size": vocab.len(),
        "hidden_size": spec.hidden,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "intermediate_size": spec.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": spec.max_position,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "use_cache": true,
        "classifier_dropout": null,
    });
    write_json(&dir.join("config.json"), &config)?;
    write_json(
        &dir.join("modules.json"),
        &serde_json::json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]),
    )?;
    write_json(
        &dir.join("1_Pooling/config.json"),
        &serde_json::json!({"word_embedding_dimension": spec.hidden, "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false}),
    )?;
    write_json(
        &dir.join("sentence_bert_config.json"),
        &serde_json::json!({"max_seq_length": spec.max_position, "do_lower_case": false}),
    )?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &serde_json::json!({"tokenizer_class": "BertTokenizer", "do_lower_case": true, "model_max_length": spec.max_position}),
    )?;
    Ok(())
}

fn vocabulary() -> HashMap<String, u32> {
    let mut tokens: Vec<String> = SPECIAL.iter().map(|s| s.to_string()).collect();
    let chars = ('a'..='z').chain('0'..='9');
    tokens.extend(chars.clone().map(String::from));
    tokens.extend(chars.map(|c| format!("##{c}")));
    tokens.extend(
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
            .chars()
            .map(String::from),
    );
    for word in WORDS.split_whitespace() {
        if !tokens.iter().any(|t| t == word) {
            tokens.push(word.to_string());
        }
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, i as u32))
        .collect()
}

fn ordered_vocab(vocab: &HashMap<String, u32>) -> Vec<&str> {
    let mut entries: Vec<(&str, u32)> = vocab.iter().map(|(t, i)| (t.as_str(), *i)).collect();
    entries.sort_by_key(|(_, i)| *i);
    entries.into_iter().map(|(t, _)| t).collect()
}

fn write_tokenizer(dir: &Path, vocab: &HashMap<String, u32>) -> Result<(), ModelError> {
    let path = dir.join("tokenizer.json");
    let fail = |reason: String| ModelError::File {
        path: path.clone(),
        reason,
    };
    let vocab_txt = dir.join("vocab.txt");
    let model = WordPiece::from_file(&vocab_txt.to_string_lossy())
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let id = |t: &str| vocab.get(t).copied().unwrap_or(0);
    let post = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .and_then(|b| b.try_pair("[CLS] $A [SEP] $B:1 [SEP]:1"))
        .map_err(fail)?
        .special_tokens(vec![("[CLS]", id("[CLS]")), ("[SEP]", id("[SEP]"))])
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
        .map_err(|e| fail(e.to_string()))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(post));
    tokenizer.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    tokenizer
        .add_special_tokens(SPECIAL.map(|t| AddedToken::from(t, true)))
        .map_err(|e| fail(e.to_string()))?;
    tokenizer
        .save(&path, false)
        .map_err(|e| fail(e.to_string()))
}

fn write_weights(dir: &Path, spec: &TinyBertSpec, vocab_size: usize) -> Result<(), ModelError> {
    let mut w = Weights::new(spec.seed);
    let (h, i) = (spec.hidden, spec.intermediate);
    w.add(
        "embeddings.word_embeddings.weight",
        &[vocab_size, h],
        Init::Normal(0.5),
    )?;
    w.add(
        "embeddings.position_embeddings.weight",
        &[spec.max_position, h],
        Init::Normal(0.1),
    )?;
    w.add(
        "embeddings.token_type_embeddings.weight",
        &[2, h],
        Init::Normal(0.1),
    )?;
    w.norm("embeddings.LayerNorm", h)?;
    for l in 0..spec.layers {
        let p = format!("encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            w.linear(&format!("{p}.{name}"), out, inp)?;
        }
        w.norm(&format!("{p}.attention.output.LayerNorm"), h)?;
        w.norm(&format!("{p}.output.LayerNorm"), h)?;
    }
    w.add("pooler.dense.weight", &[h, h], Init::Normal(0.2))?;
    w.add("pooler.dense.bias", &[h], Init::Zeros)?;
    w.save(&dir.join("model.safetensors"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_spec_writes_identical_files() -> Result<(), Box<dyn std::error::Error>> {
        let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        write_tiny_bert(a.path(), &TinyBertSpec::default())?;
        write_tiny_bert(b.path(), &TinyBertSpec::default())?;
        for file in [
            "model.safetensors",
            "tokenizer.json",
            "config.json",
            "vocab.txt",
        ] {
            assert_eq!(
                std::fs::read(a.path().join(file))?,
                std::fs::read(b.path().join(file))?,
                "{file}"
            );
        }
        let c = tempfile::tempdir()?;
        write_tiny_bert(
            c.path(),
            &TinyBertSpec {
                seed: 7,
                ..TinyBertSpec::default()
            },
        )?;
        assert_ne!(
            std::fs::read(a.path().join("model.safetensors"))?,
            std::fs::read(c.path().join("model.safetensors"))?
        );
        Ok(())
    }

    #[test]
    fn rejects_heads_that_do_not_divide_hidden() {
        let dir = std::env::temp_dir();
        let spec = TinyBertSpec {
            heads: 5,
            ..TinyBertSpec::default()
        };
        assert!(matches!(
            write_tiny_bert(&dir, &spec),
            Err(ModelError::Config { .. })
        ));
    }
}
