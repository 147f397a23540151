//! The embedded backend: one qdrant-edge shard in a directory.
//!
//! Layout of a store directory: `tessera-schema.json` (our schema), `shard/` (qdrant-edge's WAL,
//! segments and config) and `tessera.lock`, an exclusive lock held while the store is open,
//! because qdrant-edge supports one open shard per directory and would corrupt data otherwise.
//!
//! Vectors use cosine distance, so qdrant stores them unit-normalised: a vector read back is the
//! normalised form of what was written (identical for encoders that already normalise).

use crate::change;
use crate::convert::{
    CHANGE_SEQ, INDEXED, Index, OUTPUT_KEYS, OUTPUT_PLUGINS, SID_PREFIXES, engine_name,
    entity_to_point, in_order, point_id, record_to_change, record_to_entity, scored_to_neighbor,
};
use crate::edge_filter::{self, Edge, keyword, path};
use crate::filter::Conditions;
use crate::schema::{Schema, VectorKind};
use crate::sid::SemanticId;
use crate::{
    Change, Entity, EntityStore, IndexError, Needing, Neighbor, Output, Page, Search, SearchQuery,
    StoredSid,
};
use qdrant_edge::{
    Condition, CountRequest, CreateIndex, Direction, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations, Filter,
    IntegerIndexParamsBuilder, KeywordIndexParamsBuilder, Memory, MultiVectorComparator,
    MultiVectorConfig, NamedQuery, OrderBy, OrderByInterface, PayloadFieldSchema,
    PayloadSchemaParams, PayloadSchemaType, PayloadSelector, PayloadSelectorInclude, PointId,
    PointInsertOperations, PointOperations, QueryEnum, RetrieveRequestBuilder,
    ScrollRequestBuilder, SearchRequestBuilder, TypedMultiDenseVector, UpdateOperation,
    VectorInternal, WithPayloadInterface, WithVector,
};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARD_DIR: &str = "shard";
const LOCK_FILE: &str = "tessera.lock";
/// Creates the payload indexes ([`INDEXED`]); qdrant-edge treats re-creating an identical index
/// as a no-op, so this also upgrades stores made before an index existed.
fn create_indexes(shard: &EdgeShard) -> Result<(), IndexError> {
    let indexes = INDEXED.into_iter().map(|(field, index)| {
        let schema = match index {
            Index::Keyword => PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword),
            Index::KeywordWithoutLinks => {
                PayloadFieldSchema::FieldParams(PayloadSchemaParams::Keyword(
                    KeywordIndexParamsBuilder::new().enable_hnsw(false).build(),
                ))
            }
            Index::Range { lookup } => {
                PayloadFieldSchema::FieldParams(PayloadSchemaParams::Integer(
                    IntegerIndexParamsBuilder::new()
                        .lookup(lookup)
                        .range(true)
                        .enable_hnsw(false)
                        .build(),
                ))
            }
        };
        (field, schema)
    });
    for (field, schema) in indexes {
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name: path(field)?,
                    field_schema: Some(schema),
                }),
            ))
            .map_err(engine)?;
    }
    Ok(())
}

/// An entity store on qdrant-edge.
pub struct EdgeStore {
    dir: PathBuf,
    schema: Schema,
    shard: EdgeShard,
    /// The last change number handed out. Written across a whole write (read previous, number,
    /// write) and read across a whole change-feed read: qdrant-edge applies a batch in its own
    /// order and an ordered scroll fetches payloads after the index, so without this a reader
    /// could see change n+1 before n, or a title's newer number in an older page, and skip
    /// changes for good.
    last_change: RwLock<u64>,
    /// The last change number whose write has finished (or failed): what
    /// [`EntityStore::last_change`] answers without waiting for a write in progress, so a reader
    /// that only compares numbers (the entity cache, before every gRPC read by id) does not wait
    /// for one.
    completed: AtomicU64,
    // Held for the store's lifetime; dropping it releases the directory.
    _lock: File,
}

impl std::fmt::Debug for EdgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeStore")
            .field("dir", &self.dir)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn engine(error: impl std::fmt::Display) -> IndexError {
    IndexError::Engine(error.to_string())
}

