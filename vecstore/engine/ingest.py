"""Turn what users pass to ``upsert`` into one Arrow table of the collection's schema, or say why not.

Accepted: ``(ids, vectors, attributes)`` with numpy arrays / lists / pyarrow arrays / pandas
Series, or one pyarrow Table / pandas DataFrame holding ``id``, ``vector`` and attribute columns.
Nothing is coerced silently across kinds: floats are not ids, numbers are not strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecstore.errors import InvalidArgument, ResourceExhausted
from vecstore.types import ATTRIBUTE_TYPES, CollectionSchema, parse_iso_datetime

FLOAT32_MAX = float(np.finfo(np.float32).max)

MAX_BATCH_BYTES = 1 << 31
_INT64_MAX = np.iinfo(np.int64).max


def _is_pandas(obj: object) -> bool:
    return type(obj).__module__.startswith("pandas")


def to_ids(ids: object) -> np.ndarray:
    """External ids: a 1-D array of non-negative int64 with no duplicates."""
    if isinstance(ids, pa.ChunkedArray | pa.Array):
        ids = ids.to_numpy(zero_copy_only=False)
    elif _is_pandas(ids):
        ids = ids.to_numpy()  # type: ignore[attr-defined]
    try:
        array = np.asarray(ids)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"ids must be a 1-D array of integers: {exc}") from None
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise InvalidArgument(f"ids must be a 1-D array of integers, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise InvalidArgument(
            f"ids must be integers (int64), got dtype {array.dtype}; convert them with np.asarray(ids, dtype=np.int64)"
        )
    if array.size and array.dtype.kind == "u" and int(array.max()) > _INT64_MAX:
        raise InvalidArgument("ids must fit in int64 (at most 9223372036854775807)")
    array = array.astype(np.int64, copy=False)
    if array.size and int(array.min()) < 0:
        raise InvalidArgument(f"ids must be >= 0 (-1 marks padding in results); got {int(array.min())}")
    return array


def check_unique(ids: np.ndarray) -> None:
    if ids.size < 2:
        return
    ordered = np.sort(ids)
    dup = ordered[1:][ordered[1:] == ordered[:-1]]
    if dup.size:
        raise InvalidArgument(
            f"duplicate id {int(dup[0])} in one batch ({dup.size} duplicates); each id may appear once per upsert"
        )


def squared_norm_accepted(sq: float, metric: str) -> bool:
    """Whether one vector with squared norm ``sq`` passes ``float_matrix`` without a closer look: finite
    within float32 (NaN, inf or an overflow anywhere makes it not), and non-zero under cosine. Summed
    in float32 an overflow shows as inf; summed in float64, as a value beyond float32's range."""
    return math.isfinite(sq) and sq <= FLOAT32_MAX and (sq > 0 or metric != "cosine")


def float_matrix(values: object, dim: int, metric: str, what: str) -> np.ndarray:
    """Validate vectors or queries: float32 [rows, dim], finite, finite squared norm, non-zero for cosine.

    A 1-D input of length ``dim`` is one row. ``what`` ("vector" / "query") names the culprit in errors.
    """
    plural = {"query": "queries"}.get(what, what + "s")
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"{plural} must be a numeric array of shape [n, {dim}]: {exc}") from None
    if array.dtype == object or array.dtype.kind not in "fiu":
        raise InvalidArgument(f"{plural} must be numeric (float32), got dtype {array.dtype}")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != dim:
        raise InvalidArgument(f"{plural} must have shape [{dim}] or [n, {dim}] (dim={dim}), got {np.shape(values)}")
    if array.dtype != np.float32 or not array.flags.c_contiguous:
        with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range becomes inf
            array = np.ascontiguousarray(array, dtype=np.float32)
    # one pass checks everything: NaN or inf anywhere, or a norm that overflows, makes the row's sum non-finite
    if array.shape[0] == 1:  # one query: plain floats are cheaper than array reductions
        norm = float(np.einsum("i,i", array[0], array[0]))  # einsum, unlike dot, does not warn on overflow
        if squared_norm_accepted(norm, metric):
            return array
    sq = np.einsum("ij,ij->i", array, array)
    finite = np.isfinite(sq)
    if not finite.all():
        finite_rows = np.isfinite(array).all(axis=1)
        if not finite_rows.all():
            bad = int(np.flatnonzero(~finite_rows)[0])
            raise InvalidArgument(f"{what} {bad} contains NaN or infinity (or a value too large for float32)")
        bad = int(np.flatnonzero(~finite)[0])
        raise InvalidArgument(f"{what} {bad} is too large: its squared norm overflows float32; scale it down")
    if metric == "cosine" and (sq == 0).any():
        bad = int(np.flatnonzero(sq == 0)[0])
        raise InvalidArgument(f"{what} {bad} is all zeros, which has no direction under the cosine metric")
    return array


