//! `Search` and `ScanEntities` requests: validation (every bound checked, the field named) and
//! conversion to the store's terms.

use super::ServeConfig;
use super::proto;
use tessera_indexes::{Schema, SearchFilter, TagFilter, VectorKind};
use tonic::Status;

/// Hits returned when a search does not say.
const DEFAULT_SEARCH_LIMIT: usize = 10;
/// Titles (or changes) per stream message when the request does not say.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 256;

/// What a validated search ranks by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Query {
    Vector(Vec<f32>),
    Tokens(Vec<Vec<f32>>),
    Entity(String),
    Text(String),
}

/// A validated `Search` request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SearchParams {
    pub vector_name: String,
    pub kind: VectorKind,
    pub query: Query,
    pub filter: SearchFilter,
    pub limit: usize,
    pub offset: usize,
    pub with_vectors: bool,
}

fn invalid(message: String) -> Status {
    Status::invalid_argument(message)
}

/// Most token vectors in a multivector query: MaxSim costs grow with them, and real queries
/// (a text's or an image's tokens) have tens to a few hundred.
const MAX_QUERY_TOKENS: usize = 512;

/// The first `max` characters of a client-supplied string, for error messages (they end up in
/// response headers and logs, so they must stay short whatever the client sent).
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Longest text query, in bytes: the text model truncates to its window anyway.
const MAX_TEXT_BYTES: usize = 16 * 1024;

pub(crate) fn validate_search(
    request: proto::SearchRequest,
    schema: &Schema,
    config: &ServeConfig,
) -> Result<SearchParams, Status> {
    let spec = schema.vectors.get(&request.vector_name).ok_or_else(|| {
        super::convert::unknown_vector("vector_name", &request.vector_name, schema)
    })?;
    // The query's kind must match the vector's, checked before its values are looked at.
    use proto::search_request::Query as Q;
    match (&request.query, spec.kind) {
        (Some(Q::Vector(_) | Q::Text(_)), VectorKind::Multi) => {
            return Err(invalid(format!(
                "query: {:?} is a multivector; search it with tokens or an entity_id",
                request.vector_name
            )));
        }
        (Some(Q::Tokens(_)), VectorKind::Dense) => {
            return Err(invalid(format!(
                "query: {:?} is a dense vector; search it with a vector, entity_id or text",
                request.vector_name
            )));
        }
        _ => {}
    }
    let wrong_dim = |what: String, got: usize| {
        invalid(format!(
            "{what}: {got} values; vector {:?} has dimension {}",
            request.vector_name, spec.dim
        ))
    };
    let query = match request.query {
        None => {
            return Err(invalid(
                "query: give a vector, entity_id, text or tokens".into(),
            ));
        }
        Some(proto::search_request::Query::Vector(v)) => {
            let values = super::convert::vector_from_proto(v, "vector")?;
            if values.len() != spec.dim {
                return Err(wrong_dim("vector".into(), values.len()));
            }
            Query::Vector(values)
        }
        Some(proto::search_request::Query::Tokens(m)) => {
            // Checked before anything is collected: a 4 MiB request can hold millions of
            // empty token messages.
            if m.tokens.is_empty() || m.tokens.len() > MAX_QUERY_TOKENS {
                return Err(invalid(format!(
                    "tokens: {} token vectors; give 1..={MAX_QUERY_TOKENS}",
                    m.tokens.len()
                )));
            }
            let mut tokens = Vec::with_capacity(m.tokens.len());
            for (i, t) in m.tokens.into_iter().enumerate() {
                let values = super::convert::vector_from_proto(t, format_args!("tokens[{i}]"))?;
                if values.len() != spec.dim {
                    return Err(wrong_dim(format!("tokens[{i}]"), values.len()));
                }
                tokens.push(values);
            }
            Query::Tokens(tokens)
        }
        Some(proto::search_request::Query::EntityId(id)) => {
            if id.is_empty() || id.len() > 512 {
                return Err(invalid("entity_id: ids are 1..=512 bytes".into()));
            }
            Query::Entity(id)
        }
        Some(proto::search_request::Query::Text(text)) => {
            if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES {
                return Err(invalid(format!(
                    "text: give 1..={MAX_TEXT_BYTES} bytes of non-blank text"
                )));
            }
            Query::Text(text)
        }
    };
    let limit = match request.limit as usize {
        0 => DEFAULT_SEARCH_LIMIT,
        n => n,
    };
    let offset = request.offset as usize;
    if limit.saturating_add(offset) > config.max_search_limit {
        return Err(invalid(format!(
            "limit + offset: {limit} + {offset} is over the limit of {}",
            config.max_search_limit
        )));
    }
    let filter = match request.filter {
        None => SearchFilter::default(),
        Some(f) => filter_from_proto(f)?,
    };
    Ok(SearchParams {
        vector_name: request.vector_name,
        kind: spec.kind,
        query,
        filter,
        limit,
        offset,
        with_vectors: request.with_vectors,
    })
}

fn filter_from_proto(filter: proto::SearchFilter) -> Result<SearchFilter, Status> {
    let year = |field: &str, y: Option<u32>| {
        y.map(|y| {
            u16::try_from(y).map_err(|_| invalid(format!("filter.{field}: {y} is not a year")))
        })
        .transpose()
    };
    let sid_prefix =
        super::convert::sid_codes("filter.semantic_id_prefix", &filter.semantic_id_prefix)?;
    let filter = SearchFilter {
        tags: filter
            .tags
            .into_iter()
            .map(|t| TagFilter {
                name: t.name,
                value: t.value,
                min_confidence: t.min_confidence,
            })
            .collect(),
        year_min: year("year_min", filter.year_min)?,
        year_max: year("year_max", filter.year_max)?,
        languages: filter.languages,
        sid_prefix,
    };
    filter
        .validate()
        .map_err(|e| invalid(format!("filter: {e}")))?;
    Ok(filter)
}