fn lock(dir: &Path) -> Result<File, IndexError> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| IndexError::Io {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(IndexError::Io {
            path: dir.to_path_buf(),
            reason: "the store is open in another process (tessera.lock is held); stop it or use another data directory".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(IndexError::Io { path, reason: e.to_string() }),
    }
}

impl EdgeStore {
    /// One page of entities in point-id order, optionally filtered, from `offset` on; also the
    /// offset of the next page.
    fn page(
        &self,
        filter: Option<Filter>,
        offset: Option<PointId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<(Vec<Entity>, Option<PointId>), IndexError> {
        let mut request = ScrollRequestBuilder::new()
            .limit(limit.max(1))
            .with_payload(WithPayloadInterface::Bool(true))
            .with_vector(WithVector::Bool(with_vectors));
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        if let Some(offset) = offset {
            request = request.offset(offset);
        }
        let (records, next) = self.shard.scroll(request.build()).map_err(engine)?;
        let entities = records
            .into_iter()
            .map(record_to_entity)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((entities, next))
    }

    /// Opens the store in `dir`, creating it with `schema` if it does not exist. An existing store
    /// must have been created with the same schema.
    pub fn open(dir: &Path, schema: Schema) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::Io {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let lock = lock(dir)?;
        match Schema::read(dir)? {
            Some(existing) if existing != schema => Err(IndexError::Schema {
                path: dir.to_path_buf(),
                reason: existing.mismatch(&schema),
            }),
            Some(existing) => Self::load(dir, existing, lock),
            None => {
                let mut config = engine_config();
                for (name, spec) in &schema.vectors {
                    let mut params = EdgeVectorParamsBuilder::new(spec.dim, Distance::Cosine);
                    if spec.kind == VectorKind::Multi {
                        params = params.multivector_config(MultiVectorConfig {
                            comparator: MultiVectorComparator::MaxSim,
                        });
                    }
                    config = config.vector(engine_name(name), params.build());
                }
                // Without a schema file the store was never finished (the schema is written
                // before any write is accepted), so leftovers of an interrupted creation go.
                let shard_dir = dir.join(SHARD_DIR);
                if shard_dir.exists() {
                    std::fs::remove_dir_all(&shard_dir).map_err(|e| IndexError::Io {
                        path: shard_dir.clone(),
                        reason: e.to_string(),
                    })?;
                }
                let shard = EdgeShard::new(&shard_dir, config.build()).map_err(engine)?;
                create_indexes(&shard)?;
                schema.write(dir)?;
                Ok(EdgeStore {
                    dir: dir.to_path_buf(),
                    schema,
                    shard,
                    last_change: RwLock::new(0),
                    completed: AtomicU64::new(0),
                    _lock: lock,
                })
            }
        }
    }

    /// Opens an existing store in `dir` with the schema it was created with.
    pub fn open_existing(dir: &Path) -> Result<Self, IndexError> {
        let schema = Schema::read(dir)?.ok_or_else(|| IndexError::Io {
            path: dir.to_path_buf(),
            reason:
                "no Tessera store here (tessera-schema.json is missing); run `tessera ingest` first"
                    .into(),
        })?;
        let lock = lock(dir)?;
        Self::load(dir, schema, lock)
    }

    /// Title ids of every point matching `filter`, page by page.
    fn ids_matching(&self, filter: Filter) -> Result<Vec<String>, IndexError> {
        let mut ids = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let (entities, next) = self.page(Some(filter.clone()), offset, 1024, false)?;
            ids.extend(entities.into_iter().map(|e| e.id));
            match next {
                Some(n) => offset = Some(n),
                None => return Ok(ids),
            }
        }
    }

    fn load(dir: &Path, schema: Schema, lock: File) -> Result<Self, IndexError> {
        // Vectors left unset are taken from the shard; the settings given apply to stores made
        // before they were chosen too.
        let config = engine_config().build();
        let shard = EdgeShard::load(&dir.join(SHARD_DIR), Some(config)).map_err(engine)?;
        create_indexes(&shard)?;
        let last = Self::changes_in(&shard, Direction::Desc, None, 1)?
            .first()
            .map_or(0, |c| c.seq);
        let store = EdgeStore {
            dir: dir.to_path_buf(),
            schema,
            shard,
            last_change: RwLock::new(last),
            completed: AtomicU64::new(last),
            _lock: lock,
        };
        store.number_unrecorded_titles()?;
        Ok(store)
    }

    /// [`EntityStore::upsert`]'s work under the writer lock, apart so that `upsert` publishes
    /// the numbers it spent on every way out, errors included.
    fn write_numbered(&self, entities: &[Entity], last: &mut u64) -> Result<(), IndexError> {
        let ids: Vec<String> = entities.iter().map(|e| e.id.clone()).collect();
        let previous = self.get(&ids)?;
        // Numbers are spent even if the write fails: the engine may have logged it, and a gap
        // in the feed is harmless where a reused number is not.
        let changed = change::number_changes(entities, &previous, |count| {
            let first = *last + 1;
            *last += count as u64;
            Ok(first)
        })?;
        if changed.is_empty() {
            return Ok(());
        }
        let points = changed
            .iter()
            .map(|(entity, change)| entity_to_point(entity, change))
            .collect();
        let operation = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        ));
        self.shard.update(operation).map_err(engine)
    }

    /// Gives titles stored before changes were recorded a change number ("created"), so the
    /// change feed read from 0 lists every title. A no-op once done.
    fn number_unrecorded_titles(&self) -> Result<(), IndexError> {
        let unrecorded = Filter::new_must(Condition::Field(FieldCondition::new_is_empty(
            path(CHANGE_SEQ)?,
            true,
        )));
        let mut last = self
            .last_change
            .write()
            .map_err(|_| IndexError::poisoned())?;
        let mut numbered = 0;
        loop {
            // Always the first page: numbered titles no longer match.
            let (entities, _) = self.page(Some(unrecorded.clone()), None, 256, true)?;
            if entities.is_empty() {
                break;
            }
            let points = entities
                .iter()
                .map(|e| {
                    *last += 1;
                    // Stored before changes were recorded: when it last changed is not known,
                    // and it has a creation time only if its payload held one.
                    let change = Change {
                        seq: *last,
                        id: e.id.clone(),
                        run: None,
                        what: vec!["created".into()],
                        at: None,
                        created: e.created_at,
                    };
                    entity_to_point(e, &change)
                })
                .collect();
            numbered += entities.len();
            self.shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
                ))
                .map_err(engine)?;
        }
        self.completed.store(*last, Ordering::Release);
        if numbered > 0 {
            tracing::info!(
                titles = numbered,
                "numbered titles stored before the change feed"
            );
        }
        Ok(())
    }

    /// Recorded changes in `direction` of change number, above `after` when given.
    fn changes_in(
        shard: &EdgeShard,
        direction: Direction,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Change>, IndexError> {
        let mut request = ScrollRequestBuilder::new()
            .limit(limit.max(1))
            .with_payload(WithPayloadInterface::Selector(PayloadSelector::Include(
                PayloadSelectorInclude::new(vec![path("tessera_id")?, path("change")?]),
            )))
            .with_vector(WithVector::Bool(false))
            .order_by(OrderByInterface::Struct(OrderBy {
                key: path(CHANGE_SEQ)?,
                direction: Some(direction),
                start_from: None,
            }));
        if let Some(after) = after {
            request = request.filter(Filter::new_must(Edge::above(CHANGE_SEQ, after)?));
        }
        let (records, _) = shard.scroll(request.build()).map_err(engine)?;
        let mut changes = Vec::with_capacity(records.len());
        for record in &records {
            if let Some(change) = record_to_change(record)? {
                changes.push(change);
            }
        }
        Ok(changes)
    }
}

