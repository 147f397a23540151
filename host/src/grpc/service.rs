//! `tessera.v1.Entities` handlers.

use super::ServeConfig;
use super::convert::{GetQuery, entity_to_proto, validate_get, validate_lookup};
use super::encoded::{EncodedEntities, EncodedResult};
use super::metrics::Method;
use super::proto;
use super::search::{
    DEFAULT_PAGE_SIZE, Query, ScanParams, SearchParams, validate_scan, validate_search,
};
use super::served::entities_server::Entities;
use super::stream_out::{ResponseStream, StreamOut};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_indexes::{
    CachedReads, Encoded, Entity, EntityStore, HitVector, IndexError, Search, SearchQuery,
    VectorKind,
};
use tessera_models::ModelError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tonic::{Request, Response, Status};

/// A call's in-flight slot, shared by the handler and the blocking work it starts.
type Slot = Arc<OwnedSemaphorePermit>;

/// How often a followed change feed looks for new changes.
const WATCH_POLL: Duration = Duration::from_millis(500);

/// The Entities service: shared handles only.
#[derive(Debug, Clone)]
pub struct EntitiesService {
    store: Arc<dyn EntityStore>,
    /// Titles read by id go through it, when there is one (see [`ServeConfig::entity_cache_bytes`]).
    cache: Option<Arc<CachedReads>>,
    config: ServeConfig,
    in_flight: Arc<Semaphore>,
    store_readers: Arc<Semaphore>,
    watchers: Arc<Semaphore>,
    stopping: watch::Receiver<bool>,
}

