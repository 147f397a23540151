//! A collection's life: connecting, creating it with its vectors and payload indexes, checking
//! an existing one's schema (kept in the collection's metadata) against the caller's, resuming
//! its change numbering, and deleting it.

use super::*;

/// What an existing collection holds: its schema, and whether every payload index exists
/// (another process may have created the collection a moment ago and still be adding them).
struct Stored {
    schema: Schema,
    indexed: bool,
}

impl ServerStore {
    fn connect(config: &ServerConfig) -> Result<Bridge, IndexError> {
        let mut builder = Qdrant::from_url(&config.url)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            // The version check is a separate REST-style call with its own failure mode;
            // the first real call reports an unreachable or incompatible server.
            .skip_compatibility_check();
        if let Some(key) = &config.api_key {
            builder = builder.api_key(key.clone());
        }
        let client = builder.build().map_err(|e| IndexError::Server {
            store: config.label(),
            reason: format!("invalid server address: {e}"),
            transient: false,
        })?;
        Bridge::new(client, config.retries, config.label())
    }

    fn schema_error(&self, reason: String) -> IndexError {
        IndexError::Schema {
            path: PathBuf::from(self.bridge.label()),
            reason,
        }
    }

    /// The schema stored with the collection; `None` when the collection does not exist.
    fn stored_schema(bridge: &Bridge, config: &ServerConfig) -> Result<Option<Stored>, IndexError> {
        let name = config.collection.clone();
        let exists = bridge.call("check the collection", move |c| {
            let name = name.clone();
            async move { c.collection_exists(name).await }
        })?;
        if !exists {
            return Ok(None);
        }
        let name = config.collection.clone();
        let info = bridge.call("read the collection's metadata", move |c| {
            let name = name.clone();
            async move { c.collection_info(name).await }
        })?;
        let label = PathBuf::from(config.label());
        let info = info.result;
        let indexed = info.as_ref().is_some_and(|i| {
            INDEXED
                .iter()
                .all(|(field, _)| i.payload_schema.contains_key(*field))
        });
        let raw = info
            .and_then(|i| i.config)
            .and_then(|c| c.metadata.get(SCHEMA_KEY).cloned())
            .ok_or_else(|| IndexError::Schema {
                path: label.clone(),
                reason: format!(
                    "the collection exists but has no {SCHEMA_KEY:?} metadata: it was not made by Tessera; name another collection"
                ),
            })?;
        let json = serde_json::to_value(&raw).map_err(|e| IndexError::Schema {
            path: label.clone(),
            reason: format!("unreadable schema: {e}"),
        })?;
        let schema: Schema = serde_json::from_value(json).map_err(|e| IndexError::Schema {
            path: label.clone(),
            reason: format!("unreadable schema: {e}"),
        })?;
        if schema.version != SCHEMA_VERSION {
            return Err(IndexError::Schema {
                path: label,
                reason: format!(
                    "schema version {} is not supported (this build reads {SCHEMA_VERSION})",
                    schema.version
                ),
            });
        }
        Ok(Some(Stored { schema, indexed }))
    }

    /// Opens the collection, creating it with `schema` (and the config's shards, replication
    /// and write consistency) if it does not exist. An existing collection must have been
    /// created with the same schema.
    pub fn open(config: ServerConfig, schema: Schema) -> Result<Self, IndexError> {
        let bridge = Self::connect(&config)?;
        let existing = Self::stored_schema(&bridge, &config)?;
        let store = match existing {
            Some(Stored {
                schema: existing, ..
            }) if existing != schema => {
                return Err(IndexError::Schema {
                    path: PathBuf::from(config.label()),
                    reason: existing.mismatch(&schema),
                });
            }
            Some(Stored { schema, indexed }) => {
                let store = Self::new(config, schema, bridge);
                if !indexed {
                    store.create_indexes()?;
                }
                store
            }
            None => {
                let mut store = Self::new(config, schema, bridge);
                store.created = store.create_collection()?;
                // Only at creation (or when missing): each index request is a write through
                // the server's log.
                store.create_indexes()?;
                store
            }
        };
        store.resume_numbering()?;
        Ok(store)
    }

