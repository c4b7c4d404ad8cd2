"""``Client``: the embedded API (``Database`` / ``Collection``) over gRPC."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pyarrow as pa

from client.errors import from_rpc_error
from vecstore.errors import InvalidArgument, Unavailable
from vecstore.rpc import convert
from vecstore.rpc import vecstore_pb2 as pb
from vecstore.types import CollectionSchema, SearchResult, check_oversampling, positive_int_option, wait_timeout

DEFAULT_MAX_MESSAGE_BYTES = 256 << 20
_RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0)


def _unary(channel: grpc.Channel, path: str, response_type: type) -> Callable:
    # _registered_method: what grpc's generated stubs pass; the call then skips a per-call method lookup
    return channel.unary_unary(
        path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString,
        _registered_method=True,
    )


class Client:
    """A connection to a vecstore server with the same surface as ``vecstore.Database``.

    ``tls``: None / False for plaintext, True for TLS with the system roots, or a path to a PEM root
    certificate. Only UNAVAILABLE is retried (with back-off); every other error raises the same
    exception class the embedded engine would.
    """

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        token: str | None = None,
        *,
        tls: bool | str | Path | None = None,
        timeout: float | None = 60.0,
        retries: int = len(_RETRY_DELAYS_S),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if tls:
            roots = None if tls is True else Path(tls).read_bytes()
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        methods = {
            "create": ("/vecstore.v1.Collections/Create", pb.CollectionInfo),
            "describe": ("/vecstore.v1.Collections/Describe", pb.CollectionInfo),
            "list": ("/vecstore.v1.Collections/List", pb.ListCollectionsResponse),
            "drop": ("/vecstore.v1.Collections/Drop", pb.DropCollectionResponse),
            "wait_for_indexes": ("/vecstore.v1.Collections/WaitForIndexes", pb.WaitForIndexesResponse),
            "seal": ("/vecstore.v1.Collections/Seal", pb.SealResponse),
            "compact": ("/vecstore.v1.Collections/Compact", pb.CompactResponse),
            "stats": ("/vecstore.v1.Collections/Stats", pb.StatsResponse),
            "upsert": ("/vecstore.v1.Points/Upsert", pb.UpsertResponse),
            "delete": ("/vecstore.v1.Points/Delete", pb.DeleteResponse),
            "get": ("/vecstore.v1.Points/Get", pb.GetResponse),
            "count": ("/vecstore.v1.Points/Count", pb.CountResponse),
            "search": ("/vecstore.v1.Points/Search", pb.SearchResponse),
            "search_batch": ("/vecstore.v1.Points/SearchBatch", pb.SearchResponse),
        }
        self._stubs = {name: _unary(self._channel, path, out) for name, (path, out) in methods.items()}

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """One RPC, retrying only UNAVAILABLE, with errors mapped back to vecstore classes."""
        stub = self._stubs[method]
        for attempt in range(self.retries + 1):
            try:
                return stub(request, timeout=self.timeout if timeout is None else timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
                if isinstance(error, Unavailable):
                    if attempt < self.retries:
                        time.sleep(_RETRY_DELAYS_S[min(attempt, len(_RETRY_DELAYS_S) - 1)])
                        continue
                    error = Unavailable(f"{error} (is a vecstore server running at {self.address}?)")
                raise error from None
        raise AssertionError("unreachable")

    # -- the Database surface ---------------------------------------------------------------
    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        attributes: Mapping[str, str] | None = None,
        *,
        window: str | None = None,
        hnsw: Mapping[str, Any] | None = None,
        quantization: Mapping[str, Any] | None = None,
        seal_rows: int | None = None,
        max_segment_rows: int | None = None,
    ) -> RemoteCollection:
        """Create a collection on the server (same arguments as ``Database.create_collection``).

        The definition is checked here as the embedded database checks it (a proto field cannot say
        "0" apart from "unset", so a bad value must not reach the wire), then again by the server.
        """
        CollectionSchema.validated(dim, metric, attributes, window, hnsw, quantization)
        options = {"seal_rows": seal_rows, "max_segment_rows": max_segment_rows}
        options = {key: positive_int_option(value, key) for key, value in options.items() if value is not None}
        request = pb.CreateCollectionRequest(
            name=name,
            dim=int(dim),
            metric=metric,
            attributes=[pb.AttributeDef(name=n, type=t) for n, t in (attributes or {}).items()],
            window=window or "",
            hnsw=convert.hnsw_to_proto(hnsw),
            quantization=pb.QuantizationConfig(**dict(quantization or {})),
            **options,
        )
        return RemoteCollection(self, self.call("create", request))

    def collection(self, name: str) -> RemoteCollection:
        return RemoteCollection(self, self.call("describe", pb.CollectionRef(name=name)))

    def list_collections(self) -> list[str]:
        return list(self.call("list", pb.ListCollectionsRequest()).names)

    def drop_collection(self, name: str) -> None:
        self.call("drop", pb.CollectionRef(name=name))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r})"


def _arrow_column(name: str, values: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    try:
        if type(values).__module__.startswith("pandas"):
            return pa.array(values, from_pandas=True)
        if isinstance(values, np.ndarray):
            return pa.array(values, from_pandas=values.dtype.kind == "f")
        return pa.array(list(values))
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidArgument(f"attribute {name!r} could not be read as an array: {exc}") from None


def _quantization_from_proto(config: pb.QuantizationConfig) -> dict[str, Any] | None:
    """The collection's quantization settings as given (fields left unset are absent)."""
    if not config.kind:
        return None
    out: dict[str, Any] = {"kind": config.kind}
    for key in ("oversampling", "pq_m", "pq_nbits"):
        if getattr(config, key):
            out[key] = getattr(config, key)
    return out


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise InvalidArgument(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _float_rows(values: Any, plural: str) -> np.ndarray:
    """float32 [n, dim] for packing; the server does the full validation (NaN, dim, norms)."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"{plural} must be a numeric array of shape [n, dim]: {exc}") from None
    if array.dtype == object or array.dtype.kind not in "fiu":
        raise InvalidArgument(f"{plural} must be numeric (float32), got dtype {array.dtype}")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] == 0:
        raise InvalidArgument(f"{plural} must have shape [dim] or [n, dim], got {array.shape}")
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(array, dtype=np.float32)


def _vectors_column(vectors: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(vectors, pa.Array | pa.ChunkedArray):
        return vectors
    array = _float_rows(vectors, "vectors")
    return pa.FixedSizeListArray.from_arrays(pa.array(array.ravel(), type=pa.float32()), array.shape[1])


class RemoteCollection:
    """A collection on a server, with the surface of ``vecstore.Collection``."""

    def __init__(self, client: Client, info: pb.CollectionInfo) -> None:
        self._client = client
        self.name = info.name
        self.dim = info.dim
        self.metric = info.metric

    def upsert(self, ids: Any, vectors: Any = None, attributes: Mapping[str, Any] | None = None) -> int:
        """Insert or replace rows; one call is one atomic, durable batch on the server."""
        if (
            vectors is None
            and attributes is None
            and (isinstance(ids, pa.Table) or type(ids).__module__.startswith("pandas"))
        ):
            table = ids if isinstance(ids, pa.Table) else pa.Table.from_pandas(ids, preserve_index=False)
        else:
            if vectors is None:
                raise InvalidArgument("upsert needs vectors: upsert(ids, vectors, attributes) or upsert(table)")
            columns = {
                "id": _arrow_column(
                    "id", np.atleast_1d(np.asarray(ids)) if not isinstance(ids, pa.Array | pa.ChunkedArray) else ids
                )
            }
            columns["vector"] = _vectors_column(vectors)
            for name, values in (attributes or {}).items():
                columns[name] = _arrow_column(name, values)
            lengths = {len(c) for c in columns.values()}
            if len(lengths) > 1:
                raise InvalidArgument(
                    f"ids, vectors and attributes have different lengths {sorted(lengths)}; pass one of each per row"
                )
            table = pa.table(columns)
        request = pb.UpsertRequest(collection=self.name, arrow_ipc=convert.table_to_ipc(table))
        return int(self._client.call("upsert", request).upserted)

    def delete(self, ids: Any) -> int:
        request = pb.DeleteRequest(collection=self.name, ids=convert.pack_ids(_int_ids(ids)))
        return int(self._client.call("delete", request).deleted)

    def get(self, ids: Any) -> pa.Table:
        request = pb.GetRequest(collection=self.name, ids=convert.pack_ids(_int_ids(ids)))
        return convert.table_from_ipc(self._client.call("get", request).arrow_ipc, "response")

    def count(self, filter: Any = None) -> int:
        request = pb.CountRequest(collection=self.name, filter=convert.filter_to_proto(filter))
        return int(self._client.call("count", request).count)

    def search(
        self,
        queries: Any,
        k: int = 10,
        filter: Any = None,
        *,
        ef: int | None = None,
        exact: bool = False,
        select: Sequence[str] | None = None,
        explain: bool = False,
        oversampling: float | None = None,
        rescore: bool = True,
    ) -> SearchResult:
        """Same arguments and result as ``Collection.search``."""
        array = _float_rows(queries, "queries")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < 2**32:
            raise InvalidArgument(f"k must be an integer, at least 1, got {k!r}")
        if ef is not None and (isinstance(ef, bool) or not isinstance(ef, int) or not 0 < ef < 2**32):
            raise InvalidArgument(f"ef must be a positive integer or None, got {ef!r}")
        common = {
            "collection": self.name,
            "queries": convert.pack_floats(array),
            "dim": array.shape[1],
            "k": int(k),
            "ef": ef or 0,
            "exact": _check_flag(exact, "exact"),
            "select": [select] if isinstance(select, str) else list(select or []),
            "oversampling": 0.0 if oversampling is None else check_oversampling(oversampling, "oversampling"),
            "no_rescore": not _check_flag(rescore, "rescore"),
        }
        if isinstance(filter, list | tuple):
            request = pb.SearchBatchRequest(filters=[convert.filter_to_proto(f) for f in filter], **common)
            response = self._client.call("search_batch", request)
        else:
            request = pb.SearchRequest(filter=convert.filter_to_proto(filter), explain=explain, **common)
            response = self._client.call("search", request)
        shape = (response.num_queries, response.k)
        ids = np.frombuffer(response.ids, dtype="<i8").reshape(shape).astype(np.int64)
        distances = np.frombuffer(response.distances, dtype="<f4").reshape(shape).astype(np.float32)
        selected = None
        if response.selected_arrow_ipc:
            table = convert.table_from_ipc(response.selected_arrow_ipc, "response")
            selected = {name: table.column(name) for name in table.column_names}
        elif common["select"]:
            selected = {}
        plan = convert.plan_from_json(response.plan_json) if explain else None
        return SearchResult(ids, distances, plan, selected, response.strategy or None)

    def seal(self) -> None:
        """Write the appendable rows out as a sealed segment now (same as ``Collection.seal``)."""
        self._client.call("seal", pb.CollectionRef(name=self.name))

    def compact(self) -> int:
        """Rewrite every sealed segment that has deleted rows; returns how many were rewritten."""
        return int(self._client.call("compact", pb.CollectionRef(name=self.name)).segments_rewritten)

    def stats(self) -> dict[str, int]:
        """The server's counters for this collection (same keys as ``Collection.stats``)."""
        return dict(self._client.call("stats", pb.CollectionRef(name=self.name)).counters)

    def wait_for_indexes(self, timeout: float | None = None) -> bool:
        """Block until every sealed segment that should have a graph has one (or ``timeout`` seconds pass)."""
        timeout = wait_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # at least one call, however short the timeout: "is it ready now?" is a fair question
            remaining = None if deadline is None else deadline - time.monotonic()
            step = WAIT_STEP_SECONDS if remaining is None else min(WAIT_STEP_SECONDS, max(remaining, MIN_WAIT_SECONDS))
            request = pb.WaitForIndexesRequest(collection=self.name, timeout_seconds=step)
            if self._client.call("wait_for_indexes", request, timeout=step + 30).ready:
                return True
            if self._any_failed():
                return False  # a failed build is not retried until the next seal; do not wait forever
            if remaining is not None and remaining <= step:
                return False

    def _any_failed(self) -> bool:
        return any(
            s["graph"].startswith("failed") or s["window_tree"].startswith("failed")
            for s in self.describe()["segments"]
        )

    def describe(self) -> dict[str, Any]:
        info = self._client.call("describe", pb.CollectionRef(name=self.name))
        segments = [
            {
                "segment": s.name,
                "rows": s.rows,
                "live_rows": s.live_rows,
                "vector_bytes": s.vector_bytes,
                "file_bytes": s.file_bytes,
                "sorted_by": s.sorted_by or None,
                "graph": s.graph,
                "graph_bytes": s.graph_bytes,
                "payload_bytes": s.payload_bytes,
                "window_tree": s.window_tree,
                "window_tree_bytes": s.window_tree_bytes,
                "codes": s.codes,
                "code_bytes": s.code_bytes,
                "term_graphs": s.term_graphs,
                "term_graph_bytes": s.term_graph_bytes,
            }
            for s in info.segments
        ]
        return {
            "name": info.name,
            "dim": info.dim,
            "metric": info.metric,
            "attributes": {a.name: a.type for a in info.attributes},
            "window": info.window or None,
            "seal_rows": info.seal_rows,
            "max_segment_rows": info.max_segment_rows,
            "hnsw": convert.hnsw_from_proto(info.hnsw),
            "quantization": _quantization_from_proto(info.quantization),
            "rows": info.rows,
            "segments": segments,
            "memory": {  # as the embedded describe() sums it
                "vector_bytes": sum(s["vector_bytes"] for s in segments),
                "graph_bytes": sum(s["graph_bytes"] for s in segments),
                "payload_bytes": sum(s["payload_bytes"] for s in segments),
                "window_tree_bytes": sum(s["window_tree_bytes"] for s in segments),
                "code_bytes": sum(s["code_bytes"] for s in segments),
                "term_graph_bytes": sum(s["term_graph_bytes"] for s in segments),
            },
            "build_seconds": dict(sorted(info.build_seconds.items())),
        }

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r}, dim={self.dim}, metric={self.metric!r})"


#: how long one WaitForIndexes call may block on the server
WAIT_STEP_SECONDS = 30.0
#: the shortest wait asked of the server (it refuses 0)
MIN_WAIT_SECONDS = 0.001


def _int_ids(ids: Any) -> np.ndarray:
    array = np.atleast_1d(np.asarray(ids.to_numpy() if hasattr(ids, "to_numpy") else ids))
    if array.size and array.dtype.kind not in "iu":
        raise InvalidArgument(
            f"ids must be integers (int64), got dtype {array.dtype}; convert them with np.asarray(ids, dtype=np.int64)"
        )
    if array.ndim != 1:
        raise InvalidArgument(f"ids must be a 1-D array of integers, got shape {array.shape}")
    return array.astype(np.int64)
