//! The sentence-transformers files beside a Hugging Face checkpoint: `modules.json`,
//! `1_Pooling/config.json` and `sentence_bert_config.json`. They decide pooling, normalisation and
//! the maximum sequence length; without them we use mean pooling, no normalisation and the
//! model's position limit, which is what sentence-transformers itself falls back to.

use crate::ModelError;
use crate::preprocess::pooling::Pooling;
use serde::Deserialize;
use std::path::Path;

/// How the sentence-transformers pipeline around the transformer is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceConfig {
    /// Pooling mode.
    pub pooling: Pooling,
    /// Whether a `Normalize` module follows pooling.
    pub normalize: bool,
    /// `max_seq_length` from sentence_bert_config.json, if given.
    pub max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl SentenceConfig {
    /// Reads the sentence-transformers files in `dir`, if any.
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let mut config = SentenceConfig {
            pooling: Pooling::Mean,
            normalize: false,
            max_seq_length: None,
        };
        let modules_path = dir.join("modules.json");
        if let Some(modules) = read_json::<Vec<Module>>(&modules_path)? {
            config.normalize = modules.iter().any(|m| m.kind.ends_with("models.Normalize"));
            if let Some(pooling) = modules.iter().find(|m| m.kind.ends_with("models.Pooling")) {
                let path = dir.join(&pooling.path).join("config.json");
                if let Some(p) = read_json::<PoolingConfig>(&path)? {
                    config.pooling = match (
                        p.pooling_mode_cls_token,
                        p.pooling_mode_mean_tokens,
                        p.pooling_mode_max_tokens,
                    ) {
                        (true, false, false) => Pooling::Cls,
                        (false, true, false) => Pooling::Mean,
                        _ => {
                            return Err(ModelError::Config {
                                path,
                                reason: "only a single pooling mode, mean or cls, is supported"
                                    .into(),
                            });
                        }
                    };
                }
            }
        }
        if let Some(sb) = read_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))? {
            config.max_seq_length = sb.max_seq_length;
        }
        Ok(config)
    }
}

/// Reads and parses a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, ModelError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ModelError::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ModelError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Reads a model directory's `config.json`, which must exist.
pub(crate) fn read_model_config<T: serde::de::DeserializeOwned>(
    config_path: &Path,
) -> Result<T, ModelError> {
    read_json(config_path)?.ok_or_else(|| ModelError::File {
        path: config_path.to_path_buf(),
        reason: "missing: a Hugging Face model directory holds config.json".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pooling_and_normalize() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("1_Pooling"))?;
        std::fs::write(
            dir.path().join("modules.json"),
            r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
               {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
               {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
        )?;
        std::fs::write(
            dir.path().join("1_Pooling/config.json"),
            r#"{"pooling_mode_cls_token": true}"#,
        )?;
        std::fs::write(
            dir.path().join("sentence_bert_config.json"),
            r#"{"max_seq_length": 256}"#,
        )?;
        let config = SentenceConfig::read(dir.path())?;
        assert_eq!(
            config,
            SentenceConfig {
                pooling: Pooling::Cls,
                normalize: true,
                max_seq_length: Some(256)
            }
        );
        Ok(())
    }

    #[test]
    fn defaults_without_files_and_rejects_garbage() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let config = SentenceConfig::read(dir.path())?;
        assert_eq!(config.pooling, Pooling::Mean);
        assert!(!config.normalize);
        std::fs::write(dir.path().join("modules.json"), "not json")?;
        let msg = SentenceConfig::read(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("modules.json"), "{msg}");
        Ok(())
    }
}
