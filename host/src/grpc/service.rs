//! `tessera.v1.Entities` handlers.

use super::ServeConfig;
use super::convert::{entity_to_proto, validate_get, validate_lookup};
use super::proto::{self, entities_server::Entities};
use std::sync::Arc;
use tessera_indexes::{EntityStore, IndexError};
use tonic::{Request, Response, Status};

/// The Entities service: shared handles only.
#[derive(Debug, Clone)]
pub struct EntitiesService {
    store: Arc<dyn EntityStore>,
    config: ServeConfig,
}

impl EntitiesService {
    /// A service reading from `store`.
    pub fn new(store: Arc<dyn EntityStore>, config: ServeConfig) -> Self {
        EntitiesService { store, config }
    }
}

fn store_status(error: IndexError) -> Status {
    tracing::error!(error = %error, "store read failed");
    Status::internal(format!("store: {error}"))
}

#[tonic::async_trait]
impl Entities for EntitiesService {
    #[tracing::instrument(level = "debug", skip_all, fields(ids = request.get_ref().ids.len()))]
    async fn get_entities(
        &self,
        request: Request<proto::GetEntitiesRequest>,
    ) -> Result<Response<proto::GetEntitiesResponse>, Status> {
        let request = request.into_inner();
        let query = validate_get(&request, self.store.schema(), &self.config)?;
        let store = self.store.clone();
        let ids = request.ids;
        let (ids, found) =
            tokio::task::spawn_blocking(move || store.get(&ids).map(|found| (ids, found)))
                .await
                .map_err(|e| Status::internal(format!("store task failed: {e}")))?
                .map_err(store_status)?;
        let results = ids
            .into_iter()
            .zip(found)
            .map(|(id, entity)| proto::EntityResult {
                id,
                found: entity.is_some(),
                entity: entity.map(|e| entity_to_proto(e, &query)),
            })
            .collect();
        Ok(Response::new(proto::GetEntitiesResponse { results }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(queries = request.get_ref().queries.len()))]
    async fn lookup_semantic_ids(
        &self,
        request: Request<proto::LookupSemanticIdsRequest>,
    ) -> Result<Response<proto::LookupSemanticIdsResponse>, Status> {
        let (queries, limit) = validate_lookup(request.get_ref(), &self.config)?;
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || {
            queries
                .iter()
                .map(|q| store.lookup_semantic_id(q, limit))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
        .map_err(store_status)?;
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
    }
}
