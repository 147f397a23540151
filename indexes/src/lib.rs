//! `tessera-indexes`: where Tessera keeps its entity representations.
//!
//! Main types:
//! - [`EntityStore`]: the storage interface the host writes to and the gRPC API reads from.
//! - [`EdgeStore`]: its embedded implementation on qdrant-edge — a directory on disk, no server.
//! - [`CachedReads`]: a bounded cache of titles in front of a store only this process writes,
//!   kept current by the store's change feed (the gRPC API reads through it).
//! - [`Entity`], [`Tag`], [`Schema`]: what is stored per title: named dense vectors and
//!   multivectors, tags with provenance, its semantic ID ([`StoredSid`]), which plugin versions
//!   and runs wrote it ([`Output`]) and the title's catalog facts.
//! - [`sid`]: semantic IDs — residual k-means codebooks, unique ID assignment, quality figures;
//!   [`sid_store`] runs them against a store (train over stored vectors, assign at ingest).
//!
//! Point ids derive from title ids (UUID v5), so writing a title again replaces it instead of
//! adding a second copy; a title is one point, written by one upsert, so readers see all of a
//! run's outputs for it or none. Every vector is checked (known name, right dimension, finite values)
//! before anything is written, so a bad entity leaves the store untouched.
//!
//! What this crate must not do: run models or plugins, or know about gRPC; it stores and reads.

mod cache;
mod change;
mod convert;
mod edge;
mod edge_filter;
mod error;
mod filter;
pub mod fusion;
mod location;
pub mod migrate;
mod schema;
pub mod search;
mod server;
pub mod sid;
pub mod sid_store;

pub use cache::{CacheStats, CachedReads, Encoded};
pub use change::Change;
pub use edge::EdgeStore;
pub use error::IndexError;
pub use fusion::{FUSED, Fusion};
pub use location::StoreLocation;
pub use schema::{MAX_TOKENS, Schema, VectorKind, VectorSpec, vector_name};
pub use search::{HitVector, Search, SearchFilter, SearchQuery, TagFilter};
pub use server::{ServerConfig, ServerStore};

use std::collections::BTreeMap;

/// A creation time a writer passes for a title whose time is not known (a copy of a title
/// stored before times were recorded): the store records none rather than the time of the copy.
pub const UNKNOWN_TIME: u64 = 0;

/// One of a title's source assets, by the content it had when the title's outputs were made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AssetDigest {
    /// Its role in the catalog (`poster`, `trailer`, `subtitles`, …).
    pub kind: String,
    /// Where the catalog says it is.
    pub uri: String,
    /// sha256 of its bytes, lowercase hex; `None` when the file was missing or unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A tag with its provenance.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tag {
    /// Tag name, e.g. `language`.
    pub name: String,
    /// Optional value, e.g. `fr`.
    pub value: Option<String>,
    /// Confidence in 0..=1.
    pub confidence: f32,
    /// Plugin that produced it.
    pub plugin: String,
    /// That plugin's version.
    pub plugin_version: String,
    /// Where in an audio or video asset the tag holds, (start, end) in seconds; `None` for the
    /// whole title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<(f64, f64)>,
    /// Why the plugin assigned it (a matched prompt, a rule), for people reviewing tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// The ingestion run that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The models its plugin may call or declared outputs with, by identity (`name@revision`),
    /// sorted: which model revision a tag may come from. Empty for tags stored before these
    /// were recorded, and for people's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

/// Which plugin, at which version and with which models, wrote a title's outputs, and in which
/// run: what tells a stale title from a current one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Output {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// The models it may call or produced vectors with, sorted.
    pub models: Vec<String>,
    /// The run that wrote it.
    pub run: String,
}

impl Output {
    /// Everything but the run: two outputs with the same key came from the same code and models.
    pub fn key(&self) -> String {
        format!("{}@{}|{}", self.plugin, self.version, self.models.join(","))
    }
}

/// Stored titles that a plugin version has to (re)process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needing {
    /// Titles without any output of the plugin.
    pub missing: Vec<String>,
    /// Titles with outputs of another version of it or other models.
    pub stale: Vec<String>,
}

