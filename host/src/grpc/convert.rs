//! Request validation and conversions between stored entities and `tessera.v1` messages.

use super::ServeConfig;
use super::proto;
use tessera_indexes::search::MAX_SID_CODES;
use tessera_indexes::{Entity, Schema, VectorKind};
use tonic::Status;

/// A validated `GetEntities` request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GetQuery {
    /// Vector names to return; empty means all.
    pub vector_names: Vec<String>,
    /// Lowest tag confidence returned.
    pub min_tag_confidence: f32,
    /// Vectors as little-endian bytes (`Vector.packed`) rather than repeated floats.
    pub packed: bool,
}

impl GetQuery {
    /// Names everything besides the title that its `tessera.v1.Entity` message depends on: the
    /// entity cache keeps a title's message per form, and hands it to any call of the same form.
    pub fn form(&self) -> String {
        let mut names = self.vector_names.clone();
        names.sort();
        names.dedup();
        format!(
            "packed={} min_tag_confidence={:08x} vectors={names:?}",
            self.packed,
            // -0.0 filters as 0.0 does: one form for both.
            (self.min_tag_confidence + 0.0).to_bits()
        )
    }
}

pub(crate) fn validate_get(
    request: &proto::GetEntitiesRequest,
    schema: &Schema,
    config: &ServeConfig,
) -> Result<GetQuery, Status> {
    if request.ids.len() > config.max_ids_per_call {
        return Err(Status::invalid_argument(format!(
            "ids: {} ids in one call; the limit is {}",
            request.ids.len(),
            config.max_ids_per_call
        )));
    }
    if let Some(bad) = request
        .ids
        .iter()
        .position(|id| id.is_empty() || id.len() > 512)
    {
        return Err(Status::invalid_argument(format!(
            "ids[{bad}]: ids must be 1..=512 bytes"
        )));
    }
    select_returned(
        &request.vector_names,
        request.min_tag_confidence,
        request.packed_vectors,
        schema,
    )
}

/// INVALID_ARGUMENT for a vector name the store does not hold, naming `field` and the names it
/// does hold (the client's name clipped: it ends up in headers and logs).
pub(crate) fn unknown_vector(field: &str, name: &str, schema: &Schema) -> Status {
    Status::invalid_argument(format!(
        "{field}: unknown vector {:?}; this store has: {}",
        super::search::clip(name, 64),
        schema.names()
    ))
}

/// What of each entity to return (GetEntities and ScanEntities): the named vectors (all when
/// none are named) and tags from a confidence on.
pub(crate) fn select_returned(
    vector_names: &[String],
    min_tag_confidence: f32,
    packed: bool,
    schema: &Schema,
) -> Result<GetQuery, Status> {
    if let Some(name) = vector_names
        .iter()
        .find(|n| !schema.vectors.contains_key(*n))
    {
        return Err(unknown_vector("vector_names", name, schema));
    }
    let min = min_tag_confidence;
    if !(0.0..=1.0).contains(&min) {
        return Err(Status::invalid_argument(format!(
            "min_tag_confidence: {min} is outside 0..=1"
        )));
    }
    Ok(GetQuery {
        vector_names: vector_names.to_vec(),
        min_tag_confidence: min,
        packed,
    })
}

/// Default and most titles per semantic-ID query.
const LOOKUP_DEFAULT: usize = 100;
const LOOKUP_MAX: usize = 1000;

/// A validated `LookupSemanticIds` request: the queries' codes and the per-query limit.
pub(crate) fn validate_lookup(
    request: &proto::LookupSemanticIdsRequest,
    config: &ServeConfig,
) -> Result<(Vec<Vec<u16>>, usize), Status> {
    if request.queries.len() > config.max_ids_per_call {
        return Err(Status::invalid_argument(format!(
            "queries: {} queries in one call; the limit is {}",
            request.queries.len(),
            config.max_ids_per_call
        )));
    }
    let limit = match request.limit_per_query as usize {
        0 => LOOKUP_DEFAULT,
        n if n > LOOKUP_MAX => {
            return Err(Status::invalid_argument(format!(
                "limit_per_query: {n} is over the limit of {LOOKUP_MAX}"
            )));
        }
        n => n,
    };
    let mut queries = Vec::with_capacity(request.queries.len());
    for (i, q) in request.queries.iter().enumerate() {
        if q.codes.is_empty() {
            return Err(Status::invalid_argument(format!(
                "queries[{i}]: a semantic ID has 1..={MAX_SID_CODES} codes, this has none"
            )));
        }
        queries.push(sid_codes(&format!("queries[{i}]"), &q.codes)?);
    }
    Ok((queries, limit))
}

