//! Ingestion: every plugin on every title, validated output into the store.
//!
//! A title is written only when every plugin succeeded on it, so a failure never replaces good
//! stored data with partial output; the failure is reported and the run goes on with the next
//! title.

use crate::caps::media::DecodeCounts;
use crate::catalog::Title;
use crate::runtime::{Plugin, PluginError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tessera_indexes::sid::Codebook;
use tessera_indexes::sid_store::IngestIds;
use tessera_indexes::{
    Entity, EntityStore, IndexError, Schema, TagOverride, VectorKind, VectorSpec,
};
use tessera_models::Registry;

/// One title that could not be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Title id.
    pub title: String,
    /// Plugin that failed (empty when the store failed).
    pub plugin: String,
    /// Machine-readable kind (`deadline`, `plugin-error`, `store`, ...).
    pub kind: String,
    /// Human-readable message.
    pub message: String,
    /// The title's input fingerprint as it was read for this attempt (catalog fields, asset
    /// contents): a retry is worth it once the inputs differ from it.
    pub input: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Titles written to the store.
    pub stored: usize,
    /// Titles that were not, with why.
    pub failures: Vec<Failure>,
}

/// Why a pipeline could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A plugin declares an output whose model the store cannot name: not loaded, or a
    /// two-tower model without the modality.
    #[error("plugin {plugin}: output {embedding:?}: {reason} (loaded models: {loaded})")]
    UnknownModel {
        /// Plugin name.
        plugin: String,
        /// The output's name.
        embedding: String,
        /// What is wrong with its model.
        reason: String,
        /// Loaded models.
        loaded: String,
    },
    /// Two outputs would be stored as one vector: same modality, model revision and kind.
    #[error(
        "{first} and {second} would both be stored as vector {name:?}: a title holds one vector \
         per modality, model revision and kind; drop one output or use another model for it"
    )]
    DuplicateVector {
        /// The store's vector name.
        name: String,
        /// The first output (plugin and output name).
        first: String,
        /// The second.
        second: String,
    },
    /// The plugins' `after` declarations cannot be satisfied.
    #[error("plugin order: {0}")]
    Ordering(String),
}

/// Orders `plugins` so that each runs after the plugins it lists in `after` (a stable
/// topological sort: otherwise the given order is kept). A missing plugin or a cycle is an error
/// naming them.
pub fn order_plugins(plugins: Vec<Plugin>) -> Result<Vec<Plugin>, PipelineError> {
    let names: Vec<String> = plugins.iter().map(|p| p.info().name.clone()).collect();
    for plugin in &plugins {
        for wanted in &plugin.info().after {
            if !names.contains(wanted) {
                return Err(PipelineError::Ordering(format!(
                    "plugin {} reads the tags of {wanted:?}, which is not loaded (loaded: {})",
                    plugin.info().name,
                    names.join(", ")
                )));
            }
        }
    }
    let mut pending: Vec<Plugin> = plugins;
    let mut ordered: Vec<Plugin> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|p| {
            p.info()
                .after
                .iter()
                .all(|w| ordered.iter().any(|o| &o.info().name == w))
        });
        let Some(i) = ready else {
            let stuck: Vec<&str> = pending.iter().map(|p| p.info().name.as_str()).collect();
            return Err(PipelineError::Ordering(format!(
                "the `after` declarations of {} form a cycle",
                stuck.join(", ")
            )));
        };
        ordered.push(pending.remove(i));
    }
    Ok(ordered)
}

