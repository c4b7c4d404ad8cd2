"""The reference evaluator: a bound filter AST over Arrow columns -> numpy bool mask.

This module defines what a filter means; every faster path (payload indexes, sorted windows) must
agree with it. Semantics are SQL's three-valued logic: a comparison against a null value is
unknown, ``not unknown`` is unknown, and rows whose result is unknown do not match.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecstore.errors import InvalidArgument
from vecstore.filters.ast import And, Between, Compare, Contains, InList, IsNull, Node, Not, Or, Value
from vecstore.filters.bind import parse_timestamp

Column = pa.Array | pa.ChunkedArray

_COMPARE = {
    "=": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


def _scalar(column: Column, value: Value, field: str) -> pa.Scalar:
    """A literal as an Arrow scalar comparable with ``column``."""
    t = column.type
    if pa.types.is_timestamp(t):
        return pa.scalar(parse_timestamp(value, field), type=t)
    if pa.types.is_integer(t) and isinstance(value, float):
        return pa.scalar(value, type=pa.float64())
    if pa.types.is_floating(t):
        return pa.scalar(float(value), type=pa.float64())
    return pa.scalar(value, type=t)


def _value_set(column: Column, values: tuple[Value, ...], field: str) -> pa.Array:
    t = column.type
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        t = t.value_type
    if pa.types.is_timestamp(t):
        return pa.array([parse_timestamp(v, field) for v in values], type=t)
    if pa.types.is_integer(t) and any(isinstance(v, float) for v in values):
        # 2.5 can never equal an integer; keep the integral values only.
        ints = [int(v) for v in values if float(v).is_integer()]
        return pa.array(ints, type=t)
    if pa.types.is_floating(t):
        return pa.array([float(v) for v in values], type=t)
    return pa.array(list(values), type=t)


def _null_where_input_null(column: Column, result: Column) -> Column:
    if column.null_count == 0:
        return result
    return pc.if_else(pc.is_null(column), pa.scalar(None, pa.bool_()), result)


def _contains(column: Column, mode: str, values: tuple[Value, ...], field: str) -> pa.Array:
    """Per row: does the list hold the value / any of them / all of them? Null lists give null."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    flat = pc.list_flatten(array)
    parents = np.asarray(pc.list_parent_indices(array))
    value_set = _value_set(array, values, field)
    if mode == "all":
        result = np.ones(n, dtype=bool)
        for value in value_set:
            hit = np.asarray(pc.equal(flat, value).fill_null(False), dtype=bool)
            result &= np.bincount(parents[hit], minlength=n) > 0
    else:
        hit = np.asarray(pc.is_in(flat, value_set=value_set).fill_null(False), dtype=bool)
        result = np.bincount(parents[hit], minlength=n) > 0
    return _null_where_input_null(array, pa.array(result))


def _eval(node: Node, columns: Mapping[str, Column]) -> Column:
    if isinstance(node, And):
        out = _eval(node.children[0], columns)
        for child in node.children[1:]:
            out = pc.and_kleene(out, _eval(child, columns))
        return out
    if isinstance(node, Or):
        out = _eval(node.children[0], columns)
        for child in node.children[1:]:
            out = pc.or_kleene(out, _eval(child, columns))
        return out
    if isinstance(node, Not):
        return pc.invert(_eval(node.child, columns))
    field = node.field  # type: ignore[attr-defined]
    if field not in columns:
        raise InvalidArgument(f"unknown field {field!r} in filter")
    column = columns[field]
    if isinstance(node, Compare):
        return _COMPARE[node.op](column, _scalar(column, node.value, field))
    if isinstance(node, Between):
        low = pc.greater_equal(column, _scalar(column, node.low, field))
        return pc.and_kleene(low, pc.less_equal(column, _scalar(column, node.high, field)))
    if isinstance(node, InList):
        hit = pc.is_in(column, value_set=_value_set(column, node.values, field))
        result = _null_where_input_null(column, hit)
        return pc.invert(result) if node.negated else result
    if isinstance(node, Contains):
        return _contains(column, node.mode, node.values, field)
    if isinstance(node, IsNull):
        return pc.is_valid(column) if node.negated else pc.is_null(column)
    raise InvalidArgument(f"unsupported filter node {type(node).__name__}")  # pragma: no cover


def evaluate(node: Node | None, columns: Mapping[str, Column], num_rows: int) -> np.ndarray:
    """Rows of ``columns`` that satisfy ``node`` as a bool array (None matches every row)."""
    if node is None:
        return np.ones(num_rows, dtype=bool)
    result = _eval(node, columns)
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks() if result.num_chunks != 1 else result.chunk(0)
    mask = result.fill_null(False).to_numpy(zero_copy_only=False)
    return np.asarray(mask, dtype=bool)
