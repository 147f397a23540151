//! `GetEntities` responses written from titles kept already encoded.
//!
//! The entity cache keeps each title it serves as its encoded `tessera.v1.Entity` message
//! ([`tessera_indexes::CachedReads::get_encoded`]), so a response is one block of bytes copied per
//! title instead of a message built field by field, with its strings and vectors copied into fresh
//! allocations, and then encoded (that building was most of the server's time, BENCHMARKS.md).
//! [`EncodedEntities`] is the response message written from those blocks: on the wire it is
//! exactly `tessera.v1.GetEntitiesResponse`, which clients decode with their generated code.
//! The server's generated trait answers `GetEntities` with it (host/build.rs).

use super::proto;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use tessera_indexes::Encoded;

/// `GetEntitiesResponse.results`.
const RESULTS: u32 = 1;
/// `EntityResult.id`, `.found` and `.entity`.
const ID: u32 = 1;
const FOUND: u32 = 2;
const ENTITY: u32 = 3;

/// One `tessera.v1.EntityResult`: the id asked for and, when the store holds the title, its
/// encoded `tessera.v1.Entity` (`found` is whether there is one).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedResult {
    /// The id asked for.
    pub id: String,
    /// The title, an encoded `tessera.v1.Entity`.
    pub entity: Option<Encoded>,
}

impl EncodedResult {
    fn encoded_len(&self) -> usize {
        // As prost writes a proto3 message: empty strings and false are left out.
        let id = if self.id.is_empty() {
            0
        } else {
            encoding::string::encoded_len(ID, &self.id)
        };
        let entity = self.entity.as_ref().map_or(0, |entity| {
            encoding::bool::encoded_len(FOUND, &true)
                + encoding::key_len(ENTITY)
                + encoding::encoded_len_varint(entity.len() as u64)
                + entity.len()
        });
        id + entity
    }

    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.id.is_empty() {
            encoding::string::encode(ID, &self.id, buf);
        }
        if let Some(entity) = &self.entity {
            encoding::bool::encode(FOUND, &true, buf);
            encoding::encode_key(ENTITY, WireType::LengthDelimited, buf);
            encoding::encode_varint(entity.len() as u64, buf);
            buf.put_slice(entity);
        }
    }
}

/// A `tessera.v1.GetEntitiesResponse` whose entities are already encoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedEntities {
    /// One per requested id, in request order.
    pub results: Vec<EncodedResult>,
}

impl Message for EncodedEntities {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for result in &self.results {
            encoding::encode_key(RESULTS, WireType::LengthDelimited, buf);
            encoding::encode_varint(result.encoded_len() as u64, buf);
            result.encode_raw(buf);
        }
    }

    /// Decoding is not on the server's path (it only writes this message), but the type is a
    /// whole message: a result is decoded as the generated `EntityResult` and its entity kept
    /// re-encoded. Not byte for byte: fields this version does not know are dropped, map entries
    /// may come out in another order, and `found` is whether there is an entity.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        if tag != RESULTS {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        let mut result = proto::EntityResult::default();
        encoding::message::merge(wire_type, &mut result, buf, ctx)?;
        self.results.push(EncodedResult {
            id: result.id,
            entity: result.entity.map(|e| e.encode_to_vec().into()),
        });
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.results
            .iter()
            .map(|result| {
                let len = result.encoded_len();
                encoding::key_len(RESULTS) + encoding::encoded_len_varint(len as u64) + len
            })
            .sum()
    }

    fn clear(&mut self) {
        self.results.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entity(id: &str, floats: usize) -> proto::Entity {
        proto::Entity {
            id: id.into(),
            name: format!("Title {id}"),
            vectors: HashMap::from([(
                "text/minilm".to_string(),
                proto::Vector {
                    values: Vec::new(),
                    packed: (0..floats * 4).map(|i| i as u8).collect(),
                },
            )]),
            year: 1999,
            ..Default::default()
        }
    }

    /// The generated response the encoded one stands for. Its literals name every field, so a
    /// field added to either message in the proto stops this compiling until [`EncodedEntities`]
    /// writes it too.
    fn generated(results: &[(&str, Option<proto::Entity>)]) -> proto::GetEntitiesResponse {
        proto::GetEntitiesResponse {
            results: results
                .iter()
                .map(|(id, entity)| proto::EntityResult {
                    id: id.to_string(),
                    found: entity.is_some(),
                    entity: entity.clone(),
                })
                .collect(),
        }
    }

    fn encoded(results: &[(&str, Option<proto::Entity>)]) -> EncodedEntities {
        EncodedEntities {
            results: results
                .iter()
                .map(|(id, entity)| EncodedResult {
                    id: id.to_string(),
                    entity: entity.as_ref().map(|e| e.encode_to_vec().into()),
                })
                .collect(),
        }
    }

    #[test]
    fn writes_the_same_bytes_as_the_generated_response() -> Result<(), prost::DecodeError> {
        let cases: [Vec<(&str, Option<proto::Entity>)>; 4] = [
            vec![],
            vec![("missing", None)],
            // 384 floats: lengths past one varint byte, at every level.
            vec![
                ("a", Some(entity("a", 384))),
                ("nope", None),
                ("b", Some(entity("b", 3))),
            ],
            // A found title whose message is empty, and an empty id.
            vec![("", Some(proto::Entity::default()))],
        ];
        for case in &cases {
            let ours = encoded(case);
            let theirs = generated(case);
            let bytes = ours.encode_to_vec();
            assert_eq!(bytes, theirs.encode_to_vec(), "{case:?}");
            assert_eq!(ours.encoded_len(), bytes.len());
            assert_eq!(proto::GetEntitiesResponse::decode(&bytes[..])?, theirs);
            // And back.
            assert_eq!(EncodedEntities::decode(&bytes[..])?, ours);
        }
        Ok(())
    }

    #[test]
    fn decoding_skips_unknown_fields_and_refuses_broken_input() {
        let case = [("a", Some(entity("a", 2)))];
        let mut bytes = encoded(&case).encode_to_vec();
        // Field 9, varint 5: from a newer peer.
        bytes.extend([9 << 3, 5]);
        assert_eq!(
            EncodedEntities::decode(&bytes[..]).ok(),
            Some(encoded(&case))
        );
        let cut = &bytes[..bytes.len() - 6];
        assert!(EncodedEntities::decode(cut).is_err());
    }
}
