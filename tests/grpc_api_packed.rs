//! Packed vectors over a real socket against the real `tessera serve`: `packed_vectors` gives
//! each vector as little-endian float32 bytes, the same floats as repeated `values`; a query
//! vector may be sent packed; malformed packed vectors are refused with the field named.

use super::*;
use tessera::grpc::proto::{ScanEntitiesRequest, Vector};
use tessera::grpc::unpack_floats;

#[test]
fn packed_vectors_carry_the_same_floats_both_ways() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (data, _model) = ingest_example(tmp.path());
    let name = text_vector(&data);
    let titles = catalog::read_jsonl(&example_catalog())?;
    let ids: Vec<String> = titles.iter().map(|t| t.id.clone()).collect();
    let server = serve(&data);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut client = EntitiesClient::connect(format!("http://{}", server.addr)).await?;
        let get = |packed_vectors| GetEntitiesRequest {
            ids: ids.clone(),
            packed_vectors,
            ..Default::default()
        };
        let plain = client.get_entities(get(false)).await?.into_inner();
        let packed = client.get_entities(get(true)).await?.into_inner();
        let mut compared = 0;
        for (a, b) in plain.results.iter().zip(&packed.results) {
            let (Some(a), Some(b)) = (&a.entity, &b.entity) else {
                return Err("a title is missing".into());
            };
            assert_eq!(a.vectors.len(), b.vectors.len(), "{}", a.id);
            if let (Some(va), Some(vb)) = (a.vectors.get(&name), b.vectors.get(&name)) {
                assert!(vb.values.is_empty() && va.packed.is_empty());
                assert_eq!(
                    unpack_floats(&vb.packed),
                    Some(va.values.clone()),
                    "{}",
                    a.id
                );
                compared += 1;
            }
        }
        assert!(compared >= 12, "only {compared} vectors compared");

        // The server keeps each title's message per request shape: asked again, either shape
        // answers as before, and a third shape (a tag threshold) gets its own tags, not theirs.
        let strict = client
            .get_entities(GetEntitiesRequest {
                ids: ids.clone(),
                min_tag_confidence: 0.9,
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!(client.get_entities(get(false)).await?.into_inner(), plain);
        assert_eq!(client.get_entities(get(true)).await?.into_inner(), packed);
        let tags = |response: &tessera::grpc::proto::GetEntitiesResponse, min: f32| {
            response
                .results
                .iter()
                .flat_map(|r| r.entity.iter().flat_map(|e| &e.tags))
                .filter(|t| t.confidence >= min)
                .count()
        };
        assert!(tags(&plain, 0.0) > 0, "the example titles have tags");
        assert_eq!(tags(&strict, 0.0), tags(&plain, 0.9));

        // A scan packs its pages the same way.
        let mut stream = client
            .scan_entities(ScanEntitiesRequest {
                packed_vectors: true,
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut scanned = 0;
        while let Some(page) = stream.message().await? {
            for e in &page.entities {
                if let Some(v) = e.vectors.get(&name) {
                    assert!(v.values.is_empty() && !v.packed.is_empty());
                    scanned += 1;
                }
            }
        }
        assert_eq!(scanned, compared);

        // A query vector may be packed too; the hits are those of the same floats.
        let first = plain.results[0].entity.as_ref().ok_or("no first title")?;
        let floats = first.vectors.get(&name).ok_or("no vector")?.values.clone();
        let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
        let by = |vector: Vector| {
            let mut client = client.clone();
            let name = name.clone();
            async move {
                let request = SearchRequest {
                    vector_name: name.clone(),
                    query: Some(Query::Vector(vector)),
                    limit: 5,
                    ..Default::default()
                };
                client.search(request).await.map(|r| {
                    r.into_inner()
                        .hits
                        .into_iter()
                        .map(|h| h.id)
                        .collect::<Vec<_>>()
                })
            }
        };
        let as_values = by(Vector {
            values: floats.clone(),
            packed: Vec::new(),
        })
        .await?;
        let as_packed = by(Vector {
            values: Vec::new(),
            packed: bytes.clone(),
        })
        .await?;
        assert_eq!(as_values, as_packed);
        assert_eq!(as_values.first(), Some(&first.id));
        // Half a float, or both forms at once: INVALID_ARGUMENT naming the field.
        for (vector, why) in [
            (
                Vector {
                    values: Vec::new(),
                    packed: bytes[..bytes.len() - 2].to_vec(),
                },
                "not a whole number of 4-byte floats",
            ),
            (
                Vector {
                    values: floats.clone(),
                    packed: bytes.clone(),
                },
                "give values or packed, not both",
            ),
        ] {
            let status = by(vector).await.err().ok_or("a bad vector was accepted")?;
            assert_eq!(status.code(), Code::InvalidArgument);
            assert!(
                status.message().starts_with("vector: ") && status.message().contains(why),
                "{}",
                status.message()
            );
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
