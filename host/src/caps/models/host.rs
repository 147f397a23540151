//! `models::Host` on [`ModelsCtx`].

use super::ModelsCtx;
use crate::runtime::bindings::{models, types::ModelError};

impl models::Host for ModelsCtx {
    #[tracing::instrument(level = "debug", skip(self, texts), fields(plugin = %self.plugin, texts = texts.len()))]
    fn embed_text(
        &mut self,
        model: String,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        if let Some(allowed) = &self.allowed
            && !allowed.contains(&model)
        {
            return Err(ModelError::Denied(format!(
                "plugin {} may not call model {model:?}",
                self.plugin
            )));
        }
        let Some(encoder) = self.registry.text(&model) else {
            return Err(ModelError::UnknownModel(format!(
                "no text model {model:?} is loaded; loaded: {}",
                self.registry.text_names().join(", ")
            )));
        };
        if texts.len() > self.limits.max_texts {
            return Err(ModelError::InvalidInput(format!(
                "{} texts in one call; the limit is {}",
                texts.len(),
                self.limits.max_texts
            )));
        }
        let bytes: usize = texts.iter().map(String::len).sum();
        if bytes > self.limits.max_bytes {
            return Err(ModelError::InvalidInput(format!(
                "{bytes} bytes of text in one call; the limit is {}",
                self.limits.max_bytes
            )));
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        encoder
            .embed(&refs)
            .map_err(|e| ModelError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::models::ModelsLimits;
    use crate::runtime::bindings::models::Host;
    use std::sync::Arc;
    use tessera_models::{Registry, TextEmbedder};

    /// A fake encoder: the vector is the text's length, so tests can check order and routing.
    #[derive(Debug)]
    struct LengthEncoder;
    impl TextEmbedder for LengthEncoder {
        fn name(&self) -> &str {
            "len"
        }
        fn dimension(&self) -> usize {
            1
        }
        fn max_batch(&self) -> usize {
            8
        }
        fn is_placeholder(&self) -> bool {
            true
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, tessera_models::ModelError> {
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    fn ctx(allowed: Option<Vec<String>>) -> ModelsCtx {
        let mut registry = Registry::default();
        registry.insert_text("text", Arc::new(LengthEncoder));
        ModelsCtx {
            plugin: "p".into(),
            registry: Arc::new(registry),
            allowed,
            limits: ModelsLimits {
                max_texts: 2,
                max_bytes: 10,
            },
        }
    }

    #[test]
    fn embeds_in_order() {
        let out = ctx(None).embed_text("text".into(), vec!["ab".into(), "abcd".into()]);
        assert_eq!(out.ok(), Some(vec![vec![2.0], vec![4.0]]));
    }

    #[test]
    fn unknown_denied_and_oversized_are_errors_for_the_guest() {
        let msg = |r: Result<Vec<Vec<f32>>, ModelError>| format!("{:?}", r.err());
        assert!(msg(ctx(None).embed_text("vision".into(), vec![])).contains("UnknownModel"));
        assert!(msg(ctx(Some(vec![])).embed_text("text".into(), vec![])).contains("Denied"));
        assert!(msg(ctx(None).embed_text("text".into(), vec!["a".into(); 3])).contains("3 texts"));
        assert!(
            msg(ctx(None).embed_text("text".into(), vec!["0123456789x".into()]))
                .contains("11 bytes")
        );
    }
}
