//! The distributed backend: a collection on a Qdrant server or cluster, through qdrant-client.
//!
//! It keeps the embedded store's payload layout and point ids (`convert.rs`), so a store moves
//! between backends as it is (`tessera store migrate`). The schema lives in the collection's
//! metadata (`tessera_schema`), so any process opening the collection checks it as the embedded
//! store checks `tessera-schema.json`.
//!
//! Writes wait until the server has applied them (`wait`, medium write ordering: through the
//! shard's leader) and go in bounded chunks; transient failures (server restarting, leader
//! election, overload) are retried with backoff. Each title is one point, so readers see a
//! title's outputs from one run or another's, never half of each.
//!
//! Change numbers: several processes may write one collection (ingest shards on several
//! machines), so numbers come from the clock — microseconds since the Unix epoch, strictly
//! increasing within a process — instead of a counter only one process could own. Two writers
//! may stamp the same microsecond; a feed page never ends inside such a tie, so resuming after
//! the last number seen skips nothing. A reader in the writer's own process never sees change
//! n+1 before n (as in the embedded store). A reader in another process (`serve` while
//! `ingest` writes) has no such guarantee: a write's points become visible shard by shard and
//! after its numbers were drawn, so a change can appear after the reader passed its number —
//! by at most one write's duration plus the writers' clock skew. Such a reader resumes that
//! much before its last number (seconds; changes are per title and idempotent to re-read).

mod bridge;
mod collection;
mod points;

use crate::convert::{
    CHANGE_SEQ, INDEXED, Index, OUTPUT_KEYS, OUTPUT_PLUGINS, SID_PREFIXES, engine_name, in_order,
};
use crate::filter::{Conditions, translate};
use crate::schema::SCHEMA_VERSION;
use crate::sid::SemanticId;
use crate::{
    Change, Entity, EntityStore, IndexError, Needing, Neighbor, Output, Page, Schema, Search,
    SearchQuery, StoredSid, VectorKind, change,
};
use bridge::Bridge;
use points::{Server, entity_to_point, point_id, point_text, retrieved_to_entity};
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    CollectionStatus, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, Direction, Distance, FieldType, Filter, GetPointsBuilder,
    IntegerIndexParamsBuilder, KeywordIndexParamsBuilder, MultiVectorComparator,
    MultiVectorConfigBuilder, OptimizersConfigDiffBuilder, OrderByBuilder, PayloadIncludeSelector,
    PointId, Query, QueryPointsBuilder, Range, ScrollPointsBuilder, UpdateCollectionBuilder,
    UpsertPointsBuilder, VectorInput, VectorParamsBuilder, VectorsConfigBuilder, VectorsSelector,
    WriteOrdering, WriteOrderingType,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

/// Collection metadata key holding the store's [`Schema`].
const SCHEMA_KEY: &str = "tessera_schema";
/// Most points read in one call.
const READ_CHUNK: usize = 512;
/// Most titles read back from one tied change number (one per concurrent writer).
const TIE_LIMIT: usize = 4096;
/// Longest [`EntityStore::optimize`] waits for the server's optimiser.
const OPTIMIZE_WAIT: Duration = Duration::from_secs(600);

/// Where and how to reach a Qdrant server or cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// gRPC URL, e.g. `http://127.0.0.1:6334`.
    pub url: String,
    /// API key, when the server requires one.
    pub api_key: Option<String>,
    /// Collection name.
    pub collection: String,
    /// Shards of a new collection (the server's default when `None`).
    pub shard_number: Option<u32>,
    /// Copies of each shard in a cluster.
    pub replication_factor: Option<u32>,
    /// Replicas that must acknowledge a write.
    pub write_consistency_factor: Option<u32>,
    /// Most points per upsert call: bounds request size and the server's memory per call.
    pub upsert_chunk: usize,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Retries of a transient failure, with exponential backoff.
    pub retries: u32,
}