impl EntitiesService {
    /// A service reading from `store`; followed change feeds end when `stopping` turns true.
    pub fn new(
        store: Arc<dyn EntityStore>,
        config: ServeConfig,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        // Limits come from flags: clamped, since a semaphore refuses more than MAX_PERMITS.
        let permits = |n: usize| Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)));
        let in_flight = permits(config.max_in_flight);
        let store_readers = permits(match config.store_readers {
            0 => store.parallel_reads(),
            n => n,
        });
        let watchers = permits(config.max_watchers);
        let cache = match CachedReads::new(store.clone(), config.entity_cache_bytes) {
            Ok(cache) => cache.map(Arc::new),
            Err(error) => {
                // Serving uncached is slower, not wrong.
                tracing::warn!(error = %error, "no entity cache: the store's change number could not be read");
                None
            }
        };
        if let Some(cache) = &cache {
            config.metrics.report_cache(cache);
        }
        EntitiesService {
            store,
            cache,
            config,
            in_flight,
            store_readers,
            watchers,
            stopping,
        }
    }

    /// A slot for one call, or RESOURCE_EXHAUSTED when every slot is taken: shedding at once
    /// keeps latency bounded for the calls already admitted, and tells clients to back off.
    fn admit(&self) -> Result<Slot, Status> {
        self.in_flight
            .clone()
            .try_acquire_owned()
            .map(Arc::new)
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "server busy: {} calls in flight; retry with backoff",
                    self.config.max_in_flight
                ))
            })
    }

    /// Runs a handler, counting it in flight and recording its status code and latency.
    async fn observed<T>(
        &self,
        method: Method,
        handler: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let started = Instant::now();
        let _counted = self.config.metrics.in_flight();
        let result = handler.await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        self.config.metrics.call(method, code, started.elapsed());
        result
    }

    /// Runs a blocking store call on the blocking pool once one of the store reader places is
    /// free (a call whose deadline passes while it waits does no store work). It holds the call's
    /// `slot` until it finishes: a call whose client gave up still has its store work running,
    /// and that work must count against the in-flight limit.
    async fn blocking<T: Send + 'static>(
        &self,
        slot: &Slot,
        f: impl FnOnce(&dyn EntityStore) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        let metrics = self.config.metrics.clone();
        let slot = slot.clone();
        let reader = match self.store_readers.clone().try_acquire_owned() {
            Ok(reader) => reader,
            Err(_) => {
                let _waiting = self.config.metrics.store_waiting();
                self.store_readers
                    .clone()
                    .acquire_owned()
                    .await
                    // Never closed: reads still running when the server stops are drained.
                    .map_err(|_| Status::internal("the store reader limit was closed"))?
            }
        };
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let _reader = reader;
            let started = Instant::now();
            let result = f(store.as_ref());
            metrics.store_read(started.elapsed());
            result
        })
        .await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
        .map_err(store_status)
    }

    /// Titles by id, with only the named vectors (`None`: all), through the cache when there is
    /// one; on the blocking pool like any store read.
    async fn get_titles(
        &self,
        slot: &Slot,
        ids: Vec<String>,
        vectors: Option<Vec<String>>,
    ) -> Result<(Vec<String>, Vec<Option<Arc<Entity>>>), Status> {
        let cache = self.cache.clone();
        self.blocking(slot, move |s| {
            let found = match &cache {
                Some(cache) => cache.get_selected(&ids, vectors.as_deref())?,
                None => s
                    .get_selected(&ids, vectors.as_deref())?
                    .into_iter()
                    .map(|e| e.map(Arc::new))
                    .collect(),
            };
            Ok((ids, found))
        })
        .await
    }

    /// Titles by id as encoded `tessera.v1.Entity` messages, shaped as `query` asks; through the
    /// cache when there is one, which keeps each title's encoding for the next call in the same
    /// shape.
    async fn get_encoded(
        &self,
        slot: &Slot,
        ids: Vec<String>,
        query: GetQuery,
    ) -> Result<(Vec<String>, Vec<Option<Encoded>>), Status> {
        let cache = self.cache.clone();
        self.blocking(slot, move |s| {
            // Only the vectors the caller asked for leave the disk.
            let names = (!query.vector_names.is_empty()).then_some(&query.vector_names[..]);
            let encode = |e: &Entity| prost::Message::encode_to_vec(&entity_to_proto(e, &query));
            let found = match &cache {
                Some(cache) => cache.get_encoded(&ids, names, &query.form(), &encode)?,
                None => s
                    .get_selected(&ids, names)?
                    .iter()
                    .map(|e| e.as_ref().map(|e| Encoded::from(encode(e))))
                    .collect(),
            };
            Ok((ids, found))
        })
        .await
    }

    /// The query vector of a search: given, a stored title's own, or the embedded text.
    async fn query_vector(
        &self,
        params: &SearchParams,
        slot: &Slot,
    ) -> Result<QueryVector, Status> {
        match &params.query {
            Query::Vector(v) => Ok(QueryVector::Dense(v.clone())),
            Query::Tokens(t) => Ok(QueryVector::Multi(t.clone())),
            Query::Entity(id) => {
                // Only the vector searched on is read, not the title's other (maybe large) ones.
                let names = vec![params.vector_name.clone()];
                let entity = self
                    .get_titles(slot, vec![id.clone()], Some(names))
                    .await?
                    .1
                    .into_iter()
                    .next()
                    .flatten()
                    .ok_or_else(|| Status::not_found(format!("entity_id: no title {id:?}")))?;
                let missing = || {
                    Status::not_found(format!(
                        "entity_id: title {id:?} has no vector {:?}",
                        params.vector_name
                    ))
                };
                match params.kind {
                    VectorKind::Dense => entity
                        .vectors
                        .get(&params.vector_name)
                        .cloned()
                        .map(QueryVector::Dense)
                        .ok_or_else(missing),
                    VectorKind::Multi => entity
                        .multivectors
                        .get(&params.vector_name)
                        .cloned()
                        .map(QueryVector::Multi)
                        .ok_or_else(missing),
                }
            }
            Query::Text(text) => {
                let model = self.config.text_model.clone().ok_or_else(|| {
                    Status::failed_precondition(
                        "text: this server has no text model (start it with --text-model)",
                    )
                })?;
                let made_by = self
                    .store
                    .schema()
                    .vectors
                    .get(&params.vector_name)
                    .map(|spec| spec.model.clone())
                    .unwrap_or_default();
                if made_by != model.name() {
                    return Err(Status::failed_precondition(format!(
                        "text: vector {:?} was made by model {made_by:?}, but this server's text model is {:?}; its embeddings are not comparable",
                        params.vector_name,
                        model.name()
                    )));
                }
                let text = text.clone();
                let held = slot.clone();
                let mut vectors = tokio::task::spawn_blocking(move || {
                    let _slot = held;
                    model.embed(&[&text])
                })
                .await
                .map_err(|e| Status::internal(format!("text model task failed: {e}")))?
                .map_err(model_status)?;
                vectors
                    .pop()
                    .map(QueryVector::Dense)
                    .ok_or_else(|| Status::internal("the text model returned no vector"))
            }
        }
    }
}