/// The store schema implied by the plugins' declared embeddings and the models' dimensions.
/// Each output is stored under its modality and model identity ([`Plugin::store_name`]), so two
/// outputs of one model and kind (one vector per title per model revision) are refused.
pub fn schema_for(plugins: &[Plugin], registry: &Registry) -> Result<Schema, PipelineError> {
    let mut vectors = BTreeMap::new();
    let mut writers: BTreeMap<String, String> = BTreeMap::new();
    for plugin in plugins {
        let info = plugin.info();
        let dense = info.embeddings.iter().map(|o| (o, VectorKind::Dense));
        let multi = info.token_sequences.iter().map(|o| (o, VectorKind::Multi));
        for ((output, model), kind) in dense.chain(multi) {
            let (modality, dim, identity) =
                crate::runtime::output_model(registry, model).map_err(|reason| {
                    let mut loaded = [
                        registry.text_names(),
                        registry.image_names(),
                        registry.audio_names(),
                    ]
                    .concat();
                    loaded.sort();
                    loaded.dedup();
                    PipelineError::UnknownModel {
                        plugin: info.name.clone(),
                        embedding: output.clone(),
                        reason,
                        loaded: loaded.join(", "),
                    }
                })?;
            let name = tessera_indexes::vector_name(modality.as_str(), &identity, kind);
            let writer = format!("{}'s {output:?}", info.name);
            if let Some(first) = writers.insert(name.clone(), writer.clone()) {
                return Err(PipelineError::DuplicateVector {
                    name,
                    first,
                    second: writer,
                });
            }
            let spec = VectorSpec {
                dim,
                model: identity,
                kind,
            };
            vectors.insert(name, spec);
        }
    }
    Ok(Schema::new(vectors))
}

/// Most times a title moves to another semantic ID because other writers took its choice.
const CONFIRM_ROUNDS: u32 = 16;

mod analyzer;
mod concurrent;

use analyzer::Analyzer;

/// Plugins plus a store.
#[derive(Debug)]
pub struct Pipeline {
    /// Runs the plugins on a title (on the plugin runtime's threads).
    analyzer: Analyzer,
    /// Plugins loaded but switched off: a title stored meanwhile keeps their earlier outputs.
    dormant: RwLock<Arc<[Plugin]>>,
    store: Arc<dyn EntityStore>,
    /// Titles in flight at once during [`Pipeline::ingest`].
    workers: usize,
    /// Gives titles their semantic IDs as they are stored, once a codebook exists.
    semantic_ids: Option<IngestIds>,
    /// Governs machine tags (names, thresholds, hierarchy), when the team has one.
    taxonomy: Option<crate::taxonomy::Taxonomy>,
    /// Once set, [`Pipeline::ingest`] starts no more titles (those in flight finish).
    stop: Option<Arc<AtomicBool>>,
}

/// A new run id: `run-` and the start time in UTC, plus the process id so that two runs started
/// in the same second on one machine differ.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "run-{}-{:03}-{}",
        now.as_secs(),
        now.subsec_millis(),
        std::process::id()
    )
}

impl Pipeline {
    /// A pipeline running `plugins` (in the given order, except that a plugin runs after those
    /// whose tags it reads) and writing to `store`.
    pub fn new(plugins: Vec<Plugin>, store: Arc<dyn EntityStore>) -> Result<Self, PipelineError> {
        Ok(Pipeline {
            analyzer: Analyzer {
                plugins: Arc::new(RwLock::new(order_plugins(plugins)?.into())),
                run: new_run_id(),
                decode_counts: Arc::default(),
                taxonomy_digest: None,
                digests: None,
            },
            dormant: RwLock::new(Arc::from(Vec::new())),
            store,
            workers: 1,
            semantic_ids: None,
            taxonomy: None,
            stop: None,
        })
    }

    /// Analyses up to `workers` titles at once (at least one). Concurrent titles share the
    /// models' batching schedulers, so their model calls merge into batches; a title waiting
    /// for a batch holds no thread, so `workers` may be far above the number of cores.
    pub fn with_workers(mut self, workers: usize) -> Self {
        // Each title in flight holds one plugin instance; the pool has a fixed number.
        self.workers = workers.clamp(1, crate::runtime::MAX_INSTANCES as usize);
        self
    }

    /// Plugins that are loaded but switched off (`tessera plugin disable`): titles stored while
    /// they are off keep the outputs these plugins stored earlier (tags, vectors, provenance).
    pub fn with_dormant(self, dormant: Vec<Plugin>) -> Self {
        *self.dormant.write().unwrap_or_else(|p| p.into_inner()) = dormant.into();
        self
    }

