//! `tessera.v1.Entities` handlers.

use super::ServeConfig;
use super::convert::{entity_to_proto, validate_get};
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
}