enum QueryVector {
    Dense(Vec<f32>),
    Multi(Vec<Vec<f32>>),
}

fn store_status(error: IndexError) -> Status {
    match error {
        // The query itself was bad: the store checks vectors against its schema.
        IndexError::Dimension { .. }
        | IndexError::NonFinite { .. }
        | IndexError::TokenCount { .. }
        | IndexError::Kind { .. }
        | IndexError::UnknownVector { .. }
        | IndexError::Filter(_) => Status::invalid_argument(error.to_string()),
        IndexError::Cursor(_) => Status::invalid_argument(format!("cursor: {error}")),
        // The Qdrant server behind the store is down or overloaded past the retries: the call
        // may pass later. Refused requests are not worth a client's retry.
        IndexError::Server {
            transient: true, ..
        } => {
            tracing::error!(error = %error, "store server unavailable");
            Status::unavailable(format!("store: {error}"))
        }
        error => {
            tracing::error!(error = %error, "store read failed");
            Status::internal(format!("store: {error}"))
        }
    }
}

fn model_status(error: ModelError) -> Status {
    match error {
        ModelError::Overloaded { .. } => Status::resource_exhausted(error.to_string()),
        error => {
            tracing::error!(error = %error, "text model failed");
            Status::internal(format!("text model: {error}"))
        }
    }
}

type ScanStream = ResponseStream<proto::ScanEntitiesResponse>;
type WatchStream = ResponseStream<proto::WatchEntitiesResponse>;