def to_vectors(vectors: object, n: int, dim: int, metric: str) -> np.ndarray:
    """One validated float32 vector per id: [n, dim]."""
    if isinstance(vectors, pa.ChunkedArray):
        vectors = vectors.combine_chunks()
    if isinstance(vectors, pa.FixedSizeListArray | pa.ListArray | pa.LargeListArray):
        lengths = pc.list_value_length(vectors).to_numpy(zero_copy_only=False)
        if vectors.null_count:
            raise InvalidArgument("vectors must not be null")
        if len(lengths) and (lengths != dim).any():
            bad = int(np.flatnonzero(lengths != dim)[0])
            raise InvalidArgument(f"vector {bad} has {int(lengths[bad])} dimensions; the collection has dim={dim}")
        vectors = pc.list_flatten(vectors).to_numpy(zero_copy_only=False).reshape(-1, dim)
    elif _is_pandas(vectors):
        vectors = np.stack(list(vectors)) if len(vectors) else np.empty((0, dim))  # type: ignore[arg-type]
    if n == 0:
        return np.empty((0, dim), dtype=np.float32)
    array = float_matrix(vectors, dim, metric, "vector")
    if array.shape[0] != n:
        raise InvalidArgument(f"got {n} ids but {array.shape[0]} vectors; pass one vector per id")
    return array


def to_queries(queries: object, dim: int, metric: str, max_queries: int) -> np.ndarray:
    """Validated query vectors: [q, dim] float32, 1 <= q <= max_queries."""
    # the common single query, already float32: its squared norm checks it (NaN, inf or an overflow make
    # it non-finite; einsum does not warn), and float_matrix says what is wrong otherwise
    if (
        type(queries) is np.ndarray
        and queries.dtype == np.float32
        and queries.shape == (dim,)
        and queries.flags.c_contiguous
        and squared_norm_accepted(float(np.einsum("i,i", queries, queries)), metric)
    ):
        return queries.reshape(1, dim)
    array = float_matrix(queries, dim, metric, "query")
    if array.shape[0] == 0:
        raise InvalidArgument("queries is empty; pass at least one query vector")
    if array.shape[0] > max_queries:
        raise ResourceExhausted(f"{array.shape[0]} queries in one call; send at most {max_queries} per call")
    return array


def _to_arrow(name: str, values: object) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    try:
        if _is_pandas(values):
            return pa.array(values, from_pandas=True)
        if isinstance(values, np.ndarray):
            if values.ndim != 1:
                raise InvalidArgument(f"attribute {name!r} must be 1-D, got shape {values.shape}")
            return pa.array(values, from_pandas=values.dtype.kind == "f")
        return pa.array(list(values))  # type: ignore[call-overload]
    except InvalidArgument:
        raise
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidArgument(f"attribute {name!r} could not be read as an array: {exc}") from None


def _timestamps(name: str, array: pa.Array) -> pa.Array:
    t = array.type
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            array = pc.cast(array, pa.timestamp(t.unit, tz="UTC")).cast(pa.timestamp(t.unit))
        return pc.cast(array, pa.timestamp("us"))
    if pa.types.is_date(t):
        return pc.cast(pc.cast(array, pa.timestamp("s")), pa.timestamp("us"))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        out = []
        for text in array.to_pylist():
            try:
                out.append(None if text is None else parse_iso_datetime(text))
            except ValueError:
                raise InvalidArgument(
                    f"attribute {name!r}: {text!r} is not an ISO-8601 timestamp such as '2024-01-31T12:00:00'"
                ) from None
        return pa.array(out, type=pa.timestamp("us"))
    if pa.types.is_null(t):
        return pa.nulls(len(array), pa.timestamp("us"))
    raise InvalidArgument(
        f"attribute {name!r} is a timestamp; pass datetime64 values, datetimes or ISO strings, not {t} "
        "(for unix seconds use np.asarray(seconds, dtype='datetime64[s]'))"
    )


