from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CollectionRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class AttributeDef(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class HnswConfig(_message.Message):
    __slots__ = ("m", "ef_construction", "ef", "window_tree_beta", "window_tree_leaf_rows", "term_graphs", "term_graph_min_rows", "window_tree_straddle_levels")
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    WINDOW_TREE_BETA_FIELD_NUMBER: _ClassVar[int]
    WINDOW_TREE_LEAF_ROWS_FIELD_NUMBER: _ClassVar[int]
    TERM_GRAPHS_FIELD_NUMBER: _ClassVar[int]
    TERM_GRAPH_MIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_TREE_STRADDLE_LEVELS_FIELD_NUMBER: _ClassVar[int]
    m: int
    ef_construction: int
    ef: int
    window_tree_beta: int
    window_tree_leaf_rows: int
    term_graphs: _containers.RepeatedScalarFieldContainer[str]
    term_graph_min_rows: int
    window_tree_straddle_levels: int
    def __init__(self, m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., ef: _Optional[int] = ..., window_tree_beta: _Optional[int] = ..., window_tree_leaf_rows: _Optional[int] = ..., term_graphs: _Optional[_Iterable[str]] = ..., term_graph_min_rows: _Optional[int] = ..., window_tree_straddle_levels: _Optional[int] = ...) -> None: ...

class QuantizationConfig(_message.Message):
    __slots__ = ("kind", "oversampling", "pq_m", "pq_nbits")
    KIND_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLING_FIELD_NUMBER: _ClassVar[int]
    PQ_M_FIELD_NUMBER: _ClassVar[int]
    PQ_NBITS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    oversampling: float
    pq_m: int
    pq_nbits: int
    def __init__(self, kind: _Optional[str] = ..., oversampling: _Optional[float] = ..., pq_m: _Optional[int] = ..., pq_nbits: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "attributes", "window", "hnsw", "quantization", "seal_rows", "max_segment_rows")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    SEAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEGMENT_ROWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    attributes: _containers.RepeatedCompositeFieldContainer[AttributeDef]
    window: str
    hnsw: HnswConfig
    quantization: QuantizationConfig
    seal_rows: int
    max_segment_rows: int
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[AttributeDef, _Mapping]]] = ..., window: _Optional[str] = ..., hnsw: _Optional[_Union[HnswConfig, _Mapping]] = ..., quantization: _Optional[_Union[QuantizationConfig, _Mapping]] = ..., seal_rows: _Optional[int] = ..., max_segment_rows: _Optional[int] = ...) -> None: ...

