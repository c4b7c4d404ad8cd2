"""Check a filter AST against a collection's attribute types.

An unknown field or a value of the wrong type is an error here, before any row is read, so a typo
never turns into a silent empty result.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from vecstore.errors import InvalidArgument
from vecstore.filters.ast import And, Between, Compare, Contains, InList, IsNull, Node, Not, Or, Value
from vecstore.filters.parser import parse_filter
from vecstore.types import parse_iso_datetime

NUMERIC = ("int64", "float64")
ID_FIELD = "id"


def field_types(attributes: Mapping[str, str]) -> dict[str, str]:
    """The types a filter may refer to: the attributes plus the point ``id``."""
    return {ID_FIELD: "int64", **attributes}


def parse_timestamp(value: Value, field: str) -> np.datetime64:
    """ISO-8601 text -> datetime64[us]; a time zone suffix is converted to UTC."""
    if not isinstance(value, str):
        raise InvalidArgument(
            f"field {field!r} is a timestamp; compare it with an ISO date string such as '2024-01-31' "
            f"or '2024-01-31T12:00:00', not {value!r}"
        )
    try:
        return _timestamp(value)
    except ValueError:
        raise InvalidArgument(
            f"{value!r} is not a valid timestamp for field {field!r}; use ISO-8601 such as '2024-01-31T12:00:00'"
        ) from None


@lru_cache(maxsize=4096)
def _timestamp(value: str) -> np.datetime64:
    # cached: binding a filter checks its timestamps and a window search parses them again; parsing
    # costs more than the search of a small window
    return np.datetime64(parse_iso_datetime(value), "us")


def _example(field: str, op: str, value: str, high: str) -> str:
    """A well-formed use of ``op`` on ``field`` for error messages."""
    if op == "between":
        return f"{field} between {value} and {high}"
    return f"{field} in ({value}, {high})" if op == "in" else f"{field} {op} {value}"


def _check_value(field: str, type_name: str, value: Value, op: str) -> None:
    if type_name in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgument(
                f"field {field!r} is {type_name}; compare it with a number, e.g. {_example(field, op, '10', '20')} "
                f"(got {value!r})"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgument(f"filter value for {field!r} must be a finite number, got {value!r}")
    elif type_name == "timestamp":
        parse_timestamp(value, field)
    elif type_name in ("string", "list<string>"):
        if not isinstance(value, str):
            example = _example(field, op, "'a'", "'m'")
            raise InvalidArgument(f"field {field!r} holds strings; quote the value, e.g. {example} (got {value!r})")
    elif type_name == "bool" and not isinstance(value, bool):
        raise InvalidArgument(f"field {field!r} is bool; compare it with true or false (got {value!r})")


def _field_type(types: Mapping[str, str], field: str) -> str:
    if field in types:
        return types[field]
    close = difflib.get_close_matches(field, list(types), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    raise InvalidArgument(f"unknown field {field!r} in filter{hint} The collection's fields are: {', '.join(types)}")


def bind(node: Node, attributes: Mapping[str, str]) -> Node:
    """Validate ``node`` against the attribute types; returns it unchanged or raises InvalidArgument."""
    types = field_types(attributes)
    _bind(node, types)
    return node


def _bind(node: Node, types: Mapping[str, str]) -> None:
    if isinstance(node, And | Or):
        for child in node.children:
            _bind(child, types)
        return
    if isinstance(node, Not):
        _bind(node.child, types)
        return
    field = node.field  # type: ignore[attr-defined]
    type_name = _field_type(types, field)
    is_list = type_name == "list<string>"
    if isinstance(node, IsNull):
        return
    if isinstance(node, Contains):
        if not is_list:
            raise InvalidArgument(
                f"'contains' needs a list<string> field; {field!r} is {type_name} (use = or in instead)"
            )
        for value in node.values:
            _check_value(field, type_name, value, "contains")
        return
    if is_list:
        raise InvalidArgument(
            f"field {field!r} is a list<string>; use 'contains', 'contains any (..)' or 'contains all (..)'"
        )
    if isinstance(node, Compare):
        if type_name == "bool" and node.op not in ("=", "!="):
            raise InvalidArgument(f"field {field!r} is bool; only = and != apply to it")
        if type_name != "bool" and node.value is True:
            raise InvalidArgument(
                f"field {field!r} is {type_name}; only a bool field can stand alone as a condition "
                f"(write a comparison such as {field} = ...)"
            )
        _check_value(field, type_name, node.value, node.op)
    elif isinstance(node, Between):
        if type_name == "bool":
            raise InvalidArgument(f"'between' does not apply to the bool field {field!r}")
        _check_value(field, type_name, node.low, "between")
        _check_value(field, type_name, node.high, "between")
    elif isinstance(node, InList):
        for value in node.values:
            _check_value(field, type_name, value, "in")
    else:  # pragma: no cover - every node type is handled above
        raise InvalidArgument(f"unsupported filter node {type(node).__name__}")


def to_filter(spec: object, attributes: Mapping[str, str]) -> Node | None:
    """Accept None, a filter string or an AST node; return the bound AST (None keeps every row)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if not spec.strip():
            return None
        return bind(parse_filter(spec), attributes)
    if isinstance(spec, Node):
        return bind(spec, attributes)
    raise InvalidArgument(
        f"filter must be a string, a vecstore.field(...) expression or None, not {type(spec).__name__}"
    )