impl EntityStore for EdgeStore {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn upsert(&self, entities: &[Entity]) -> Result<(), IndexError> {
        let entities = &*self.schema.prepare(entities)?;
        let mut last = self
            .last_change
            .write()
            .map_err(|_| IndexError::poisoned())?;
        let written = self.write_numbered(entities, &mut last);
        self.completed.store(*last, Ordering::Release);
        written
    }

    fn changes(&self, after: u64, limit: usize) -> Result<Vec<Change>, IndexError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let _no_writes = self
            .last_change
            .read()
            .map_err(|_| IndexError::poisoned())?;
        Self::changes_in(&self.shard, Direction::Asc, Some(after), limit)
    }

    fn last_change(&self) -> Result<u64, IndexError> {
        // A writer that panicked never published what it spent: the number cannot be trusted.
        if self.last_change.is_poisoned() {
            return Err(IndexError::poisoned());
        }
        Ok(self.completed.load(Ordering::Acquire))
    }

    fn get_selected(
        &self,
        ids: &[String],
        vectors: Option<&[String]>,
    ) -> Result<Vec<Option<Entity>>, IndexError> {
        let with_vector = match vectors {
            None => WithVector::Bool(true),
            Some([]) => WithVector::Bool(false),
            Some(names) => WithVector::Selector(names.iter().map(|n| engine_name(n)).collect()),
        };
        let request = RetrieveRequestBuilder::new(ids.iter().map(|id| point_id(id)).collect())
            .with_payload(WithPayloadInterface::Bool(true))
            .with_vector(with_vector)
            .build();
        let mut found: HashMap<String, Entity> = HashMap::new();
        for record in self.shard.retrieve(request).map_err(engine)? {
            let entity = record_to_entity(record)?;
            found.insert(entity.id.clone(), entity);
        }
        Ok(in_order(ids, found))
    }

    fn search(&self, search: &Search<'_>) -> Result<Vec<Neighbor>, IndexError> {
        search.validate(&self.schema)?;
        let name = search.vector_name;
        let query = match search.query {
            SearchQuery::Dense(vector) => VectorInternal::Dense(vector.to_vec()),
            SearchQuery::Multi(tokens) => VectorInternal::MultiDense(
                TypedMultiDenseVector::try_from_matrix(tokens.to_vec()).map_err(engine)?,
            ),
        };
        if search.limit == 0 {
            return Ok(Vec::new());
        }
        let query = QueryEnum::Nearest(NamedQuery {
            query,
            using: Some(engine_name(name)),
        });
        // Only the title id is read from the payload: hits are ids and scores.
        let id_only =
            PayloadSelector::Include(PayloadSelectorInclude::new(vec![path("tessera_id")?]));
        let with_vector = if search.with_vectors {
            WithVector::Selector(vec![engine_name(name)])
        } else {
            WithVector::Bool(false)
        };
        let mut request = SearchRequestBuilder::new(query, search.limit)
            .offset(search.offset)
            .with_payload(WithPayloadInterface::Selector(id_only))
            .with_vector(with_vector);
        if let Some(filter) = edge_filter::to_qdrant(&search.filter, search.exclude)? {
            request = request.filter(filter);
        }
        self.shard
            .search(request.build())
            .map_err(engine)?
            .into_iter()
            .map(scored_to_neighbor)
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
                    .map(PointId::Uuid)
                    .map_err(|_| IndexError::Cursor(c.to_string()))
            })
            .transpose()?;
        let (entities, next) = self.page(None, offset, limit, with_vectors)?;
        let next = match next {
            Some(PointId::Uuid(u)) => Some(u.to_string()),
            Some(other) => {
                return Err(IndexError::Corrupt {
                    entity: format!("{other:?}"),
                    reason: "point id is not a Tessera UUID".into(),
                });
            }
            None => None,
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
        let filter = Filter::new_must(keyword(SID_PREFIXES, key)?);
        let (entities, _) = self.page(Some(filter), None, limit, false)?;
        Ok(entities
            .into_iter()
            .filter_map(|e| Some((e.id, e.semantic_id?)))
            .collect())
    }

    fn needing(&self, current: &Output) -> Result<Needing, IndexError> {
        let missing = Filter {
            must_not: Some(vec![keyword(OUTPUT_PLUGINS, current.plugin.clone())?]),
            ..Filter::new()
        };
        let stale = Filter {
            must: Some(vec![keyword(OUTPUT_PLUGINS, current.plugin.clone())?]),
            must_not: Some(vec![keyword(OUTPUT_KEYS, current.key())?]),
            ..Filter::new()
        };
        Ok(Needing {
            missing: self.ids_matching(missing)?,
            stale: self.ids_matching(stale)?,
        })
    }

    fn count(&self) -> Result<usize, IndexError> {
        self.shard.count(CountRequest::new()).map_err(engine)
    }

    fn flush(&self) -> Result<(), IndexError> {
        self.shard.flush().map_err(engine)
    }

    /// qdrant-edge has no background optimiser: this runs segment merge, HNSW indexing and
    /// vacuum until nothing is left to do. Blocks; reads and writes may continue meanwhile.
    fn optimize(&self) -> Result<bool, IndexError> {
        self.shard.optimize().map_err(engine)
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

/// The engine settings every store gets, on creation and on opening.
fn engine_config() -> EdgeConfigBuilder {
    // Payloads are read with every title a ranker asks for. The engine's default, `Cold`, leaves
    // them on disk until first touched, so the first reads after an optimise (new segment files)
    // paid the page faults: get-by-id of 100 titles p99 8.3 ms, against 1.2 ms warm. `Cached`
    // loads them into the page cache when a segment opens (1.7 ms on the first reads).
    EdgeConfigBuilder::new().payload_memory(Memory::Cached)
}

#[cfg(test)]
mod tests;