/// Everything stored for one title.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entity {
    /// Catalog title id.
    pub id: String,
    /// Title name.
    pub name: String,
    /// Release year.
    pub year: Option<u16>,
    /// Catalog language.
    pub language: String,
    /// Catalog metadata.
    pub metadata: BTreeMap<String, String>,
    /// Named dense vectors.
    pub vectors: BTreeMap<String, Vec<f32>>,
    /// Named multivectors: token vectors (one per audio window, image, text chunk).
    pub multivectors: BTreeMap<String, Vec<Vec<f32>>>,
    /// Tags with provenance.
    pub tags: Vec<Tag>,
    /// Semantic ID, once a codebook exists (`tessera sid train`).
    pub semantic_id: Option<StoredSid>,
    /// Per plugin, who wrote this title's outputs and in which run.
    pub outputs: Vec<Output>,
    /// Fingerprint of what the outputs were made from (catalog fields, asset contents), so a
    /// re-run can skip titles whose inputs have not changed; `None` when not recorded.
    pub input: Option<String>,
    /// Each source asset's content hash when the outputs were made (empty for titles without
    /// assets, and for titles stored before these were recorded).
    pub assets: Vec<AssetDigest>,
    /// When the store first stored the title, in Unix milliseconds (kept by every later write
    /// and by `store migrate`); `None` when unknown. Set by the store: a writer's value counts
    /// only for a title new to the store (a copied one; [`UNKNOWN_TIME`] keeps it unknown).
    pub created_at: Option<u64>,
    /// When the store last wrote a change to the title, in Unix milliseconds (a write that
    /// changes nothing leaves it); `None` when unknown. Set by the store.
    pub updated_at: Option<u64>,
    /// People's decisions about this title's tags; machine runs keep them and apply them.
    pub overrides: Vec<TagOverride>,
}

#[cfg(test)]
mod override_tests {
    use super::*;

    fn tag(name: &str, value: Option<&str>) -> Tag {
        Tag {
            name: name.into(),
            value: value.map(str::to_string),
            confidence: 0.5,
            plugin: "p".into(),
            plugin_version: "1".into(),
            span: None,
            evidence: None,
            run: None,
            models: Vec::new(),
        }
    }

    fn decision(name: &str, value: Option<&str>, present: bool) -> TagOverride {
        TagOverride {
            name: name.into(),
            value: value.map(str::to_string),
            present,
            reason: "r".into(),
            by: "ana".into(),
            at: 0,
        }
    }

    #[test]
    fn decisions_replace_or_remove_exactly_the_tags_they_name() {
        let machine = || {
            vec![
                tag("genre", Some("crime")),
                tag("genre", Some("drama")),
                tag("dark", None),
            ]
        };
        let labels = |tags: &[Tag]| -> Vec<String> {
            tags.iter()
                .map(|t| format!("{}={:?}@{}", t.name, t.value, t.plugin))
                .collect()
        };
        // Unset a name: every value goes.
        let mut tags = machine();
        TagOverride::apply(&[decision("genre", None, false)], &mut tags);
        assert_eq!(labels(&tags), ["dark=None@p"]);
        // Unset one value: only that one.
        let mut tags = machine();
        TagOverride::apply(&[decision("genre", Some("crime"), false)], &mut tags);
        assert_eq!(labels(&tags), ["genre=Some(\"drama\")@p", "dark=None@p"]);
        // Set a flag: the valued tags of that name stay.
        let mut tags = machine();
        TagOverride::apply(&[decision("genre", None, true)], &mut tags);
        assert_eq!(tags.len(), 4);
        // Set a value: the machine's tag of that value is replaced by the person's.
        let mut tags = machine();
        TagOverride::apply(&[decision("genre", Some("crime"), true)], &mut tags);
        assert_eq!(
            labels(&tags),
            [
                "genre=Some(\"drama\")@p",
                "dark=None@p",
                "genre=Some(\"crime\")@human"
            ]
        );
        assert_eq!(tags[2].confidence, 1.0);
    }
}

/// A person's decision about one of a title's tags (`tessera tags set|unset`): a machine run
/// never overrides it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TagOverride {
    /// Tag name.
    pub name: String,
    /// Tag value, for valued tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `true`: the title has this tag; `false`: it does not, whatever plugins say.
    pub present: bool,
    /// Why.
    pub reason: String,
    /// Who decided.
    pub by: String,
    /// When, seconds since the Unix epoch.
    pub at: u64,
}

impl TagOverride {
    /// The plugin name human-set tags carry.
    pub const PLUGIN: &'static str = "human";

    /// Whether this decision is about `tag`: same name, and the same value. Unsetting a name
    /// without a value covers every value of it ("not a comedy of any kind"); setting one
    /// covers only the flag-like tag, so `set genre` leaves `genre=crime` alone.
    pub fn covers(&self, tag: &Tag) -> bool {
        self.name == tag.name
            && (self.value == tag.value || (!self.present && self.value.is_none()))
    }

    /// Applies `overrides` to a title's machine tags: removes what people unset, replaces what
    /// they set with a human tag (confidence 1, the reason as evidence).
    pub fn apply(overrides: &[TagOverride], tags: &mut Vec<Tag>) {
        for o in overrides {
            tags.retain(|t| !o.covers(t));
            if o.present {
                tags.push(Tag {
                    name: o.name.clone(),
                    value: o.value.clone(),
                    confidence: 1.0,
                    plugin: Self::PLUGIN.into(),
                    plugin_version: o.by.clone(),
                    span: None,
                    evidence: Some(o.reason.clone()),
                    run: None,
                    models: Vec::new(),
                });
            }
        }
    }
}

/// A title's semantic ID and the codebook that gave it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredSid {
    /// Codebook content id (`sid-…`): IDs from another codebook are stale.
    pub codebook: String,
    /// The codes.
    pub id: sid::SemanticId,
}

