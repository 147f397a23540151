//! `models::Host` of contract 0.1 on [`ModelsCtx`]: text only, errors mapped onto 0.1's
//! narrower variant.

use super::ModelsCtx;
use crate::runtime::bindings::v0::{models, types::ModelError};
use crate::runtime::bindings::v1::types::ModelError as ModelErrorV1;

impl models::Host for ModelsCtx {
    #[tracing::instrument(level = "debug", skip(self, texts), fields(plugin = %self.plugin, texts = texts.len()))]
    async fn embed_text(
        &mut self,
        model: String,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let start = std::time::Instant::now();
        let out = super::embed_text(self, &model, texts).await;
        self.usage.record(start);
        out.map_err(|e| match e {
            ModelErrorV1::UnknownModel(m) => ModelError::UnknownModel(m),
            ModelErrorV1::Denied(m) => ModelError::Denied(m),
            ModelErrorV1::InvalidInput(m) => ModelError::InvalidInput(m),
            ModelErrorV1::Media(m) => ModelError::InvalidInput(format!("{m:?}")),
            ModelErrorV1::Overloaded(m) | ModelErrorV1::Failed(m) => ModelError::Failed(m),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::media::MediaLimits;
    use crate::caps::models::ModelsLimits;
    use crate::runtime::bindings::v0::models::Host;
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
            allowed: allowed.map(Arc::new),
            media: MediaLimits::default(),
            usage: Default::default(),
            decoded: crate::caps::media::Decoded::new(),
            limits: ModelsLimits {
                max_texts: 2,
                max_bytes: 10,
            },
        }
    }

    /// Calls `embed-text` the way a plugin does, waiting for it here.
    fn embed(
        ctx: &mut ModelsCtx,
        model: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(ctx.embed_text(model.into(), texts))
    }

    #[test]
    fn embeds_in_order_and_counts_the_call() {
        let mut ctx = ctx(None);
        let out = embed(&mut ctx, "text", vec!["ab".into(), "abcd".into()]);
        assert_eq!(out.ok(), Some(vec![vec![2.0], vec![4.0]]));
        assert_eq!(ctx.usage.calls, 1);
    }

    #[test]
    fn unknown_denied_and_oversized_are_errors_for_the_guest() {
        let msg = |r: Result<Vec<Vec<f32>>, ModelError>| format!("{:?}", r.err());
        assert!(msg(embed(&mut ctx(None), "vision", vec![])).contains("UnknownModel"));
        assert!(msg(embed(&mut ctx(Some(vec![])), "text", vec![])).contains("Denied"));
        assert!(msg(embed(&mut ctx(None), "text", vec!["a".into(); 3])).contains("3 texts"));
        assert!(
            msg(embed(&mut ctx(None), "text", vec!["0123456789x".into()])).contains("11 bytes")
        );
    }
}