impl ServerConfig {
    /// Defaults for the server at `url`: collection `titles`, chunks of 256 points, 30 s
    /// timeout, 20 retries (backoff doubling from 50 ms to 2 s: about 32 s of waiting, enough
    /// to ride out a server restart).
    pub fn new(url: impl Into<String>) -> Self {
        ServerConfig {
            url: url.into(),
            api_key: None,
            collection: "titles".into(),
            shard_number: None,
            replication_factor: None,
            write_consistency_factor: None,
            upsert_chunk: 256,
            timeout: Duration::from_secs(30),
            retries: 20,
        }
    }

    fn label(&self) -> String {
        format!("{} collection {:?}", self.url, self.collection)
    }
}

/// An entity store in a Qdrant server collection.
pub struct ServerStore {
    config: ServerConfig,
    schema: Schema,
    bridge: Bridge,
    /// The last change number handed out; held for writing across a whole write and for
    /// reading across a change-feed read, as in the embedded store.
    last_change: RwLock<u64>,
    /// Whether this `open` created the collection (another process may have at the same time).
    created: bool,
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore")
            .field("url", &self.config.url)
            .field("collection", &self.config.collection)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl ServerStore {
    fn scroll(
        &self,
        filter: Option<Filter>,
        offset: Option<PointId>,
        limit: usize,
        payload: Option<Vec<String>>,
        with_vectors: bool,
    ) -> Result<(Vec<qdrant_client::qdrant::RetrievedPoint>, Option<PointId>), IndexError> {
        let limit = u32::try_from(limit.max(1)).unwrap_or(u32::MAX);
        let mut request = ScrollPointsBuilder::new(self.config.collection.clone())
            .limit(limit)
            .with_vectors(with_vectors);
        request = match payload {
            Some(fields) => request.with_payload(PayloadIncludeSelector::new(fields)),
            None => request.with_payload(true),
        };
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        if let Some(offset) = offset {
            request = request.offset(offset);
        }
        let request = request.build();
        let response = self.bridge.call("scroll", move |c| {
            let request = request.clone();
            async move { c.scroll(request).await }
        })?;
        Ok((response.result, response.next_page_offset))
    }

    /// Title ids of every point matching `filter`, page by page.
    fn ids_matching(&self, filter: Filter) -> Result<Vec<String>, IndexError> {
        let mut ids = Vec::new();
        let mut offset = None;
        loop {
            let (points, next) = self.scroll(
                Some(filter.clone()),
                offset,
                1024,
                Some(vec!["tessera_id".into()]),
                false,
            )?;
            for point in &points {
                ids.push(points::title_id(point.id.as_ref(), &point.payload)?);
            }
            match next {
                Some(n) => offset = Some(n),
                None => return Ok(ids),
            }
        }
    }

    fn changes_in(
        &self,
        direction: Direction,
        filter: Option<Filter>,
        limit: usize,
    ) -> Result<Vec<Change>, IndexError> {
        let limit = u32::try_from(limit.max(1)).unwrap_or(u32::MAX);
        let mut request = ScrollPointsBuilder::new(self.config.collection.clone())
            .limit(limit)
            .with_payload(PayloadIncludeSelector::new(vec![
                "tessera_id".to_string(),
                "change".to_string(),
            ]))
            .with_vectors(false)
            .order_by(OrderByBuilder::new(CHANGE_SEQ).direction(direction as i32));
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        let request = request.build();
        let response = self.bridge.call("read the change feed", move |c| {
            let request = request.clone();
            async move { c.scroll(request).await }
        })?;
        let mut changes = Vec::with_capacity(response.result.len());
        for point in response.result {
            let label = point.id.as_ref().and_then(point_text).unwrap_or_default();
            if let Some(change) =
                crate::convert::change_from_payload(&label, &points::to_json(point.payload))?
            {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    /// `count` consecutive change numbers after both the last one handed out and the clock.
    /// `last` comes from the `last_change` write guard, which serialises the writers.
    fn allocate(&self, last: &mut u64, count: usize) -> Result<u64, IndexError> {
        let first = (*last + 1).max(now_micros());
        *last = first + count as u64 - 1;
        Ok(first)
    }
}

/// Makes a feed page safe to resume after its last number. Writers in different processes may
/// stamp the same microsecond, and a page that ended inside such a tie would make a reader
/// resuming after its last number skip the rest of it. `page` holds up to `limit + 1` entries,
/// the one past the page telling whether a tie crosses its end: then the page drops its
/// trailing entries with that number (they come first on the next page), unless the page is
/// one number from end to end, and the number is returned: the caller adds the whole tie (as
/// wide as the number of concurrent writers).
fn trim_tie(page: &mut Vec<Change>, limit: usize) -> Option<u64> {
    let next = page.get(limit).map(|c| c.seq)?;
    page.truncate(limit);
    if page.last().map(|c| c.seq) != Some(next) {
        return None;
    }
    let tied = page.iter().rev().take_while(|c| c.seq == next).count();
    if tied < page.len() {
        page.truncate(page.len() - tied);
        None
    } else {
        Some(next)
    }
}

impl EntityStore for ServerStore {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn upsert(&self, entities: &[Entity]) -> Result<(), IndexError> {
        let entities = &*self.schema.prepare(entities)?;
        let mut last = self
            .last_change
            .write()
            .map_err(|_| IndexError::poisoned())?;
        let ids: Vec<String> = entities.iter().map(|e| e.id.clone()).collect();
        let previous = self.get(&ids)?;
        // Numbers are spent even if the write fails, as in the embedded store.
        let changed =
            change::number_changes(entities, &previous, |count| self.allocate(&mut last, count))?;
        let mut points = changed
            .iter()
            .map(|(entity, change)| entity_to_point(entity, change));
        loop {
            let chunk: Vec<_> = points
                .by_ref()
                .take(self.config.upsert_chunk.max(1))
                .collect();
            if chunk.is_empty() {
                return Ok(());
            }
            let request = UpsertPointsBuilder::new(self.config.collection.clone(), chunk)
                .wait(true)
                .ordering(WriteOrdering {
                    r#type: WriteOrderingType::Medium as i32,
                })
                .build();
            self.bridge.call("upsert", move |c| {
                let request = request.clone();
                async move { c.upsert_points(request).await }
            })?;
        }
    }

    fn changes(&self, after: u64, limit: usize) -> Result<Vec<Change>, IndexError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let _no_writes = self
            .last_change
            .read()
            .map_err(|_| IndexError::poisoned())?;
        // One entry more than the page: it shows whether a tie crosses the page's end.
        let mut changes = self.changes_in(
            Direction::Asc,
            Some(Filter::must([Server::above(CHANGE_SEQ, after)?])),
            limit.saturating_add(1),
        )?;
        if let Some(tied) = trim_tie(&mut changes, limit) {
            let tie = Filter::must([Condition::range(
                CHANGE_SEQ,
                Range {
                    gte: Some(tied as f64),
                    lte: Some(tied as f64),
                    ..Range::default()
                },
            )]);
            for change in self.changes_in(Direction::Asc, Some(tie), TIE_LIMIT)? {
                if !changes.iter().any(|c| c.id == change.id) {
                    changes.push(change);
                }
            }
        }
        Ok(changes)
    }

    /// Read from the collection: other processes may have written since this one opened it.
    fn last_change(&self) -> Result<u64, IndexError> {
        Ok(self
            .changes_in(Direction::Desc, None, 1)?
            .first()
            .map_or(0, |c| c.seq))
    }

    fn get_selected(
        &self,
        ids: &[String],
        vectors: Option<&[String]>,
    ) -> Result<Vec<Option<Entity>>, IndexError> {
        let mut found: HashMap<String, Entity> = HashMap::new();
        // The vector selection is the same for every chunk: escape the names once.
        let selector: Option<VectorsSelector> = match vectors {
            Some(names) if !names.is_empty() => Some(VectorsSelector::from(
                names.iter().map(|n| engine_name(n)).collect::<Vec<_>>(),
            )),
            _ => None,
        };
        for chunk in ids.chunks(READ_CHUNK) {
            let request = GetPointsBuilder::new(
                self.config.collection.clone(),
                chunk.iter().map(|id| point_id(id)).collect::<Vec<_>>(),
            )
            .with_payload(true);
            let request = match (vectors, &selector) {
                (None, _) => request.with_vectors(true),
                (Some(_), None) => request.with_vectors(false),
                (Some(_), Some(selector)) => request.with_vectors(selector.clone()),
            }
            .build();
            let response = self.bridge.call("get", move |c| {
                let request = request.clone();
                async move { c.get_points(request).await }
            })?;
            for point in response.result {
                let entity = retrieved_to_entity(point)?;
                found.insert(entity.id.clone(), entity);
            }
        }
        Ok(in_order(ids, found))
    }

    fn search(&self, search: &Search<'_>) -> Result<Vec<Neighbor>, IndexError> {
        search.validate(&self.schema)?;
        let name = search.vector_name;
        let query = match search.query {
            SearchQuery::Dense(vector) => VectorInput::new_dense(vector.to_vec()),
            SearchQuery::Multi(tokens) => VectorInput::new_multi(tokens.to_vec()),
        };
        if search.limit == 0 {
            return Ok(Vec::new());
        }
        let mut request = QueryPointsBuilder::new(self.config.collection.clone())
            .query(Query::new_nearest(query))
            .using(engine_name(name))
            .limit(search.limit as u64)
            .offset(search.offset as u64)
            .with_payload(PayloadIncludeSelector::new(vec!["tessera_id".to_string()]));
        request = if search.with_vectors {
            request.with_vectors(VectorsSelector::from(vec![engine_name(name)]))
        } else {
            request.with_vectors(false)
        };
        if let Some(filter) = translate::<Server>(&search.filter, search.exclude)? {
            request = request.filter(filter);
        }
        let request = request.build();
        let response = self.bridge.call("search", move |c| {
            let request = request.clone();
            async move { c.query(request).await }
        })?;
        response
            .result
            .into_iter()
            .map(points::scored_to_neighbor)
            .collect()
    }

    fn scan(
        &self,
        cursor: Option<&str>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<Page, IndexError> {
        let offset = cursor
            .map(|c| {
                uuid::Uuid::parse_str(c)
                    .map(|u| PointId::from(u.to_string()))
                    .map_err(|_| IndexError::Cursor(c.to_string()))
            })
            .transpose()?;
        let (points, next) = self.scroll(None, offset, limit, None, with_vectors)?;
        let entities = points
            .into_iter()
            .map(retrieved_to_entity)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match next {
            None => None,
            Some(id) => Some(point_text(&id).ok_or_else(|| IndexError::Corrupt {
                entity: format!("{id:?}"),
                reason: "point id is not a Tessera UUID".into(),
            })?),
        };
        Ok(Page { entities, next })
    }

    fn lookup_semantic_id(
        &self,
        prefix: &[u16],
        limit: usize,
    ) -> Result<Vec<(String, StoredSid)>, IndexError> {
        if prefix.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let key = SemanticId(prefix.to_vec()).to_string();
        let filter = Filter::must([Server::keyword(SID_PREFIXES, key)?]);
        // Only what a hit is made of: ingest looks IDs up for every title.
        let fields = vec!["tessera_id".to_string(), "sid".to_string()];
        let (points, _) = self.scroll(Some(filter), None, limit, Some(fields), false)?;
        let mut found = Vec::with_capacity(points.len());
        for point in points {
            let entity = retrieved_to_entity(point)?;
            if let Some(sid) = entity.semantic_id {
                found.push((entity.id, sid));
            }
        }
        Ok(found)
    }

    fn needing(&self, current: &Output) -> Result<Needing, IndexError> {
        let plugin = Server::keyword(OUTPUT_PLUGINS, current.plugin.clone())?;
        let missing = Filter::must_not([plugin.clone()]);
        let stale = Filter {
            must: vec![plugin],
            must_not: vec![Server::keyword(OUTPUT_KEYS, current.key())?],
            ..Filter::default()
        };
        Ok(Needing {
            missing: self.ids_matching(missing)?,
            stale: self.ids_matching(stale)?,
        })
    }

    fn count(&self) -> Result<usize, IndexError> {
        let request = CountPointsBuilder::new(self.config.collection.clone())
            .exact(true)
            .build();
        let response = self.bridge.call("count", move |c| {
            let request = request.clone();
            async move { c.count(request).await }
        })?;
        Ok(response
            .result
            .map_or(0, |r| usize::try_from(r.count).unwrap_or(usize::MAX)))
    }

    fn flush(&self) -> Result<(), IndexError> {
        // Every write already waited until the server applied it (and logged it in its WAL).
        Ok(())
    }

    /// The server optimises in the background: this waits until its optimiser has nothing
    /// left to do (the collection is green), at most [`OPTIMIZE_WAIT`].
    fn optimize(&self) -> Result<bool, IndexError> {
        let started = std::time::Instant::now();
        let mut waited = false;
        let mut nudged = false;
        loop {
            let name = self.config.collection.clone();
            let info = self.bridge.call("read the collection's status", move |c| {
                let name = name.clone();
                async move { c.collection_info(name).await }
            })?;
            let info = info.result;
            let status = info.as_ref().map(|i| i.status);
            if status == Some(CollectionStatus::Green as i32) {
                return Ok(waited);
            }
            if status == Some(CollectionStatus::Red as i32) {
                let error = info
                    .and_then(|i| i.optimizer_status)
                    .map(|o| o.error)
                    .unwrap_or_default();
                return Err(IndexError::Server {
                    store: self.config.label(),
                    reason: format!("the server's optimiser failed: {error}"),
                    transient: false,
                });
            }
            if status == Some(CollectionStatus::Grey as i32) && !nudged {
                // Grey: optimisations pending but not started (after a restart, say); an
                // empty optimiser update starts them.
                nudged = true;
                let request = UpdateCollectionBuilder::new(self.config.collection.clone())
                    .optimizers_config(OptimizersConfigDiffBuilder::default())
                    .build();
                self.bridge.call("start the server's optimiser", move |c| {
                    let request = request.clone();
                    async move { c.update_collection(request).await }
                })?;
            }
            if started.elapsed() > OPTIMIZE_WAIT {
                return Err(IndexError::Server {
                    store: self.config.label(),
                    reason: format!(
                        "the server's optimiser is still busy after {} s",
                        OPTIMIZE_WAIT.as_secs()
                    ),
                    transient: true,
                });
            }
            waited = true;
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn location(&self) -> String {
        self.config.label()
    }

    fn shared(&self) -> bool {
        true
    }

    /// The server does the work; here a read is a thread waiting on the network (retries
    /// included), so many may wait at once. Still bounded: each holds a blocking thread.
    fn parallel_reads(&self) -> usize {
        64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seqs: &[u64]) -> Vec<Change> {
        seqs.iter()
            .enumerate()
            .map(|(i, &seq)| Change {
                seq,
                id: format!("t{i}"),
                run: None,
                what: vec!["created".into()],
                at: None,
                created: None,
            })
            .collect()
    }

    fn seqs(page: &[Change]) -> Vec<u64> {
        page.iter().map(|c| c.seq).collect()
    }

    #[test]
    fn a_full_page_never_ends_inside_a_tie() {
        // Pages of 3, read with one entry more.
        // The feed ends within the page: nothing to do, whatever the ties.
        let mut short = page(&[1, 2, 2]);
        assert_eq!(trim_tie(&mut short, 3), None);
        assert_eq!(seqs(&short), [1, 2, 2]);
        // The page ends before a new number: a full page.
        let mut plain = page(&[1, 2, 2, 3]);
        assert_eq!(trim_tie(&mut plain, 3), None);
        assert_eq!(seqs(&plain), [1, 2, 2]);
        // A tie crosses the page's end: it moves to the next page, which starts after 1.
        let mut tied = page(&[1, 5, 5, 5]);
        assert_eq!(trim_tie(&mut tied, 3), None);
        assert_eq!(seqs(&tied), [1]);
        // One tie from end to end and beyond: the caller must read the rest of it.
        let mut all = page(&[7, 7, 7, 7]);
        assert_eq!(trim_tie(&mut all, 3), Some(7));
        assert_eq!(all.len(), 3);
    }
}