class SegmentInfo(_message.Message):
    __slots__ = ("name", "rows", "live_rows", "vector_bytes", "file_bytes", "sorted_by", "graph", "graph_bytes", "payload_bytes", "window_tree", "window_tree_bytes", "codes", "code_bytes", "term_graphs", "term_graph_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    LIVE_ROWS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SORTED_BY_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    GRAPH_BYTES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_TREE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_TREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    CODE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TERM_GRAPHS_FIELD_NUMBER: _ClassVar[int]
    TERM_GRAPH_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    rows: int
    live_rows: int
    vector_bytes: int
    file_bytes: int
    sorted_by: str
    graph: str
    graph_bytes: int
    payload_bytes: int
    window_tree: str
    window_tree_bytes: int
    codes: str
    code_bytes: int
    term_graphs: str
    term_graph_bytes: int
    def __init__(self, name: _Optional[str] = ..., rows: _Optional[int] = ..., live_rows: _Optional[int] = ..., vector_bytes: _Optional[int] = ..., file_bytes: _Optional[int] = ..., sorted_by: _Optional[str] = ..., graph: _Optional[str] = ..., graph_bytes: _Optional[int] = ..., payload_bytes: _Optional[int] = ..., window_tree: _Optional[str] = ..., window_tree_bytes: _Optional[int] = ..., codes: _Optional[str] = ..., code_bytes: _Optional[int] = ..., term_graphs: _Optional[str] = ..., term_graph_bytes: _Optional[int] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "dim", "metric", "attributes", "window", "hnsw", "quantization", "seal_rows", "rows", "segments", "max_segment_rows", "build_seconds")
    class BuildSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    SEAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEGMENT_ROWS_FIELD_NUMBER: _ClassVar[int]
    BUILD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    attributes: _containers.RepeatedCompositeFieldContainer[AttributeDef]
    window: str
    hnsw: HnswConfig
    quantization: QuantizationConfig
    seal_rows: int
    rows: int
    segments: _containers.RepeatedCompositeFieldContainer[SegmentInfo]
    max_segment_rows: int
    build_seconds: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[AttributeDef, _Mapping]]] = ..., window: _Optional[str] = ..., hnsw: _Optional[_Union[HnswConfig, _Mapping]] = ..., quantization: _Optional[_Union[QuantizationConfig, _Mapping]] = ..., seal_rows: _Optional[int] = ..., rows: _Optional[int] = ..., segments: _Optional[_Iterable[_Union[SegmentInfo, _Mapping]]] = ..., max_segment_rows: _Optional[int] = ..., build_seconds: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WaitForIndexesRequest(_message.Message):
    __slots__ = ("collection", "timeout_seconds")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    timeout_seconds: float
    def __init__(self, collection: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class WaitForIndexesResponse(_message.Message):
    __slots__ = ("ready",)
    READY_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    def __init__(self, ready: _Optional[bool] = ...) -> None: ...

class SealResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CompactResponse(_message.Message):
    __slots__ = ("segments_rewritten",)
    SEGMENTS_REWRITTEN_FIELD_NUMBER: _ClassVar[int]
    segments_rewritten: int
    def __init__(self, segments_rewritten: _Optional[int] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("counters",)
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    counters: _containers.ScalarMap[str, int]
    def __init__(self, counters: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("int_value", "float_value", "string_value", "bool_value")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    float_value: float
    string_value: str
    bool_value: bool
    def __init__(self, int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class FilterList(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    def __init__(self, filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...

class Comparison(_message.Message):
    __slots__ = ("field", "op", "value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    op: str
    value: Value
    def __init__(self, field: _Optional[str] = ..., op: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class BetweenPredicate(_message.Message):
    __slots__ = ("field", "low", "high")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    field: str
    low: Value
    high: Value
    def __init__(self, field: _Optional[str] = ..., low: _Optional[_Union[Value, _Mapping]] = ..., high: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class InPredicate(_message.Message):
    __slots__ = ("field", "values", "negated")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NEGATED_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedCompositeFieldContainer[Value]
    negated: bool
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ..., negated: _Optional[bool] = ...) -> None: ...

class ContainsPredicate(_message.Message):
    __slots__ = ("field", "mode", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    mode: str
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, field: _Optional[str] = ..., mode: _Optional[str] = ..., values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class NullPredicate(_message.Message):
    __slots__ = ("field", "negated")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    NEGATED_FIELD_NUMBER: _ClassVar[int]
    field: str
    negated: bool
    def __init__(self, field: _Optional[str] = ..., negated: _Optional[bool] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("text", "all_of", "any_of", "negation", "compare", "between", "in_list", "contains", "is_null")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ALL_OF_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    NEGATION_FIELD_NUMBER: _ClassVar[int]
    COMPARE_FIELD_NUMBER: _ClassVar[int]
    BETWEEN_FIELD_NUMBER: _ClassVar[int]
    IN_LIST_FIELD_NUMBER: _ClassVar[int]
    CONTAINS_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    text: str
    all_of: FilterList
    any_of: FilterList
    negation: Filter
    compare: Comparison
    between: BetweenPredicate
    in_list: InPredicate
    contains: ContainsPredicate
    is_null: NullPredicate
    def __init__(self, text: _Optional[str] = ..., all_of: _Optional[_Union[FilterList, _Mapping]] = ..., any_of: _Optional[_Union[FilterList, _Mapping]] = ..., negation: _Optional[_Union[Filter, _Mapping]] = ..., compare: _Optional[_Union[Comparison, _Mapping]] = ..., between: _Optional[_Union[BetweenPredicate, _Mapping]] = ..., in_list: _Optional[_Union[InPredicate, _Mapping]] = ..., contains: _Optional[_Union[ContainsPredicate, _Mapping]] = ..., is_null: _Optional[_Union[NullPredicate, _Mapping]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "arrow_ipc")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    collection: str
    arrow_ipc: bytes
    def __init__(self, collection: _Optional[str] = ..., arrow_ipc: _Optional[bytes] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted",)
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    def __init__(self, upserted: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: bytes
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[bytes] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: bytes
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[bytes] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("arrow_ipc",)
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    arrow_ipc: bytes
    def __init__(self, arrow_ipc: _Optional[bytes] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "queries", "dim", "k", "filter", "ef", "exact", "select", "explain", "oversampling", "no_rescore")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLING_FIELD_NUMBER: _ClassVar[int]
    NO_RESCORE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: bytes
    dim: int
    k: int
    filter: Filter
    ef: int
    exact: bool
    select: _containers.RepeatedScalarFieldContainer[str]
    explain: bool
    oversampling: float
    no_rescore: bool
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[bytes] = ..., dim: _Optional[int] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., ef: _Optional[int] = ..., exact: _Optional[bool] = ..., select: _Optional[_Iterable[str]] = ..., explain: _Optional[bool] = ..., oversampling: _Optional[float] = ..., no_rescore: _Optional[bool] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("collection", "queries", "dim", "k", "filters", "ef", "exact", "select", "oversampling", "no_rescore")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLING_FIELD_NUMBER: _ClassVar[int]
    NO_RESCORE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: bytes
    dim: int
    k: int
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    ef: int
    exact: bool
    select: _containers.RepeatedScalarFieldContainer[str]
    oversampling: float
    no_rescore: bool
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[bytes] = ..., dim: _Optional[int] = ..., k: _Optional[int] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., ef: _Optional[int] = ..., exact: _Optional[bool] = ..., select: _Optional[_Iterable[str]] = ..., oversampling: _Optional[float] = ..., no_rescore: _Optional[bool] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("num_queries", "k", "ids", "distances", "selected_arrow_ipc", "plan_json", "strategy")
    NUM_QUERIES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    DISTANCES_FIELD_NUMBER: _ClassVar[int]
    SELECTED_ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    num_queries: int
    k: int
    ids: bytes
    distances: bytes
    selected_arrow_ipc: bytes
    plan_json: str
    strategy: str
    def __init__(self, num_queries: _Optional[int] = ..., k: _Optional[int] = ..., ids: _Optional[bytes] = ..., distances: _Optional[bytes] = ..., selected_arrow_ipc: _Optional[bytes] = ..., plan_json: _Optional[str] = ..., strategy: _Optional[str] = ...) -> None: ...
