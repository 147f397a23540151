from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetSchemaRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSchemaResponse(_message.Message):
    __slots__ = ("version", "vectors", "fusion")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    vectors: _containers.RepeatedCompositeFieldContainer[VectorInfo]
    fusion: str
    def __init__(self, version: _Optional[int] = ..., vectors: _Optional[_Iterable[_Union[VectorInfo, _Mapping]]] = ..., fusion: _Optional[str] = ...) -> None: ...

class VectorInfo(_message.Message):
    __slots__ = ("name", "modality", "model", "dimension", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    modality: str
    model: str
    dimension: int
    kind: str
    def __init__(self, name: _Optional[str] = ..., modality: _Optional[str] = ..., model: _Optional[str] = ..., dimension: _Optional[int] = ..., kind: _Optional[str] = ...) -> None: ...

class WatchEntitiesRequest(_message.Message):
    __slots__ = ("after_seq", "page_size", "follow")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    page_size: int
    follow: bool
    def __init__(self, after_seq: _Optional[int] = ..., page_size: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class WatchEntitiesResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[EntityChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[EntityChange, _Mapping]]] = ...) -> None: ...

class EntityChange(_message.Message):
    __slots__ = ("seq", "id", "run", "what", "at_unix_ms")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    id: str
    run: str
    what: _containers.RepeatedScalarFieldContainer[str]
    at_unix_ms: int
    def __init__(self, seq: _Optional[int] = ..., id: _Optional[str] = ..., run: _Optional[str] = ..., what: _Optional[_Iterable[str]] = ..., at_unix_ms: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("vector_name", "vector", "entity_id", "text", "tokens", "filter", "limit", "offset", "with_vectors")
    VECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    vector_name: str
    vector: Vector
    entity_id: str
    text: str
    tokens: MultiVector
    filter: SearchFilter
    limit: int
    offset: int
    with_vectors: bool
    def __init__(self, vector_name: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., entity_id: _Optional[str] = ..., text: _Optional[str] = ..., tokens: _Optional[_Union[MultiVector, _Mapping]] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., with_vectors: _Optional[bool] = ...) -> None: ...

class SearchFilter(_message.Message):
    __slots__ = ("tags", "year_min", "year_max", "languages", "semantic_id_prefix")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    YEAR_MIN_FIELD_NUMBER: _ClassVar[int]
    YEAR_MAX_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[TagFilter]
    year_min: int
    year_max: int
    languages: _containers.RepeatedScalarFieldContainer[str]
    semantic_id_prefix: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tags: _Optional[_Iterable[_Union[TagFilter, _Mapping]]] = ..., year_min: _Optional[int] = ..., year_max: _Optional[int] = ..., languages: _Optional[_Iterable[str]] = ..., semantic_id_prefix: _Optional[_Iterable[int]] = ...) -> None: ...

class TagFilter(_message.Message):
    __slots__ = ("name", "value", "min_confidence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    min_confidence: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., min_confidence: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("id", "score", "vector", "tokens")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    vector: Vector
    tokens: MultiVector
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., tokens: _Optional[_Union[MultiVector, _Mapping]] = ...) -> None: ...

class ScanEntitiesRequest(_message.Message):
    __slots__ = ("cursor", "page_size", "vector_names", "min_tag_confidence", "skip_vectors", "packed_vectors")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_NAMES_FIELD_NUMBER: _ClassVar[int]
    MIN_TAG_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SKIP_VECTORS_FIELD_NUMBER: _ClassVar[int]
    PACKED_VECTORS_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    page_size: int
    vector_names: _containers.RepeatedScalarFieldContainer[str]
    min_tag_confidence: float
    skip_vectors: bool
    packed_vectors: bool
    def __init__(self, cursor: _Optional[str] = ..., page_size: _Optional[int] = ..., vector_names: _Optional[_Iterable[str]] = ..., min_tag_confidence: _Optional[float] = ..., skip_vectors: _Optional[bool] = ..., packed_vectors: _Optional[bool] = ...) -> None: ...

class ScanEntitiesResponse(_message.Message):
    __slots__ = ("entities", "next_cursor")
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    next_cursor: str
    def __init__(self, entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class LookupSemanticIdsRequest(_message.Message):
    __slots__ = ("queries", "limit_per_query")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_PER_QUERY_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[SemanticIdQuery]
    limit_per_query: int
    def __init__(self, queries: _Optional[_Iterable[_Union[SemanticIdQuery, _Mapping]]] = ..., limit_per_query: _Optional[int] = ...) -> None: ...

class SemanticIdQuery(_message.Message):
    __slots__ = ("codes",)
    CODES_FIELD_NUMBER: _ClassVar[int]
    codes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, codes: _Optional[_Iterable[int]] = ...) -> None: ...

class LookupSemanticIdsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SemanticIdMatches]
    def __init__(self, results: _Optional[_Iterable[_Union[SemanticIdMatches, _Mapping]]] = ...) -> None: ...

class SemanticIdMatches(_message.Message):
    __slots__ = ("matches",)
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[SemanticIdMatch]
    def __init__(self, matches: _Optional[_Iterable[_Union[SemanticIdMatch, _Mapping]]] = ...) -> None: ...

class SemanticIdMatch(_message.Message):
    __slots__ = ("id", "semantic_id", "codebook")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_ID_FIELD_NUMBER: _ClassVar[int]
    CODEBOOK_FIELD_NUMBER: _ClassVar[int]
    id: str
    semantic_id: _containers.RepeatedScalarFieldContainer[int]
    codebook: str
    def __init__(self, id: _Optional[str] = ..., semantic_id: _Optional[_Iterable[int]] = ..., codebook: _Optional[str] = ...) -> None: ...

class GetEntitiesRequest(_message.Message):
    __slots__ = ("ids", "vector_names", "min_tag_confidence", "packed_vectors")
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_NAMES_FIELD_NUMBER: _ClassVar[int]
    MIN_TAG_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PACKED_VECTORS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    vector_names: _containers.RepeatedScalarFieldContainer[str]
    min_tag_confidence: float
    packed_vectors: bool
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., vector_names: _Optional[_Iterable[str]] = ..., min_tag_confidence: _Optional[float] = ..., packed_vectors: _Optional[bool] = ...) -> None: ...

class GetEntitiesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EntityResult]
    def __init__(self, results: _Optional[_Iterable[_Union[EntityResult, _Mapping]]] = ...) -> None: ...

class EntityResult(_message.Message):
    __slots__ = ("id", "found", "entity")
    ID_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    found: bool
    entity: Entity
    def __init__(self, id: _Optional[str] = ..., found: _Optional[bool] = ..., entity: _Optional[_Union[Entity, _Mapping]] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("id", "name", "vectors", "tags", "year", "language", "semantic_id", "semantic_id_codebook", "multivectors", "outputs", "assets", "created_unix_ms", "updated_unix_ms")
    class VectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Vector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...
    class MultivectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MultiVector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MultiVector, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_ID_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_ID_CODEBOOK_FIELD_NUMBER: _ClassVar[int]
    MULTIVECTORS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    vectors: _containers.MessageMap[str, Vector]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    year: int
    language: str
    semantic_id: _containers.RepeatedScalarFieldContainer[int]
    semantic_id_codebook: str
    multivectors: _containers.MessageMap[str, MultiVector]
    outputs: _containers.RepeatedCompositeFieldContainer[Output]
    assets: _containers.RepeatedCompositeFieldContainer[AssetDigest]
    created_unix_ms: int
    updated_unix_ms: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., vectors: _Optional[_Mapping[str, Vector]] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., year: _Optional[int] = ..., language: _Optional[str] = ..., semantic_id: _Optional[_Iterable[int]] = ..., semantic_id_codebook: _Optional[str] = ..., multivectors: _Optional[_Mapping[str, MultiVector]] = ..., outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ..., assets: _Optional[_Iterable[_Union[AssetDigest, _Mapping]]] = ..., created_unix_ms: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ...) -> None: ...

class AssetDigest(_message.Message):
    __slots__ = ("kind", "uri", "sha256")
    KIND_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    kind: str
    uri: str
    sha256: str
    def __init__(self, kind: _Optional[str] = ..., uri: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class MultiVector(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[Vector]
    def __init__(self, tokens: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values", "packed")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    packed: bytes
    def __init__(self, values: _Optional[_Iterable[float]] = ..., packed: _Optional[bytes] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("name", "value", "confidence", "plugin", "plugin_version", "span", "evidence", "run", "models")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    confidence: float
    plugin: str
    plugin_version: str
    span: TimeSpan
    evidence: str
    run: str
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., confidence: _Optional[float] = ..., plugin: _Optional[str] = ..., plugin_version: _Optional[str] = ..., span: _Optional[_Union[TimeSpan, _Mapping]] = ..., evidence: _Optional[str] = ..., run: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("plugin", "version", "models", "run")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    version: str
    models: _containers.RepeatedScalarFieldContainer[str]
    run: str
    def __init__(self, plugin: _Optional[str] = ..., version: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., run: _Optional[str] = ...) -> None: ...

class TimeSpan(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ...) -> None: ...