/// Semantic-ID codes from the wire (u32) as stored (u16): at most [`MAX_SID_CODES`], each
/// 0..=65535; `field` names them in errors.
pub(crate) fn sid_codes(field: &str, codes: &[u32]) -> Result<Vec<u16>, Status> {
    if codes.len() > MAX_SID_CODES {
        return Err(Status::invalid_argument(format!(
            "{field}: a semantic ID has 1..={MAX_SID_CODES} codes, this has {}",
            codes.len()
        )));
    }
    codes
        .iter()
        .map(|&c| u16::try_from(c))
        .collect::<Result<Vec<u16>, _>>()
        .map_err(|_| Status::invalid_argument(format!("{field}: codes are 0..=65535")))
}

/// `values` as a proto vector: repeated floats, or little-endian bytes when `packed`.
pub(crate) fn vector_to_proto(values: &[f32], packed: bool) -> proto::Vector {
    if packed {
        // Filled in place, four bytes per float: a loop the compiler turns into wide copies,
        // where pushing each float's bytes onto a growing Vec checked capacity every time
        // (a tenth of the server's time at 16 streams, BENCHMARKS.md).
        let mut packed = vec![0u8; values.len() * 4];
        let (chunks, _) = packed.as_chunks_mut::<4>();
        for (bytes, v) in chunks.iter_mut().zip(values) {
            *bytes = v.to_le_bytes();
        }
        proto::Vector {
            values: Vec::new(),
            packed,
        }
    } else {
        proto::Vector {
            values: values.to_vec(),
            packed: Vec::new(),
        }
    }
}

/// The floats of a packed vector (`Vector.packed`: little-endian float32); `None` when the bytes
/// are not a whole number of floats.
pub fn unpack_floats(packed: &[u8]) -> Option<Vec<f32>> {
    let (floats, rest) = packed.as_chunks::<4>();
    rest.is_empty()
        .then(|| floats.iter().map(|b| f32::from_le_bytes(*b)).collect())
}

/// A client's vector, given as floats or as packed little-endian bytes (not both).
/// `field` names it in errors; it is only formatted when there is one.
pub(crate) fn vector_from_proto(
    vector: proto::Vector,
    field: impl std::fmt::Display,
) -> Result<Vec<f32>, Status> {
    match (vector.values.is_empty(), vector.packed.is_empty()) {
        (_, true) => Ok(vector.values),
        (true, false) => unpack_floats(&vector.packed).ok_or_else(|| {
            Status::invalid_argument(format!(
                "{field}: packed holds {} bytes, not a whole number of 4-byte floats",
                vector.packed.len()
            ))
        }),
        (false, false) => Err(Status::invalid_argument(format!(
            "{field}: give values or packed, not both"
        ))),
    }
}