#[tonic::async_trait]
impl Entities for EntitiesService {
    #[tracing::instrument(level = "debug", skip_all, fields(ids = request.get_ref().ids.len()))]
    async fn get_entities(
        &self,
        request: Request<proto::GetEntitiesRequest>,
    ) -> Result<Response<EncodedEntities>, Status> {
        self.observed(Method::GetEntities, async move {
            let slot = self.admit()?;
            let request = request.into_inner();
            let query = validate_get(&request, self.store.schema(), &self.config)?;
            let (ids, found) = self.get_encoded(&slot, request.ids, query).await?;
            let results = ids
                .into_iter()
                .zip(found)
                .map(|(id, entity)| EncodedResult { id, entity })
                .collect();
            let response = EncodedEntities { results };
            // Refused whole and with the reason, rather than failing while being encoded.
            let size = prost::Message::encoded_len(&response);
            if size > self.config.max_response_bytes {
                return Err(Status::resource_exhausted(format!(
                    "the response would be {size} bytes, over the {}-byte limit; ask for fewer ids or vector_names",
                    self.config.max_response_bytes
                )));
            }
            Ok(Response::new(response))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(queries = request.get_ref().queries.len()))]
    async fn lookup_semantic_ids(
        &self,
        request: Request<proto::LookupSemanticIdsRequest>,
    ) -> Result<Response<proto::LookupSemanticIdsResponse>, Status> {
        self.observed(Method::LookupSemanticIds, async move {
            let slot = self.admit()?;
            let (queries, limit) = validate_lookup(request.get_ref(), &self.config)?;
            let found = self
                .blocking(&slot, move |s| {
                    queries
                        .iter()
                        .map(|q| s.lookup_semantic_id(q, limit))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await?;
            let results = found
                .into_iter()
                .map(|matches| proto::SemanticIdMatches {
                    matches: matches
                        .into_iter()
                        .map(|(id, sid)| proto::SemanticIdMatch {
                            id,
                            semantic_id: sid.id.0.iter().map(|&c| u32::from(c)).collect(),
                            codebook: sid.codebook,
                        })
                        .collect(),
                })
                .collect();
            Ok(Response::new(proto::LookupSemanticIdsResponse { results }))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(vector = %request.get_ref().vector_name))]
    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        self.observed(Method::Search, async move {
            let slot = self.admit()?;
            let params = validate_search(request.into_inner(), self.store.schema(), &self.config)?;
            let vector = self.query_vector(&params, &slot).await?;
            let exclude = match &params.query {
                Query::Entity(id) => Some(id.clone()),
                _ => None,
            };
            let hits = self
                .blocking(&slot, move |s| {
                    let query = match &vector {
                        QueryVector::Dense(v) => SearchQuery::Dense(v),
                        QueryVector::Multi(t) => SearchQuery::Multi(t),
                    };
                    s.search(&Search {
                        vector_name: &params.vector_name,
                        query,
                        filter: params.filter.clone(),
                        limit: params.limit,
                        offset: params.offset,
                        exclude: exclude.as_deref(),
                        with_vectors: params.with_vectors,
                    })
                })
                .await?;
            let hits = hits
                .into_iter()
                .map(|n| {
                    let (vector, tokens) = match n.vector {
                        Some(HitVector::Dense(values)) => {
                            (Some(super::convert::vector_to_proto(&values, false)), None)
                        }
                        Some(HitVector::Multi(t)) => (
                            None,
                            Some(proto::MultiVector {
                                tokens: t
                                    .into_iter()
                                    .map(|values| super::convert::vector_to_proto(&values, false))
                                    .collect(),
                            }),
                        ),
                        None => (None, None),
                    };
                    proto::SearchHit {
                        id: n.id,
                        score: n.score,
                        vector,
                        tokens,
                    }
                })
                .collect();
            Ok(Response::new(proto::SearchResponse { hits }))
        })
        .await
    }

    type ScanEntitiesStream = ScanStream;

    #[tracing::instrument(level = "debug", skip_all)]
    async fn scan_entities(
        &self,
        request: Request<proto::ScanEntitiesRequest>,
    ) -> Result<Response<Self::ScanEntitiesStream>, Status> {
        self.observed(Method::ScanEntities, async move {
            let slot = self.admit()?;
            let params = validate_scan(request.get_ref(), self.store.schema(), &self.config)?;
            let (mut out, stream) = StreamOut::new(self.stopping.clone());
            let service = self.clone();
            tokio::spawn(async move {
                // The slot is held for the whole stream: a scan is a call in flight until it ends.
                let ScanParams {
                    mut cursor,
                    mut page_size,
                    with_vectors,
                    get,
                } = params;
                let budget = service.config.max_response_bytes;
                loop {
                    let from = cursor.clone();
                    let page = out
                        .unless_closed(service.blocking(&slot, move |s| {
                            s.scan(from.as_deref(), page_size, with_vectors)
                        }))
                        .await;
                    let page = match page {
                        None => return,
                        Some(Ok(page)) => page,
                        Some(Err(status)) => {
                            out.send(Err(status)).await;
                            return;
                        }
                    };
                    let query: &GetQuery = &get;
                    let message = proto::ScanEntitiesResponse {
                        entities: page
                            .entities
                            .into_iter()
                            .map(|e| entity_to_proto(&e, query))
                            .collect(),
                        next_cursor: page.next.clone().unwrap_or_default(),
                    };
                    // Pages are bounded by bytes too: titles with many token vectors make big
                    // pages. Too big: read the same titles again in smaller pages.
                    let size = prost::Message::encoded_len(&message);
                    if size > budget {
                        if page_size > 1 {
                            page_size = page_size.div_ceil(2);
                            continue;
                        }
                        let id = message.entities.first().map(|e| e.id.clone());
                        out.send(Err(Status::resource_exhausted(format!(
                            "title {:?} alone is {size} bytes, over the {budget}-byte response limit; scan with skip_vectors or fewer vector_names",
                            id.unwrap_or_default()
                        ))))
                        .await;
                        return;
                    }
                    // Waits while the client is not reading; fails once it has gone away.
                    if !out.send(Ok(message)).await {
                        return;
                    }
                    match page.next {
                        Some(next) => cursor = Some(next),
                        None => return,
                    }
                }
            });
            Ok(Response::new(stream))
        })
        .await
    }

    type WatchEntitiesStream = WatchStream;

    #[tracing::instrument(level = "debug", skip_all, fields(after = request.get_ref().after_seq))]
    async fn watch_entities(
        &self,
        request: Request<proto::WatchEntitiesRequest>,
    ) -> Result<Response<Self::WatchEntitiesStream>, Status> {
        self.observed(Method::WatchEntities, async move {
            let request = request.into_inner();
            let page = match request.page_size as usize {
                0 => DEFAULT_PAGE_SIZE.min(self.config.max_ids_per_call),
                n if n > self.config.max_ids_per_call => {
                    return Err(Status::invalid_argument(format!(
                        "page_size: {n} is over the limit of {}",
                        self.config.max_ids_per_call
                    )));
                }
                n => n,
            };
            // A followed feed lives long: it takes a watcher slot, not a call slot.
            let slot = if request.follow {
                self.watchers
                    .clone()
                    .try_acquire_owned()
                    .map(Arc::new)
                    .map_err(|_| {
                        Status::resource_exhausted(format!(
                            "server busy: {} followed change feeds open; retry with backoff",
                            self.config.max_watchers
                        ))
                    })?
            } else {
                self.admit()?
            };
            let (mut out, stream) = StreamOut::new(self.stopping.clone());
            let service = self.clone();
            let mut stopping = self.stopping.clone();
            tokio::spawn(async move {
                let mut after = request.after_seq;
                loop {
                    let changes = match out
                        .unless_closed(service.blocking(&slot, move |s| s.changes(after, page)))
                        .await
                    {
                        None => return,
                        Some(Ok(changes)) => changes,
                        Some(Err(status)) => {
                            out.send(Err(status)).await;
                            return;
                        }
                    };
                    let caught_up = changes.len() < page;
                    if let Some(last) = changes.last() {
                        after = last.seq;
                        let message = proto::WatchEntitiesResponse {
                            changes: changes
                                .into_iter()
                                .map(|c| proto::EntityChange {
                                    seq: c.seq,
                                    id: c.id,
                                    run: c.run.unwrap_or_default(),
                                    what: c.what,
                                    at_unix_ms: c.at.unwrap_or(0),
                                })
                                .collect(),
                        };
                        if !out.send(Ok(message)).await {
                            return;
                        }
                    }
                    if !caught_up {
                        continue;
                    }
                    if !request.follow {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(WATCH_POLL) => {}
                        _ = stopping.wait_for(|stop| *stop) => {
                            out.end_with(Status::unavailable(
                                "the server is shutting down; resume after the last seq",
                            ));
                            return;
                        }
                        _ = out.closed() => return,
                    }
                }
            });
            Ok(Response::new(stream))
        })
        .await
    }

    async fn get_schema(
        &self,
        _request: Request<proto::GetSchemaRequest>,
    ) -> Result<Response<proto::GetSchemaResponse>, Status> {
        self.observed(Method::GetSchema, async move {
            let _slot = self.admit()?;
            Ok(Response::new(super::convert::schema_to_proto(
                self.store.schema(),
            )))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_indexes::{EdgeStore, Schema, VectorSpec};

    #[test]
    fn calls_beyond_the_in_flight_limit_are_refused_until_a_slot_frees() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let schema = Schema::new([("v".to_string(), VectorSpec::dense(2, "m"))]);
        let store = EdgeStore::open(dir.path(), schema).unwrap_or_else(|e| panic!("{e}"));
        let config = ServeConfig {
            max_in_flight: 2,
            ..ServeConfig::default()
        };
        let (_tx, stopping) = watch::channel(false);
        let service = EntitiesService::new(Arc::new(store), config, stopping);
        let first = service.admit();
        let second = service.admit();
        assert!(first.is_ok() && second.is_ok());
        let refused = service.admit().err().map(|s| s.code());
        assert_eq!(refused, Some(tonic::Code::ResourceExhausted));
        drop(first);
        assert!(service.admit().is_ok());
    }

    fn service_with_readers(readers: usize) -> (EntitiesService, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let schema = Schema::new([("v".to_string(), VectorSpec::dense(2, "m"))]);
        let store = EdgeStore::open(dir.path(), schema).unwrap_or_else(|e| panic!("{e}"));
        let config = ServeConfig {
            store_readers: readers,
            ..ServeConfig::default()
        };
        let (_tx, stopping) = watch::channel(false);
        (EntitiesService::new(Arc::new(store), config, stopping), dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_reads_beyond_the_reader_limit_wait_their_turn() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (service, _dir) = service_with_readers(1);
        let service = Arc::new(service);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let (service, running, most) = (service.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    let slot = service.admit()?;
                    service
                        .blocking(&slot, move |_| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        for call in calls {
            let done = call.await.map_err(|e| e.to_string());
            assert!(matches!(done, Ok(Ok(()))), "{done:?}");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "reads ran side by side");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_within_the_reader_limit_run_side_by_side() {
        use std::sync::mpsc::channel;
        // Each read tells the other it has started and waits (a bounded time) to hear the same:
        // both hear it only if the two run at once.
        let (service, _dir) = service_with_readers(2);
        let service = Arc::new(service);
        let (to_b, from_a) = channel::<()>();
        let (to_a, from_b) = channel::<()>();
        let calls: Vec<_> = [(to_b, from_b), (to_a, from_a)]
            .into_iter()
            .map(|(tell, hear)| {
                let service = service.clone();
                tokio::spawn(async move {
                    let slot = service.admit()?;
                    service
                        .blocking(&slot, move |_| {
                            let _ = tell.send(());
                            Ok(hear.recv_timeout(Duration::from_secs(5)).is_ok())
                        })
                        .await
                })
            })
            .collect();
        for call in calls {
            let met = call.await.map_err(|e| e.to_string());
            assert!(matches!(met, Ok(Ok(true))), "{met:?}");
        }
    }

    /// Waits for `condition`, failing the test after 10 s instead of hanging it.
    async fn until(what: &str, condition: impl Fn() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while !condition() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "gave up waiting for {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_gives_up_while_waiting_for_a_reader_reads_nothing() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (service, _dir) = service_with_readers(1);
        let service = Arc::new(service);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let first = {
            let service = service.clone();
            tokio::spawn(async move {
                let slot = service.admit()?;
                service
                    .blocking(&slot, move |_| {
                        let _ = released.recv();
                        Ok(())
                    })
                    .await
            })
        };
        // The first read holds the only reader place once it has started.
        until("the first read to start", || {
            service.store_readers.available_permits() == 0
        })
        .await;
        let read = Arc::new(AtomicBool::new(false));
        let second = {
            let (service, read) = (service.clone(), read.clone());
            tokio::spawn(async move {
                let slot = service.admit()?;
                service
                    .blocking(&slot, move |_| {
                        read.store(true, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            })
        };
        let waiting = |n: usize| {
            let metrics = service.config.metrics.render(None, None);
            metrics.contains(&format!("tessera_store_reads_waiting {n}\n"))
        };
        until("the second call to wait", || waiting(1)).await;
        // Its client goes away (a deadline, a cancel): the handler future is dropped.
        second.abort();
        assert!(second.await.is_err_and(|e| e.is_cancelled()));
        assert!(waiting(0), "the waiting gauge kept a cancelled call");
        let _ = release.send(());
        let done = first.await.map_err(|e| e.to_string());
        assert!(matches!(done, Ok(Ok(()))), "{done:?}");
        assert_eq!(service.store_readers.available_permits(), 1);
        assert!(
            !read.load(Ordering::SeqCst),
            "a call that gave up still read the store"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_title_written_after_a_call_read_it_is_answered_as_written() {
        use tessera_indexes::Entity;
        let (service, _dir) = service_with_readers(0);
        let title = |name: &str| Entity {
            id: "t1".into(),
            name: name.into(),
            vectors: [("v".to_string(), vec![1.0, 0.0])].into(),
            ..Default::default()
        };
        let store = service.store.clone();
        let write = move |e: Entity| {
            let store = store.clone();
            async move {
                tokio::task::spawn_blocking(move || store.upsert(&[e]))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
        };
        let name = || async {
            let response = service
                .get_entities(Request::new(proto::GetEntitiesRequest {
                    ids: vec!["t1".into()],
                    ..Default::default()
                }))
                .await
                .map_err(|s| s.to_string())?;
            let results = response.into_inner().results;
            let entity = results[0]
                .entity
                .as_ref()
                .map(|bytes| <proto::Entity as prost::Message>::decode(&bytes[..]))
                .transpose()
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(entity.map(|e| e.name))
        };
        assert_eq!(write(title("First")).await, Ok(()));
        assert_eq!(name().await, Ok(Some("First".into())));
        assert_eq!(name().await, Ok(Some("First".into())));
        assert_eq!(write(title("Second")).await, Ok(()));
        assert_eq!(name().await, Ok(Some("Second".into())));
        let stats = service.config.metrics.entity_cache_stats();
        assert_eq!(
            stats.map(|s| (s.hits, s.misses)),
            Some((1, 2)),
            "the second read came from memory, the third from the store"
        );
    }
}
