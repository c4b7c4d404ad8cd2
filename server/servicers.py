"""Thin gRPC servicers: validate and decode the request, call the engine, encode the answer.

Every method runs inside :func:`_call`, which maps engine errors to status codes (never UNKNOWN),
honours deadlines, records metrics and writes one structured log line without tokens or vectors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from server.errors import abort, status_of
from server.metrics import Metrics
from vecstore import Database, errors
from vecstore.rpc import convert
from vecstore.rpc import vecstore_pb2 as pb

log = logging.getLogger("vecstore.server")

#: Longest a WaitForIndexes call blocks a server thread; clients loop for longer waits.
MAX_WAIT_SECONDS = 600.0

#: Methods that change data; a read-only token may call every other method.
WRITE_METHODS = frozenset(
    {
        "/vecstore.v1.Collections/Create",
        "/vecstore.v1.Collections/Drop",
        "/vecstore.v1.Points/Upsert",
        "/vecstore.v1.Points/Delete",
        "/vecstore.v1.Collections/Seal",
        "/vecstore.v1.Collections/Compact",
    }
)


class Undecodable:
    """Stands in for a request whose bytes are not a valid message (answered with INVALID_ARGUMENT)."""

    def __init__(self, type_name: str, error: str) -> None:
        self.type_name = type_name
        self.error = error


def safe_deserializer(message_type: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """grpc answers INTERNAL when a deserializer raises; decode here so the servicer can say what is wrong."""

    def decode(raw: bytes) -> Message | Undecodable:
        try:
            return message_type.FromString(raw)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return Undecodable(message_type.DESCRIPTOR.full_name, str(exc))

    return decode


def _collection_info(description: dict[str, Any]) -> pb.CollectionInfo:
    hnsw = description.get("hnsw") or {}
    quantization = description.get("quantization") or {}
    return pb.CollectionInfo(
        name=description["name"],
        dim=description["dim"],
        metric=description["metric"],
        attributes=[pb.AttributeDef(name=n, type=t) for n, t in description["attributes"].items()],
        window=description.get("window") or "",
        hnsw=convert.hnsw_to_proto(hnsw),
        quantization=pb.QuantizationConfig(
            **{k: v for k, v in quantization.items() if k in ("kind", "oversampling", "pq_m", "pq_nbits")}
        ),
        seal_rows=description["seal_rows"],
        max_segment_rows=description["max_segment_rows"],
        rows=description["rows"],
        build_seconds=description.get("build_seconds") or {},
        segments=[
            pb.SegmentInfo(
                name=s["segment"],
                rows=s["rows"],
                live_rows=s["live_rows"],
                vector_bytes=s["vector_bytes"],
                file_bytes=s.get("file_bytes", 0),
                sorted_by=s.get("sorted_by") or "",
                graph=s.get("graph", ""),
                graph_bytes=s.get("graph_bytes", 0),
                payload_bytes=s.get("payload_bytes", 0),
                window_tree=s.get("window_tree", ""),
                window_tree_bytes=s.get("window_tree_bytes", 0),
                codes=s.get("codes", ""),
                code_bytes=s.get("code_bytes", 0),
                term_graphs=s.get("term_graphs", ""),
                term_graph_bytes=s.get("term_graph_bytes", 0),
            )
            for s in description["segments"]
        ],
    )


def _search_response(result: Any, explain: bool) -> pb.SearchResponse:
    nq, k = result.ids.shape
    selected = b""
    if result.selected:
        import pyarrow as pa

        selected = convert.table_to_ipc(pa.table(result.selected))
    return pb.SearchResponse(
        num_queries=nq,
        k=k,
        ids=convert.pack_ids(result.ids),
        distances=convert.pack_floats(result.distances),
        selected_arrow_ipc=selected,
        plan_json=convert.plan_to_json(result.plan) if explain else "",
        strategy=result.strategy or "",
    )


class Service:
    """Both services (Collections and Points) over one open database."""

    def __init__(self, metrics: Metrics) -> None:
        self.db: Database | None = None  # set once the database is open; until then calls are UNAVAILABLE
        self.metrics = metrics

    # -- the wrapper ------------------------------------------------------------------------
    def call(self, method: str, handler: Callable[[Any], tuple[Message, dict]]) -> Callable:
        rpc = method.rsplit("/", 1)[-1]

        def behaviour(request: Any, context: grpc.ServicerContext) -> Message:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            fields: dict[str, Any] = {}
            try:
                if isinstance(request, Undecodable):
                    raise errors.InvalidArgument(
                        f"request body is not a valid {request.type_name} message ({request.error}); "
                        "send a serialized protobuf of that type"
                    )
                if self.db is None:
                    raise errors.Unavailable("the server is opening its database (or shutting down); retry shortly")
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    raise errors.DeadlineExceeded("the deadline expired before the server started; allow more time")
                response, fields = handler(request)
                return response
            except errors.VecstoreError as exc:
                code = status_of(exc)
                abort(context, exc)  # raises
            except Exception as exc:  # a bug: answer INTERNAL (never UNKNOWN) and log it
                code = grpc.StatusCode.INTERNAL
                log.exception("internal error", extra={"rpc": rpc})
                context.abort(code, f"internal error in {rpc}: {type(exc).__name__}; the server log has details")
            finally:
                elapsed = time.perf_counter() - started
                self.metrics.observe(rpc, code.name, elapsed, fields.get("plan"), fields.get("queries", 0))
                log.info("rpc", extra={"rpc": rpc, "code": code.name, "ms": round(elapsed * 1000, 3), **fields})
            raise AssertionError("unreachable: context.abort raises")

        return behaviour

    def _collection(self, name: str) -> Any:
        if not name:
            raise errors.InvalidArgument("collection is empty; name the collection")
        return self.db.collection(name)

    # -- Collections -------------------------------------------------------------------------
    def create(self, req: pb.CreateCollectionRequest) -> tuple[Message, dict]:
        attributes: dict[str, str] = {}
        for attribute in req.attributes:
            if attribute.name in attributes:
                raise errors.InvalidArgument(f"attribute {attribute.name!r} is declared twice")
            attributes[attribute.name] = attribute.type
        hnsw = convert.hnsw_from_proto(req.hnsw)
        quantization = None
        if req.quantization.kind:
            quantization = {"kind": req.quantization.kind}
            for key in ("oversampling", "pq_m", "pq_nbits"):
                if getattr(req.quantization, key):
                    quantization[key] = getattr(req.quantization, key)
        options = {name: int(getattr(req, name)) for name in ("seal_rows", "max_segment_rows") if getattr(req, name)}
        col = self.db.create_collection(
            req.name,
            dim=int(req.dim),
            metric=req.metric or "cosine",
            attributes=attributes,
            window=req.window or None,
            hnsw=hnsw,
            quantization=quantization,
            **options,
        )
        return _collection_info(col.describe()), {"collection": req.name}

    def describe(self, req: pb.CollectionRef) -> tuple[Message, dict]:
        return _collection_info(self._collection(req.name).describe()), {"collection": req.name}

    def wait_for_indexes(self, req: pb.WaitForIndexesRequest) -> tuple[Message, dict]:
        timeout = req.timeout_seconds
        if not 0 < timeout <= MAX_WAIT_SECONDS:
            raise errors.InvalidArgument(
                f"timeout_seconds must be in (0, {MAX_WAIT_SECONDS:.0f}], got {timeout}; call again to wait longer"
            )
        ready = self._collection(req.collection).wait_for_indexes(timeout)
        return pb.WaitForIndexesResponse(ready=ready), {"collection": req.collection}

    def seal(self, req: pb.CollectionRef) -> tuple[Message, dict]:
        self._collection(req.name).seal()
        return pb.SealResponse(), {"collection": req.name}

    def compact(self, req: pb.CollectionRef) -> tuple[Message, dict]:
        rewritten = self._collection(req.name).compact()
        return pb.CompactResponse(segments_rewritten=rewritten), {"collection": req.name}

    def stats(self, req: pb.CollectionRef) -> tuple[Message, dict]:
        return pb.StatsResponse(counters=self._collection(req.name).stats()), {"collection": req.name}

    def list(self, req: pb.ListCollectionsRequest) -> tuple[Message, dict]:
        return pb.ListCollectionsResponse(names=self.db.list_collections()), {}

    def drop(self, req: pb.CollectionRef) -> tuple[Message, dict]:
        if not req.name:
            raise errors.InvalidArgument("name is empty; name the collection to drop")
        self.db.drop_collection(req.name)
        return pb.DropCollectionResponse(), {"collection": req.name}

    # -- Points ------------------------------------------------------------------------------
    def upsert(self, req: pb.UpsertRequest) -> tuple[Message, dict]:
        col = self._collection(req.collection)
        table = convert.table_from_ipc(req.arrow_ipc)
        count = col.upsert(table)
        return pb.UpsertResponse(upserted=count), {"collection": req.collection, "rows": count}

    def delete(self, req: pb.DeleteRequest) -> tuple[Message, dict]:
        col = self._collection(req.collection)
        deleted = col.delete(convert.unpack_ids(req.ids))
        return pb.DeleteResponse(deleted=deleted), {"collection": req.collection, "rows": deleted}

    def get(self, req: pb.GetRequest) -> tuple[Message, dict]:
        col = self._collection(req.collection)
        table = col.get(convert.unpack_ids(req.ids))
        return pb.GetResponse(arrow_ipc=convert.table_to_ipc(table)), {"collection": req.collection}

    def count(self, req: pb.CountRequest) -> tuple[Message, dict]:
        col = self._collection(req.collection)
        count = col.count(convert.filter_from_proto(req.filter))
        return pb.CountResponse(count=count), {"collection": req.collection}

    def search(self, req: pb.SearchRequest) -> tuple[Message, dict]:
        return self._search(req, convert.filter_from_proto(req.filter), req.explain)

    def search_batch(self, req: pb.SearchBatchRequest) -> tuple[Message, dict]:
        filters = [convert.filter_from_proto(f) for f in req.filters]
        return self._search(req, filters, True)

    def _search(self, req: Any, filter_spec: Any, explain: bool) -> tuple[Message, dict]:
        col = self._collection(req.collection)
        queries = convert.unpack_matrix(req.queries, int(req.dim))
        result = col.search(
            queries,
            k=int(req.k),
            filter=filter_spec,
            ef=int(req.ef) or None,
            exact=req.exact,
            select=list(req.select) or None,
            explain=explain,
            oversampling=req.oversampling or None,
            rescore=not req.no_rescore,
        )
        plan = result.strategy or "none"
        fields = {"collection": req.collection, "queries": queries.shape[0], "k": int(req.k), "plan": plan}
        return _search_response(result, explain), fields

    def handlers(self) -> dict[str, Callable]:
        """Method path -> handler, for registration."""
        return {
            "/vecstore.v1.Collections/Create": self.create,
            "/vecstore.v1.Collections/Describe": self.describe,
            "/vecstore.v1.Collections/List": self.list,
            "/vecstore.v1.Collections/Drop": self.drop,
            "/vecstore.v1.Collections/WaitForIndexes": self.wait_for_indexes,
            "/vecstore.v1.Collections/Seal": self.seal,
            "/vecstore.v1.Collections/Compact": self.compact,
            "/vecstore.v1.Collections/Stats": self.stats,
            "/vecstore.v1.Points/Upsert": self.upsert,
            "/vecstore.v1.Points/Delete": self.delete,
            "/vecstore.v1.Points/Get": self.get,
            "/vecstore.v1.Points/Count": self.count,
            "/vecstore.v1.Points/Search": self.search,
            "/vecstore.v1.Points/SearchBatch": self.search_batch,
        }


def method_handlers(service: Service) -> list[tuple[str, dict[str, grpc.RpcMethodHandler]]]:
    """(service name, method name -> handler) for every method of the two services, with the safe
    deserializer and the wrapper; registered (not generic) handlers let grpc route without a Python lookup."""
    handlers = service.handlers()
    out = []
    for service_descriptor in pb.DESCRIPTOR.services_by_name.values():
        methods = {}
        for method in service_descriptor.methods:
            path = f"/{service_descriptor.full_name}/{method.name}"
            request_type = getattr(pb, method.input_type.name)
            response_type = getattr(pb, method.output_type.name)
            methods[method.name] = grpc.unary_unary_rpc_method_handler(
                service.call(path, handlers[path]),
                request_deserializer=safe_deserializer(request_type),
                response_serializer=response_type.SerializeToString,
            )
        out.append((service_descriptor.full_name, methods))
    return out