/// The proto of a stored title, as `query` asks for it. From a reference: the title may be a
/// copy the entity cache shares between calls.
pub(crate) fn entity_to_proto(entity: &Entity, query: &GetQuery) -> proto::Entity {
    let wanted = |name: &String| query.vector_names.is_empty() || query.vector_names.contains(name);
    let vectors = entity
        .vectors
        .iter()
        .filter(|(name, _)| wanted(name))
        .map(|(name, values)| (name.clone(), vector_to_proto(values, query.packed)))
        .collect();
    let multivectors = entity
        .multivectors
        .iter()
        .filter(|(name, _)| wanted(name))
        .map(|(name, tokens)| {
            let tokens = tokens
                .iter()
                .map(|values| vector_to_proto(values, query.packed))
                .collect();
            (name.clone(), proto::MultiVector { tokens })
        })
        .collect();
    let tags = entity
        .tags
        .iter()
        .filter(|t| t.confidence >= query.min_tag_confidence)
        .map(|t| proto::Tag {
            name: t.name.clone(),
            value: t.value.clone(),
            confidence: t.confidence,
            plugin: t.plugin.clone(),
            plugin_version: t.plugin_version.clone(),
            span: t.span.map(|(start, end)| proto::TimeSpan { start, end }),
            evidence: t.evidence.clone(),
            run: t.run.clone(),
            models: t.models.clone(),
        })
        .collect();
    proto::Entity {
        id: entity.id.clone(),
        name: entity.name.clone(),
        vectors,
        tags,
        year: entity.year.map(u32::from).unwrap_or(0),
        language: entity.language.clone(),
        semantic_id: entity
            .semantic_id
            .as_ref()
            .map(|s| s.id.0.iter().map(|&c| u32::from(c)).collect())
            .unwrap_or_default(),
        semantic_id_codebook: entity
            .semantic_id
            .as_ref()
            .map(|s| s.codebook.clone())
            .unwrap_or_default(),
        multivectors,
        outputs: entity
            .outputs
            .iter()
            .map(|o| proto::Output {
                plugin: o.plugin.clone(),
                version: o.version.clone(),
                models: o.models.clone(),
                run: o.run.clone(),
            })
            .collect(),
        assets: entity
            .assets
            .iter()
            .map(|a| proto::AssetDigest {
                kind: a.kind.clone(),
                uri: a.uri.clone(),
                sha256: a.sha256.clone().unwrap_or_default(),
            })
            .collect(),
        created_unix_ms: entity.created_at.unwrap_or(0),
        updated_unix_ms: entity.updated_at.unwrap_or(0),
    }
}

