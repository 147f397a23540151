//! Running one title through the plugins: the part of ingestion that runs on the plugin
//! runtime, as a task of its own, so it owns what it needs.

use crate::caps::media::Decoded;
use crate::catalog::{Inputs, Title};
use crate::runtime::{Analysis, Plugin, PluginError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tessera_indexes::{Entity, Output, VectorKind};

/// The plugin set and what every title's analysis records; cheap to clone into a task.
#[derive(Debug, Clone)]
pub(super) struct Analyzer {
    /// The plugins in the order they run. Swapped as a whole by `Pipeline::swap_plugins`; each
    /// title takes one snapshot, so it never mixes two versions of the set.
    pub(super) plugins: Arc<RwLock<Arc<[Plugin]>>>,
    /// This run's id, recorded on every output it writes.
    pub(super) run: String,
    /// Assets decoded and decodes reused, over all titles.
    pub(super) decode_counts: Arc<(AtomicUsize, AtomicUsize)>,
    /// The taxonomy's digest, part of every input fingerprint when there is one.
    pub(super) taxonomy_digest: Option<String>,
    /// Asset digests kept across passes (`Pipeline::with_digest_cache`).
    pub(super) digests: Option<Arc<crate::catalog::DigestCache>>,
}

/// Adds a title's decode counts to the run's totals when the title is done, however it ends.
fn scopeguard_counts<'a>(
    totals: &'a (AtomicUsize, AtomicUsize),
    decoded: &'a Decoded,
) -> impl Drop + 'a {
    struct AddOnDrop<'a>(&'a (AtomicUsize, AtomicUsize), &'a Decoded);
    impl Drop for AddOnDrop<'_> {
        fn drop(&mut self) {
            let c = self.1.counts();
            self.0.0.fetch_add(c.decodes, Ordering::Relaxed);
            self.0.1.fetch_add(c.reuses, Ordering::Relaxed);
        }
    }
    AddOnDrop(totals, decoded)
}

impl Analyzer {
    /// The plugin set titles start with from now on.
    pub(super) fn plugins(&self) -> Arc<[Plugin]> {
        // A poisoned lock still holds a whole set: swaps replace the Arc in one assignment.
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What a title's outputs are made from: its catalog fields and asset contents, and the
    /// taxonomy the tags go through. Taken before the plugins read the assets, so a file
    /// replaced during the analysis makes the title stale rather than wrongly current.
    pub(super) fn inputs(&self, title: &Title) -> Inputs {
        let mut inputs = match &self.digests {
            Some(cache) => crate::catalog::inputs_cached(title, cache),
            None => crate::catalog::inputs(title),
        };
        if let Some(digest) = &self.taxonomy_digest {
            inputs.fingerprint = format!("{}+taxonomy:{digest}", inputs.fingerprint);
        }
        inputs
    }

    /// Every plugin on `title`, in order, each seeing the tags of those before it; `inputs` are
    /// taken before (see [`Analyzer::inputs`]).
    pub(super) async fn analyze(
        &self,
        title: &Title,
        inputs: Inputs,
    ) -> Result<Entity, (String, PluginError)> {
        let mut entity = Entity {
            id: title.id.clone(),
            name: title.name.clone(),
            year: title.year,
            language: title.language.clone(),
            metadata: title.metadata.clone(),
            input: Some(inputs.fingerprint),
            assets: inputs.assets,
            ..Default::default()
        };
        // Every plugin on this title reads the same decoded assets.
        let decoded = Decoded::new();
        let _count_on_drop = scopeguard_counts(&self.decode_counts, &decoded);
        let plugins = self.plugins();
        for plugin in plugins.iter() {
            let Analysis {
                tags,
                embeddings,
                token_sequences,
            } = plugin
                .analyze_async(title, &entity.tags, &decoded)
                .await
                .map_err(|e| (plugin.info().name.clone(), e))?;
            let models = plugin.output_models();
            entity.tags.extend(tags.into_iter().map(|mut t| {
                t.run = Some(self.run.clone());
                t.models = models.clone();
                t
            }));
            entity.outputs.push(Output {
                plugin: plugin.info().name.clone(),
                version: plugin.info().version.clone(),
                models,
                run: self.run.clone(),
            });
            // Outputs are stored under their model's name (`schema_for` checked each declared
            // output's model is loaded, and the plugin produces only declared outputs).
            let stored = |output: &str, kind| {
                plugin.store_name(output, kind).ok_or_else(|| {
                    let name = plugin.info().name.clone();
                    let reason = format!("output {output:?} has no loaded model to store it by");
                    (name, PluginError::Host(reason))
                })
            };
            for e in embeddings {
                let name = stored(&e.name, VectorKind::Dense)?;
                entity.vectors.insert(name, e.vector);
            }
            for t in token_sequences
                .into_iter()
                .filter(|t| !t.vectors.is_empty())
            {
                let name = stored(&t.name, VectorKind::Multi)?;
                entity.multivectors.insert(name, t.vectors);
            }
        }
        Ok(entity)
    }
}