    /// Opens an existing collection with the schema it was created with.
    pub fn open_existing(config: ServerConfig) -> Result<Self, IndexError> {
        let bridge = Self::connect(&config)?;
        let stored = Self::stored_schema(&bridge, &config)?.ok_or_else(|| IndexError::Schema {
            path: PathBuf::from(config.label()),
            reason:
                "no such collection; run `tessera ingest` or `tessera store migrate` into it first"
                    .into(),
        })?;
        let store = Self::new(config, stored.schema, bridge);
        if !stored.indexed {
            store.create_indexes()?;
        }
        store.resume_numbering()?;
        Ok(store)
    }

    fn new(config: ServerConfig, schema: Schema, bridge: Bridge) -> Self {
        ServerStore {
            config,
            schema,
            bridge,
            last_change: RwLock::new(0),
            created: false,
        }
    }

    /// Whether opening created the collection (rather than finding it).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Deletes the collection and everything in it.
    pub fn destroy(&self) -> Result<(), IndexError> {
        let name = self.config.collection.clone();
        self.bridge.call("delete the collection", move |c| {
            let name = name.clone();
            async move { c.delete_collection(name).await }
        })?;
        Ok(())
    }

    /// Creates the collection; `false` when another process created it first (with our schema).
    fn create_collection(&self) -> Result<bool, IndexError> {
        let mut vectors = VectorsConfigBuilder::default();
        for (name, spec) in &self.schema.vectors {
            let mut params = VectorParamsBuilder::new(spec.dim as u64, Distance::Cosine);
            if spec.kind == VectorKind::Multi {
                params = params.multivector_config(MultiVectorConfigBuilder::new(
                    MultiVectorComparator::MaxSim,
                ));
            }
            vectors.add_named_vector_params(engine_name(name), params);
        }
        let schema = serde_json::to_value(&self.schema)
            .map_err(|e| self.schema_error(format!("cannot write the schema: {e}")))?;
        let mut request = CreateCollectionBuilder::new(self.config.collection.clone())
            .vectors_config(vectors)
            .metadata(HashMap::from([(SCHEMA_KEY.to_string(), schema)]));
        if let Some(n) = self.config.shard_number {
            request = request.shard_number(n);
        }
        if let Some(n) = self.config.replication_factor {
            request = request.replication_factor(n);
        }
        if let Some(n) = self.config.write_consistency_factor {
            request = request.write_consistency_factor(n);
        }
        let request = request.build();
        let created = self.bridge.call("create the collection", move |c| {
            let request = request.clone();
            async move { c.create_collection(request).await }
        });
        match created {
            Ok(_) => Ok(true),
            // Another process created it meanwhile: fine if its schema is ours.
            Err(error) => match Self::stored_schema(&self.bridge, &self.config) {
                Ok(Some(stored)) if stored.schema == self.schema => Ok(false),
                _ => Err(error),
            },
        }
    }

    /// Payload indexes, as in the embedded store: semantic-ID prefixes, tag names and plugin
    /// outputs as keywords; the change number, year (range, no extra HNSW links) and
    /// language. Creating an existing index again changes nothing.
    fn create_indexes(&self) -> Result<(), IndexError> {
        for (field, index) in INDEXED {
            let request = match index {
                Index::Keyword => CreateFieldIndexCollectionBuilder::new(
                    self.config.collection.clone(),
                    field,
                    FieldType::Keyword,
                ),
                Index::KeywordWithoutLinks => CreateFieldIndexCollectionBuilder::new(
                    self.config.collection.clone(),
                    field,
                    FieldType::Keyword,
                )
                .field_index_params(
                    KeywordIndexParamsBuilder::default()
                        .enable_hnsw(false)
                        .build(),
                ),
                Index::Range { lookup } => CreateFieldIndexCollectionBuilder::new(
                    self.config.collection.clone(),
                    field,
                    FieldType::Integer,
                )
                .field_index_params(
                    IntegerIndexParamsBuilder::new(lookup, true)
                        .enable_hnsw(false)
                        .build(),
                ),
            }
            .wait(true)
            .build();
            self.bridge.call("create a payload index", move |c| {
                let request = request.clone();
                async move { c.create_field_index(request).await }
            })?;
        }
        Ok(())
    }

    /// Starts numbering after the collection's highest change number, so numbers keep
    /// increasing even when the clock is behind the last writer's.
    fn resume_numbering(&self) -> Result<(), IndexError> {
        let last = EntityStore::last_change(self)?;
        *self
            .last_change
            .write()
            .map_err(|_| IndexError::poisoned())? = last;
        Ok(())
    }
}