/// What the store holds, for `GetSchema`. The modality is the vector name's first part
/// (`text/…`); the fused vector has none.
pub fn schema_to_proto(schema: &Schema) -> proto::GetSchemaResponse {
    let vectors = schema
        .vectors
        .iter()
        .map(|(name, spec)| proto::VectorInfo {
            name: name.clone(),
            modality: name
                .split_once('/')
                .map(|(modality, _)| modality.to_string())
                .unwrap_or_default(),
            model: spec.model.clone(),
            dimension: u32::try_from(spec.dim).unwrap_or(u32::MAX),
            kind: match spec.kind {
                VectorKind::Dense => "dense",
                VectorKind::Multi => "multi",
            }
            .to_string(),
        })
        .collect();
    proto::GetSchemaResponse {
        version: schema.version,
        vectors,
        fusion: schema
            .fusion
            .as_ref()
            .map(tessera_indexes::Fusion::describe)
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_indexes::VectorSpec;

    fn schema() -> Schema {
        Schema::new([("synopsis".to_string(), VectorSpec::dense(2, "m"))])
    }

    fn request(ids: &[&str], names: &[&str], min: f32) -> proto::GetEntitiesRequest {
        proto::GetEntitiesRequest {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            vector_names: names.iter().map(|s| s.to_string()).collect(),
            min_tag_confidence: min,
            packed_vectors: false,
        }
    }

    #[test]
    fn packed_vectors_are_little_endian_floats_and_round_trip() {
        let values = vec![1.0f32, -2.5, f32::MIN_POSITIVE, 3.25e7, 0.0];
        let packed = vector_to_proto(&values, true);
        assert!(packed.values.is_empty());
        assert_eq!(&packed.packed[..4], &1.0f32.to_le_bytes());
        assert_eq!(&packed.packed[4..8], &[0x00, 0x00, 0x20, 0xc0]);
        assert_eq!(packed.packed.len(), values.len() * 4);
        assert_eq!(unpack_floats(&packed.packed), Some(values.clone()));
        let plain = vector_to_proto(&values, false);
        assert!(plain.packed.is_empty() && plain.values == values);
        assert_eq!(unpack_floats(&packed.packed[..7]), None);
    }

    #[test]
    fn queries_shaping_a_title_alike_share_a_form_and_no_others_do() {
        let query = |names: &[&str], min: f32, packed: bool| GetQuery {
            vector_names: names.iter().map(|s| s.to_string()).collect(),
            min_tag_confidence: min,
            packed,
        };
        let form = query(&["a", "b"], 0.5, true).form();
        assert_eq!(form, query(&["b", "a", "b"], 0.5, true).form());
        assert_eq!(
            query(&[], 0.0, false).form(),
            query(&[], -0.0, false).form()
        );
        for other in [
            query(&["a"], 0.5, true),
            query(&["a", "b"], 0.25, true),
            query(&["a", "b"], 0.5, false),
            query(&[], 0.5, true),
            // A name holding the separator is not two names.
            query(&["a\", \"b"], 0.5, true),
        ] {
            assert_ne!(form, other.form(), "{other:?}");
        }
    }

    #[test]
    fn rejects_bad_requests_with_the_field_named() {
        let config = ServeConfig {
            max_ids_per_call: 2,
            ..ServeConfig::default()
        };
        let msg = |r| {
            validate_get(&r, &schema(), &config)
                .err()
                .map(|s| s.message().to_string())
                .unwrap_or_default()
        };
        assert!(msg(request(&["a", "b", "c"], &[], 0.0)).starts_with("ids: 3 ids"));
        assert!(msg(request(&[""], &[], 0.0)).starts_with("ids[0]"));
        assert!(msg(request(&["a"], &["poster"], 0.0)).contains("unknown vector \"poster\""));
        assert!(msg(request(&["a"], &[], f32::NAN)).starts_with("min_tag_confidence"));
        assert!(validate_get(&request(&["a"], &["synopsis"], 0.5), &schema(), &config).is_ok());
    }

    #[test]
    fn rejects_bad_semantic_id_lookups_with_the_field_named() {
        let config = ServeConfig {
            max_ids_per_call: 2,
            ..ServeConfig::default()
        };
        let lookup = |codes: Vec<Vec<u32>>, limit: u32| proto::LookupSemanticIdsRequest {
            queries: codes
                .into_iter()
                .map(|codes| proto::SemanticIdQuery { codes })
                .collect(),
            limit_per_query: limit,
        };
        let msg = |r| {
            validate_lookup(&r, &config)
                .err()
                .map(|s| s.message().to_string())
                .unwrap_or_default()
        };
        assert!(msg(lookup(vec![vec![1]; 3], 0)).starts_with("queries: 3 queries"));
        assert!(msg(lookup(vec![vec![]], 0)).starts_with("queries[0]: a semantic ID has 1..=16"));
        assert!(msg(lookup(vec![vec![1], vec![70_000]], 0)).starts_with("queries[1]: codes"));
        assert!(msg(lookup(vec![vec![1]], 5000)).starts_with("limit_per_query"));
        let ok = validate_lookup(&lookup(vec![vec![12, 200]], 0), &config);
        assert_eq!(ok.ok(), Some((vec![vec![12, 200]], 100)));
    }

    #[test]
    fn the_schema_lists_each_vector_with_its_modality_and_kind()
    -> Result<(), Box<dyn std::error::Error>> {
        let schema = tessera_indexes::Fusion::parse("text=2,image=1")?.apply_to(Schema::new([
            ("text/m@1".to_string(), VectorSpec::dense(2, "m@1")),
            ("image/c@2".to_string(), VectorSpec::dense(3, "c@2")),
            ("audio/w@3/tokens".to_string(), VectorSpec::multi(4, "w@3")),
        ]))?;
        let got = schema_to_proto(&schema);
        assert_eq!(got.fusion, "text/m@1=2,image/c@2=1");
        let rows: Vec<(&str, &str, &str, u32, &str)> = got
            .vectors
            .iter()
            .map(|v| {
                let (name, modality, model) = (&v.name, &v.modality, &v.model);
                (
                    name.as_str(),
                    modality.as_str(),
                    model.as_str(),
                    v.dimension,
                    v.kind.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("audio/w@3/tokens", "audio", "w@3", 4, "multi"),
                ("fused", "", "fusion of text/m@1=2,image/c@2=1", 5, "dense"),
                ("image/c@2", "image", "c@2", 3, "dense"),
                ("text/m@1", "text", "m@1", 2, "dense"),
            ]
        );
        Ok(())
    }
}