/// One page of a scan over all entities.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Entities of this page.
    pub entities: Vec<Entity>,
    /// Cursor of the next page; `None` after the last.
    pub next: Option<String>,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor {
    /// Title id.
    pub id: String,
    /// Similarity (cosine: higher is closer; MaxSim sums for multivectors).
    pub score: f32,
    /// The searched vector, when [`Search::with_vectors`] asked for it.
    pub vector: Option<HitVector>,
}

/// Storage for entities. Implementations are shared across threads and calls may block (disk I/O):
/// async callers run them on a blocking pool.
pub trait EntityStore: Send + Sync + std::fmt::Debug {
    /// The vectors this store holds.
    fn schema(&self) -> &Schema;
    /// Writes entities, replacing any stored entity with the same id. All or nothing: the batch is
    /// validated before anything is written. Each title the write changes gets the next change
    /// number (see [`Change`]); titles it leaves as they were are not rewritten.
    fn upsert(&self, entities: &[Entity]) -> Result<(), IndexError>;
    /// Titles' latest changes numbered above `after`, in change order, at most `limit` (more only
    /// when more than `limit` titles share one number, which only a server store written by
    /// several processes at once can do): the change feed, resumed from the last number seen (0
    /// for the whole feed).
    fn changes(&self, after: u64, limit: usize) -> Result<Vec<Change>, IndexError>;
    /// The highest change number recorded (0 for an empty store): where a feed reader that only
    /// wants what comes next starts. The embedded store answers with its last finished write,
    /// without waiting for one in progress.
    fn last_change(&self) -> Result<u64, IndexError>;
    /// Reads entities by id, in order; `None` for ids the store does not hold.
    fn get(&self, ids: &[String]) -> Result<Vec<Option<Entity>>, IndexError> {
        self.get_selected(ids, None)
    }
    /// Like [`get`](Self::get), reading only the vectors and multivectors named in `vectors`
    /// (`None`: all of them); the others are not read at all, which matters when a title holds
    /// several large ones and a reader wants one.
    fn get_selected(
        &self,
        ids: &[String],
        vectors: Option<&[String]>,
    ) -> Result<Vec<Option<Entity>>, IndexError>;
    /// Ranks the titles matching the search's filter on its named vector, best first: cosine for
    /// a dense query, MaxSim (for each query token the cosine of its best match, summed) for
    /// token vectors. The query is checked against the schema (name, kind, dimension, finite
    /// values) and the filter against its bounds before anything is read.
    fn search(&self, search: &Search<'_>) -> Result<Vec<Neighbor>, IndexError>;
    /// The `limit` entities nearest to `vector` on the named vector, closest first, leaving out
    /// `exclude` (usually the query title itself).
    fn nearest(
        &self,
        vector_name: &str,
        vector: &[f32],
        limit: usize,
        exclude: Option<&str>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.search(&Search {
            exclude,
            ..Search::new(vector_name, SearchQuery::Dense(vector), limit)
        })
    }
    /// The `limit` entities whose multivector `vector_name` best matches the query tokens by
    /// MaxSim, best first, leaving out `exclude`.
    fn nearest_multi(
        &self,
        vector_name: &str,
        tokens: &[Vec<f32>],
        limit: usize,
        exclude: Option<&str>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.search(&Search {
            exclude,
            ..Search::new(vector_name, SearchQuery::Multi(tokens), limit)
        })
    }
    /// Reads entities in a stable order, `limit` per page, starting at `cursor` (from the previous
    /// page; `None` for the first). Without `with_vectors` only payloads are read.
    fn scan(
        &self,
        cursor: Option<&str>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<Page, IndexError>;
    /// Titles whose semantic ID starts with `prefix` (a full ID matches itself), at most `limit`,
    /// with their IDs.
    fn lookup_semantic_id(
        &self,
        prefix: &[u16],
        limit: usize,
    ) -> Result<Vec<(String, StoredSid)>, IndexError>;
    /// Stored titles lacking `current`'s plugin outputs, or holding them from another plugin
    /// version or other models (its run is ignored), in a stable order.
    fn needing(&self, current: &Output) -> Result<Needing, IndexError>;
    /// Number of stored entities.
    fn count(&self) -> Result<usize, IndexError>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), IndexError>;
    /// Runs the engine's optimisers (segment merge, vector indexing) until nothing is left to
    /// do, where the engine has no background optimiser; returns whether anything changed.
    fn optimize(&self) -> Result<bool, IndexError> {
        Ok(false)
    }
    /// Where the store is, for people: a directory, or a server and collection.
    fn location(&self) -> String;
    /// Whether other processes may write the store at the same time (a server collection; the
    /// embedded store is locked to one process). Writers that hand out unique values (semantic
    /// IDs) then confirm them after writing.
    fn shared(&self) -> bool {
        false
    }
    /// How many reads are worth running at once: the embedded store's reads are CPU work, so
    /// one per core (more only time-slice the cores); a server store's are mostly waiting on
    /// the network and override this.
    fn parallel_reads(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