_KIND_CHECKS = {
    "int64": (pa.types.is_integer, "integers"),
    "float64": (lambda t: pa.types.is_floating(t) or pa.types.is_integer(t), "numbers"),
    "string": (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "strings"),
    "bool": (pa.types.is_boolean, "booleans (True/False)"),
}


def to_attribute(name: str, type_name: str, values: object, n: int) -> pa.Array:
    """One attribute column converted to its storage type; a kind mismatch is an error."""
    array = _to_arrow(name, values)
    if len(array) != n:
        raise InvalidArgument(f"attribute {name!r} has {len(array)} values for {n} rows; pass one value per row")
    target = ATTRIBUTE_TYPES[type_name]
    if type_name == "timestamp":
        return _timestamps(name, array)
    if pa.types.is_null(array.type):
        return pa.nulls(n, target)
    if type_name == "list<string>":
        t = array.type
        ok = (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and (
            pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type) or pa.types.is_null(t.value_type)
        )
        if not ok:
            raise InvalidArgument(f"attribute {name!r} is list<string>; pass lists of strings, got {t}")
        return pc.cast(array, target)
    check, wanted = _KIND_CHECKS[type_name]
    if not check(array.type):
        raise InvalidArgument(f"attribute {name!r} is {type_name}; pass {wanted}, got values of type {array.type}")
    if type_name == "float64":
        array = pc.cast(array, pa.float64())
        return pc.if_else(pc.is_nan(array), pa.scalar(None, pa.float64()), array)
    try:
        return pc.cast(array, target)
    except pa.ArrowInvalid as exc:
        raise InvalidArgument(f"attribute {name!r}: {exc}") from None


def to_table(schema: CollectionSchema, ids: object, vectors: object, attributes: Mapping[str, Any] | None) -> pa.Table:
    """Build the validated batch table (id, vector, attributes) for an upsert."""
    if vectors is None and attributes is None and (isinstance(ids, pa.Table) or _is_pandas(ids)):
        return _from_frame(schema, ids)
    if vectors is None:
        raise InvalidArgument("upsert needs vectors: upsert(ids, vectors, attributes) or upsert(table)")
    id_array = to_ids(ids)
    check_unique(id_array)
    n = id_array.shape[0]
    if n * schema.dim * 4 > MAX_BATCH_BYTES:
        raise ResourceExhausted(
            f"batch of {n} vectors is larger than {MAX_BATCH_BYTES >> 20} MiB; split it into smaller upserts"
        )
    vector_array = to_vectors(vectors, n, schema.dim, schema.metric)
    attributes = dict(attributes or {})
    unknown = [name for name in attributes if name not in schema.attributes]
    if unknown:
        raise InvalidArgument(
            f"unknown attribute {unknown[0]!r}; the collection declares {list(schema.attributes) or 'none'}"
        )
    columns: list[pa.Array] = [
        pa.array(id_array, type=pa.int64()),
        pa.FixedSizeListArray.from_arrays(pa.array(vector_array.ravel(), type=pa.float32()), schema.dim),
    ]
    for name, type_name in schema.attributes.items():
        if name in attributes:
            columns.append(to_attribute(name, type_name, attributes[name], n))
        else:
            columns.append(pa.nulls(n, ATTRIBUTE_TYPES[type_name]))
    return pa.Table.from_arrays(columns, schema=schema.arrow_schema())


def _from_frame(schema: CollectionSchema, frame: Any) -> pa.Table:
    if _is_pandas(frame):
        names = [str(c) for c in frame.columns]
        columns = {name: frame[name] for name in names}
    else:
        columns = {name: frame.column(name) for name in frame.column_names}
    for required in ("id", "vector"):
        if required not in columns:
            raise InvalidArgument(f"the table has no {required!r} column; it needs 'id', 'vector' and attributes")
    attributes = {k: v for k, v in columns.items() if k not in ("id", "vector")}
    return to_table(schema, columns["id"], columns["vector"], attributes)