    /// Gives every stored title a semantic ID from `codebook` (trained by `tessera sid train`).
    pub fn with_semantic_ids(mut self, codebook: Arc<Codebook>) -> Self {
        self.semantic_ids = Some(IngestIds::new(codebook));
        self
    }

    /// Keeps asset digests between runs of this pipeline while a file's size and modification
    /// time are unchanged (see [`crate::catalog::fingerprint_cached`]): for a long-running
    /// ingest, which would otherwise read every asset again on every pass.
    pub fn with_digest_cache(mut self) -> Self {
        self.analyzer.digests = Some(Arc::default());
        self
    }

    /// Applies `taxonomy` to every title's machine tags before they are stored.
    pub fn with_taxonomy(mut self, taxonomy: crate::taxonomy::Taxonomy) -> Self {
        self.analyzer.taxonomy_digest = Some(taxonomy.digest().to_string());
        self.taxonomy = Some(taxonomy);
        self
    }

    /// Stops [`Pipeline::ingest`] from starting more titles once `stop` is set: titles in flight
    /// are finished and stored, the rest are left for a later run (a graceful shutdown).
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Records `run` as this run's id instead of a generated one.
    pub fn with_run(mut self, run: impl Into<String>) -> Self {
        self.analyzer.run = run.into();
        self
    }

    /// This run's id.
    pub fn run(&self) -> &str {
        &self.analyzer.run
    }

    /// What a title's outputs are made from: its catalog fields and asset contents, and the
    /// taxonomy the tags go through. Equal fingerprints (and current plugin versions) mean a
    /// re-run would store the same thing.
    pub fn input_fingerprint(&self, title: &Title) -> String {
        self.analyzer.inputs(title).fingerprint
    }

    /// Assets decoded for plugins so far, and decodes that a later plugin (or call) reused.
    pub fn decode_counts(&self) -> DecodeCounts {
        DecodeCounts {
            decodes: self.analyzer.decode_counts.0.load(Ordering::Relaxed),
            reuses: self.analyzer.decode_counts.1.load(Ordering::Relaxed),
        }
    }

    /// The plugins, in the order they run: the set titles start with from now on.
    pub fn plugins(&self) -> Arc<[Plugin]> {
        self.analyzer.plugins()
    }

    /// Replaces the plugin set while titles may be in flight (hot reload): titles that started
    /// before finish with the set they started with; titles after run `plugins` (ordered as
    /// [`Pipeline::new`] orders them). The caller checks that the new set writes the vectors
    /// the store holds (`schema_for`). `dormant` are the loaded plugins left out (see
    /// [`Pipeline::with_dormant`]). Returns the set it replaced.
    pub fn swap_plugins(
        &self,
        plugins: Vec<Plugin>,
        dormant: Vec<Plugin>,
    ) -> Result<Arc<[Plugin]>, PipelineError> {
        let ordered: Arc<[Plugin]> = order_plugins(plugins)?.into();
        *self.dormant.write().unwrap_or_else(|p| p.into_inner()) = dormant.into();
        let mut guard = self
            .analyzer
            .plugins
            .write()
            .unwrap_or_else(|p| p.into_inner());
        Ok(std::mem::replace(&mut *guard, ordered))
    }

