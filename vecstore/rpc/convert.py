"""Conversions between engine values and their wire form, shared by the server and the client."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from vecstore.errors import InvalidArgument
from vecstore.filters import And, Between, Compare, Contains, InList, IsNull, Node, Not, Or
from vecstore.rpc import vecstore_pb2 as pb

MAX_FILTER_DEPTH = 64  # protobuf itself refuses messages nested 100 deep

# ---- packed arrays --------------------------------------------------------------------------------


def pack_ids(ids: np.ndarray) -> bytes:
    return np.ascontiguousarray(ids, dtype="<i8").tobytes()


def unpack_ids(raw: bytes, what: str = "ids") -> np.ndarray:
    if len(raw) % 8:
        raise InvalidArgument(f"{what} must be little-endian int64 bytes; got {len(raw)} bytes, not a multiple of 8")
    return np.frombuffer(raw, dtype="<i8").astype(np.int64)


def pack_floats(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def unpack_matrix(raw: bytes, dim: int, what: str = "queries") -> np.ndarray:
    """float32 [n, dim] from row-major little-endian bytes, checking the byte length."""
    if dim <= 0:
        raise InvalidArgument(f"{what}: dim must be set to the vector dimension")
    if len(raw) == 0:
        raise InvalidArgument(f"{what} is empty; pass at least one vector of dim {dim}")
    if len(raw) % (4 * dim):
        raise InvalidArgument(
            f"{what}: {len(raw)} bytes is not a whole number of float32 vectors of dim {dim} ({4 * dim} bytes each)"
        )
    return np.frombuffer(raw, dtype="<f4").reshape(-1, dim).astype(np.float32)


# ---- Arrow IPC ------------------------------------------------------------------------------------


def table_to_ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def table_from_ipc(raw: bytes, what: str = "arrow_ipc") -> pa.Table:
    if not raw:
        raise InvalidArgument(f"{what} is empty; send one Arrow IPC stream holding 'id', 'vector' and attributes")
    try:
        return pa.ipc.open_stream(raw).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not a valid Arrow IPC stream: {exc}") from None


# ---- filters ---------------------------------------------------------------------------------------


def _value_to_proto(value: Any) -> pb.Value:
    if isinstance(value, bool):
        return pb.Value(bool_value=value)
    if isinstance(value, int):
        return pb.Value(int_value=value)
    if isinstance(value, float):
        return pb.Value(float_value=value)
    return pb.Value(string_value=str(value))


def _value_from_proto(value: pb.Value, where: str) -> Any:
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument(f"filter {where}: a value is missing; set one of int_value, float_value, string_value")
    return getattr(value, kind)


def filter_to_proto(spec: str | Node | None) -> pb.Filter:
    """A filter string or AST as a ``Filter`` message (None: an unset filter)."""
    if spec is None:
        return pb.Filter()
    if isinstance(spec, str):
        return pb.Filter(text=spec)
    if isinstance(spec, And):
        return pb.Filter(all_of=pb.FilterList(filters=[filter_to_proto(c) for c in spec.children]))
    if isinstance(spec, Or):
        return pb.Filter(any_of=pb.FilterList(filters=[filter_to_proto(c) for c in spec.children]))
    if isinstance(spec, Not):
        return pb.Filter(negation=filter_to_proto(spec.child))
    if isinstance(spec, Compare):
        return pb.Filter(compare=pb.Comparison(field=spec.field, op=spec.op, value=_value_to_proto(spec.value)))
    if isinstance(spec, Between):
        return pb.Filter(
            between=pb.BetweenPredicate(
                field=spec.field, low=_value_to_proto(spec.low), high=_value_to_proto(spec.high)
            )
        )
    if isinstance(spec, InList):
        values = [_value_to_proto(v) for v in spec.values]
        return pb.Filter(in_list=pb.InPredicate(field=spec.field, values=values, negated=spec.negated))
    if isinstance(spec, Contains):
        values = [_value_to_proto(v) for v in spec.values]
        return pb.Filter(contains=pb.ContainsPredicate(field=spec.field, mode=spec.mode, values=values))
    if isinstance(spec, IsNull):
        return pb.Filter(is_null=pb.NullPredicate(field=spec.field, negated=spec.negated))
    raise InvalidArgument(
        f"filter must be a string, a vecstore.field(...) expression or None, not {type(spec).__name__}"
    )


def filter_from_proto(message: pb.Filter, depth: int = 0) -> str | Node | None:
    """A ``Filter`` message back to the text or AST the engine takes; malformed trees are InvalidArgument."""
    if depth > MAX_FILTER_DEPTH:
        raise InvalidArgument(f"filter nests deeper than {MAX_FILTER_DEPTH} levels")
    kind = message.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "text":
        return message.text
    if kind in ("all_of", "any_of"):
        children = [filter_from_proto(f, depth + 1) for f in getattr(message, kind).filters]
        if not children or any(c is None or isinstance(c, str) for c in children):
            raise InvalidArgument(f"filter {kind} needs at least one child, each an AST node (not text, not unset)")
        return (And if kind == "all_of" else Or).of(*children)  # type: ignore[arg-type]
    if kind == "negation":
        child = filter_from_proto(message.negation, depth + 1)
        if child is None or isinstance(child, str):
            raise InvalidArgument("filter negation needs an AST node to negate")
        return Not(child)
    body = getattr(message, kind)
    if not body.field:
        raise InvalidArgument(f"filter {kind}: field is empty; name an attribute or 'id'")
    if kind == "compare":
        if body.op not in ("=", "!=", "<", "<=", ">", ">="):
            raise InvalidArgument(f"filter compare: unknown op {body.op!r}; use = != < <= > >=")
        return Compare(body.field, body.op, _value_from_proto(body.value, "compare"))
    if kind == "between":
        return Between(body.field, _value_from_proto(body.low, "between"), _value_from_proto(body.high, "between"))
    if kind == "in_list":
        if not body.values:
            raise InvalidArgument("filter in_list needs at least one value")
        return InList(body.field, tuple(_value_from_proto(v, "in_list") for v in body.values), body.negated)
    if kind == "contains":
        if body.mode not in ("one", "any", "all") or not body.values or (body.mode == "one" and len(body.values) != 1):
            raise InvalidArgument("filter contains: mode must be one (with one value), any or all (with values)")
        return Contains(body.field, body.mode, tuple(_value_from_proto(v, "contains") for v in body.values))
    return IsNull(body.field, body.negated)


# hnsw parameters: proto3 cannot tell 0 from "not given" in the first three (0 is never valid there);
# the window-tree ones carry presence, since window_tree_beta 0 means "no window tree"
_HNSW_PLAIN = ("m", "ef_construction", "ef")
_HNSW_PRESENT = ("window_tree_beta", "window_tree_leaf_rows", "term_graph_min_rows", "window_tree_straddle_levels")
_TERM_GRAPHS = "term_graphs"  # a list of attribute names; left out when not given


def hnsw_to_proto(hnsw: Mapping[str, Any] | None) -> pb.HnswConfig:
    """The hnsw parameters a collection was given, for the wire."""
    given = {k: v for k, v in (hnsw or {}).items() if k in (*_HNSW_PLAIN, *_HNSW_PRESENT, _TERM_GRAPHS)}
    return pb.HnswConfig(**given)


def hnsw_from_proto(config: pb.HnswConfig) -> dict[str, Any]:
    """The hnsw parameters as given, back from the wire (what was not given stays out)."""
    given: dict[str, Any] = {k: getattr(config, k) for k in _HNSW_PLAIN if getattr(config, k)}
    given.update({k: getattr(config, k) for k in _HNSW_PRESENT if config.HasField(k)})
    if config.term_graphs:
        given[_TERM_GRAPHS] = list(config.term_graphs)
    return given


def plan_to_json(plan: list[dict] | None) -> str:
    return json.dumps(plan) if plan is not None else ""


def plan_from_json(text: str) -> list[dict] | None:
    return json.loads(text) if text else None