/// A validated `ScanEntities` request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScanParams {
    pub cursor: Option<String>,
    pub page_size: usize,
    pub with_vectors: bool,
    pub get: super::convert::GetQuery,
}

pub(crate) fn validate_scan(
    request: &proto::ScanEntitiesRequest,
    schema: &Schema,
    config: &ServeConfig,
) -> Result<ScanParams, Status> {
    let page_size = match request.page_size as usize {
        0 => DEFAULT_PAGE_SIZE.min(config.max_ids_per_call),
        n if n > config.max_ids_per_call => {
            return Err(invalid(format!(
                "page_size: {n} is over the limit of {}",
                config.max_ids_per_call
            )));
        }
        n => n,
    };
    let get = super::convert::select_returned(
        &request.vector_names,
        request.min_tag_confidence,
        request.packed_vectors,
        schema,
    )?;
    if request.cursor.len() > 64 {
        return Err(invalid(
            "cursor: not a cursor this server handed out (pass a next_cursor)".into(),
        ));
    }
    Ok(ScanParams {
        cursor: (!request.cursor.is_empty()).then(|| request.cursor.clone()),
        page_size,
        with_vectors: !request.skip_vectors,
        get,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_indexes::VectorSpec;

    fn schema() -> Schema {
        Schema::new([
            ("synopsis".to_string(), VectorSpec::dense(2, "m")),
            ("frames".to_string(), VectorSpec::multi(2, "m")),
        ])
    }

    fn search(
        vector_name: &str,
        query: Option<proto::search_request::Query>,
    ) -> proto::SearchRequest {
        proto::SearchRequest {
            vector_name: vector_name.into(),
            query,
            filter: None,
            limit: 0,
            offset: 0,
            with_vectors: false,
        }
    }

    fn message(request: proto::SearchRequest) -> String {
        validate_search(request, &schema(), &ServeConfig::default())
            .err()
            .map(|s| s.message().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn rejects_bad_searches_with_the_field_named() {
        use proto::search_request::Query as Q;
        let vector = || {
            Some(Q::Vector(proto::Vector {
                values: vec![1.0, 0.0],
                packed: Vec::new(),
            }))
        };
        assert!(message(search("poster", vector())).starts_with("vector_name: unknown"));
        assert!(message(search("synopsis", None)).starts_with("query: give"));
        assert!(message(search("frames", vector())).contains("is a multivector"));
        let tokens = Some(Q::Tokens(proto::MultiVector { tokens: vec![] }));
        assert!(message(search("synopsis", tokens)).contains("is a dense vector"));
        let none = Some(Q::Tokens(proto::MultiVector { tokens: vec![] }));
        assert!(message(search("frames", none)).starts_with("tokens: 0 token vectors"));
        let many = proto::MultiVector {
            tokens: vec![
                proto::Vector {
                    values: vec![1.0, 0.0],
                    packed: Vec::new(),
                };
                MAX_QUERY_TOKENS + 1
            ],
        };
        assert!(message(search("frames", Some(Q::Tokens(many)))).starts_with("tokens: 513"));
        let short = proto::MultiVector {
            tokens: vec![proto::Vector {
                values: vec![1.0],
                packed: Vec::new(),
            }],
        };
        assert!(
            message(search("frames", Some(Q::Tokens(short)))).starts_with("tokens[0]: 1 values")
        );
        let long_name = "x".repeat(10_000);
        assert!(message(search(&long_name, vector())).len() < 300);
        assert!(message(search("synopsis", Some(Q::Text("  ".into())))).starts_with("text:"));
        assert!(
            message(search("synopsis", Some(Q::EntityId(String::new())))).starts_with("entity_id")
        );
        let mut far = search("synopsis", vector());
        far.limit = 900;
        far.offset = 200;
        assert!(message(far).starts_with("limit + offset: 900 + 200"));
        let mut bad_filter = search("synopsis", vector());
        bad_filter.filter = Some(proto::SearchFilter {
            year_min: Some(70_000),
            ..Default::default()
        });
        assert!(message(bad_filter).starts_with("filter.year_min"));
        let mut bad_tag = search("synopsis", vector());
        bad_tag.filter = Some(proto::SearchFilter {
            tags: vec![proto::TagFilter {
                name: "drama".into(),
                value: None,
                min_confidence: 2.0,
            }],
            ..Default::default()
        });
        assert!(message(bad_tag).contains("min_confidence 2"));

        let ok = validate_search(
            search("synopsis", vector()),
            &schema(),
            &ServeConfig::default(),
        );
        assert_eq!(ok.map(|p| (p.limit, p.offset)).ok(), Some((10, 0)));
    }

    #[test]
    fn scan_pages_are_bounded() {
        let config = ServeConfig::default();
        let scan = |page_size| proto::ScanEntitiesRequest {
            page_size,
            ..Default::default()
        };
        assert_eq!(
            validate_scan(&scan(0), &schema(), &config)
                .map(|p| p.page_size)
                .ok(),
            Some(256)
        );
        let too_big = validate_scan(&scan(5000), &schema(), &config);
        assert!(
            too_big
                .err()
                .is_some_and(|s| s.message().starts_with("page_size"))
        );
    }
}