    /// Stores a title the plugins analysed (or reports why not): its input fingerprint, the
    /// taxonomy, people's decisions, a semantic ID, then the write. Synchronous: it runs on a
    /// writer thread, off the plugin runtime.
    fn store_title(
        &self,
        title: &Title,
        input: &str,
        analyzed: Result<Entity, (String, PluginError)>,
    ) -> Result<Entity, Failure> {
        let failure = |plugin: String, kind: &str, message: String| Failure {
            title: title.id.clone(),
            plugin,
            kind: kind.to_string(),
            message,
            input: input.to_string(),
        };
        let store_failure = |kind: &str, e: IndexError| failure(String::new(), kind, e.to_string());
        let mut entity =
            analyzed.map_err(|(plugin, e)| failure(plugin, e.kind(), e.to_string()))?;
        if let Some(taxonomy) = &self.taxonomy {
            entity.tags = taxonomy.apply(std::mem::take(&mut entity.tags));
        }
        let stored = self
            .store
            .get(std::slice::from_ref(&title.id))
            .map_err(|e| store_failure("store", e))?;
        let previous = stored.into_iter().flatten().next();
        if let Some(previous) = &previous {
            self.keep_dormant_outputs(previous, &mut entity);
            // People's tag decisions outlive machine runs: carry them over and apply them.
            TagOverride::apply(&previous.overrides, &mut entity.tags);
            entity.overrides = previous.overrides.clone();
        }
        if let Some(ids) = &self.semantic_ids {
            let stored_sid = previous.as_ref().and_then(|p| p.semantic_id.as_ref());
            entity.semantic_id = ids
                .assign(&*self.store, &entity, stored_sid)
                .map_err(|e| store_failure("semantic-id", e))?;
        }
        self.store
            .upsert(std::slice::from_ref(&entity))
            .map_err(|e| store_failure("store", e))?;
        // Another writer of the same store (an ingest worker on another machine) may have given
        // this semantic ID to another title at the same moment: then this title takes another
        // and is written again.
        if let Some(ids) = self.semantic_ids.as_ref().filter(|_| self.store.shared()) {
            for round in 0u32.. {
                match ids
                    .confirm(&*self.store, &entity, round)
                    .map_err(|e| store_failure("semantic-id", e))?
                {
                    None => break,
                    Some(_) if round >= CONFIRM_ROUNDS => {
                        tracing::warn!(title = %entity.id, "semantic ID still contested by other writers; `tessera sid train` makes every ID unique");
                        break;
                    }
                    Some(new) => {
                        entity.semantic_id = Some(new);
                        self.store
                            .upsert(std::slice::from_ref(&entity))
                            .map_err(|e| store_failure("store", e))?;
                    }
                }
            }
        }
        Ok(entity)
    }

    /// Copies what switched-off plugins stored for this title earlier (their provenance, tags,
    /// vectors and token sequences) into its new version: a write replaces the whole title,
    /// and switching a plugin off must not erase its work.
    fn keep_dormant_outputs(&self, previous: &Entity, entity: &mut Entity) {
        let dormant = self
            .dormant
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for plugin in dormant.iter() {
            let info = plugin.info();
            if entity.outputs.iter().any(|o| o.plugin == info.name) {
                continue;
            }
            let mine = |name: &str| name == info.name;
            entity
                .outputs
                .extend(previous.outputs.iter().filter(|o| mine(&o.plugin)).cloned());
            entity
                .tags
                .extend(previous.tags.iter().filter(|t| mine(&t.plugin)).cloned());
            let names = |outputs: &[(String, String)], kind| {
                outputs
                    .iter()
                    .filter_map(move |(output, _)| plugin.store_name(output, kind))
                    .collect::<Vec<_>>()
            };
            for name in names(&info.embeddings, VectorKind::Dense) {
                if let Some(v) = previous.vectors.get(&name) {
                    entity.vectors.insert(name, v.clone());
                }
            }
            for name in names(&info.token_sequences, VectorKind::Multi) {
                if let Some(v) = previous.multivectors.get(&name) {
                    entity.multivectors.insert(name, v.clone());
                }
            }
        }
    }

    /// Runs every plugin on one title and builds its entity.
    pub fn analyze(&self, title: &Title) -> Result<Entity, (String, PluginError)> {
        crate::runtime::block_on(async { Ok(self.analyze_async(title).await) })
            .unwrap_or_else(|e| Err((String::new(), e)))
    }

    /// [`Pipeline::analyze`], awaited: while a plugin waits for a model it holds no thread.
    pub async fn analyze_async(&self, title: &Title) -> Result<Entity, (String, PluginError)> {
        let inputs = self.analyzer.inputs(title);
        self.analyzer.analyze(title, inputs).await
    }
}
