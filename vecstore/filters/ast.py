"""The filter AST, and the ``field(...)`` builder that produces it without strings.

Every node renders back to the filter language with ``str(node)``; parsing that text gives an
equal node (the round trip the tests check).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vecstore.errors import InvalidArgument

Value = int | float | str | bool

COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = frozenset({"and", "or", "not", "in", "between", "contains", "any", "all", "is", "null", "true", "false"})
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def render_value(value: Value) -> str:
    """A literal in filter syntax: true/false, numbers, or a single-quoted string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


def render_field(name: str) -> str:
    if _IDENT_RE.match(name) and name.lower() not in KEYWORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


def _render_list(values: tuple[Value, ...]) -> str:
    return "(" + ", ".join(render_value(v) for v in values) + ")"


class Node:
    """Base of every filter node; ``&``, ``|`` and ``~`` combine nodes."""

    def __getstate__(self) -> dict:
        # a pickled node leaves its kept hash behind: string hashes differ between processes
        return {name: value for name, value in self.__dict__.items() if name != "_hash"}

    def __and__(self, other: Node) -> Node:
        return And.of(self, _as_node(other))

    def __or__(self, other: Node) -> Node:
        return Or.of(self, _as_node(other))

    def __invert__(self) -> Node:
        return Not(self)

    def __bool__(self) -> bool:
        # `a < b < c` or `x and y` on nodes silently drops a part of the filter; refuse it.
        raise TypeError("filter nodes cannot be used as booleans; combine them with &, | and ~")

    def fields(self) -> set[str]:
        """Names of the fields the filter reads."""
        raise NotImplementedError


def filter_node(cls: type) -> type:
    """A frozen dataclass node that computes its hash once: the engine keys its caches (parsed filters,
    plans, kernel bounds) by node, several lookups a search, and a dataclass rehashes every field of
    the tree on each."""
    cls = dataclass(frozen=True, eq=True)(cls)
    fields_hash = cls.__hash__

    def __hash__(self: Node) -> int:
        kept = self.__dict__.get("_hash")
        if kept is None:
            kept = fields_hash(self)
            object.__setattr__(self, "_hash", kept)
        return kept

    cls.__hash__ = __hash__  # type: ignore[method-assign]
    return cls


def _as_node(value: object) -> Node:
    if not isinstance(value, Node):
        raise InvalidArgument(f"cannot combine a filter with {type(value).__name__}; use field(...) expressions")
    return value


@filter_node
class Compare(Node):
    field: str
    op: str
    value: Value

    def __str__(self) -> str:
        return f"{render_field(self.field)} {self.op} {render_value(self.value)}"

    def fields(self) -> set[str]:
        return {self.field}


@filter_node
class Between(Node):
    field: str
    low: Value
    high: Value

    def __str__(self) -> str:
        return f"{render_field(self.field)} between {render_value(self.low)} and {render_value(self.high)}"

    def fields(self) -> set[str]:
        return {self.field}


@filter_node
class InList(Node):
    field: str
    values: tuple[Value, ...]
    negated: bool = False

    def __str__(self) -> str:
        op = "not in" if self.negated else "in"
        return f"{render_field(self.field)} {op} {_render_list(self.values)}"

    def fields(self) -> set[str]:
        return {self.field}


@filter_node
class Contains(Node):
    """``mode`` is "one" (contains v), "any" (contains any (..)) or "all" (contains all (..))."""

    field: str
    mode: str
    values: tuple[Value, ...]

    def __str__(self) -> str:
        if self.mode == "one":
            return f"{render_field(self.field)} contains {render_value(self.values[0])}"
        return f"{render_field(self.field)} contains {self.mode} {_render_list(self.values)}"

    def fields(self) -> set[str]:
        return {self.field}


@filter_node
class IsNull(Node):
    field: str
    negated: bool = False

    def __str__(self) -> str:
        return f"{render_field(self.field)} is {'not ' if self.negated else ''}null"

    def fields(self) -> set[str]:
        return {self.field}


@filter_node
class And(Node):
    children: tuple[Node, ...]

    @staticmethod
    def of(*nodes: Node) -> Node:
        flat: list[Node] = []
        for node in nodes:
            flat.extend(node.children if isinstance(node, And) else (node,))
        return flat[0] if len(flat) == 1 else And(tuple(flat))

    def __str__(self) -> str:
        return " and ".join(_wrap(c, Or) for c in self.children)

    def fields(self) -> set[str]:
        return set().union(*(c.fields() for c in self.children))


@filter_node
class Or(Node):
    children: tuple[Node, ...]

    @staticmethod
    def of(*nodes: Node) -> Node:
        flat: list[Node] = []
        for node in nodes:
            flat.extend(node.children if isinstance(node, Or) else (node,))
        return flat[0] if len(flat) == 1 else Or(tuple(flat))

    def __str__(self) -> str:
        return " or ".join(str(c) for c in self.children)

    def fields(self) -> set[str]:
        return set().union(*(c.fields() for c in self.children))


@filter_node
class Not(Node):
    child: Node

    def __str__(self) -> str:
        return "not " + _wrap(self.child, And, Or)

    def fields(self) -> set[str]:
        return self.child.fields()


def _wrap(node: Node, *needs_parens: type) -> str:
    return f"({node})" if isinstance(node, needs_parens) else str(node)


# ---------------------------------------------------------------------------------------------
# The builder: vecstore.field("year") >= 2020
# ---------------------------------------------------------------------------------------------


def _literal(value: object) -> Value:
    """Normalise a Python value for the AST; datetimes become ISO strings."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if not math.isfinite(float(value)):
            raise InvalidArgument(f"filter values must be finite numbers, got {value!r}")
        return float(value)
    if isinstance(value, np.datetime64):
        return str(value.astype("datetime64[us]"))
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    raise InvalidArgument(
        f"unsupported filter value {value!r} of type {type(value).__name__}; use int, float, str, bool or a datetime"
    )


def _literals(values: Iterable[object]) -> tuple[Value, ...]:
    if isinstance(values, str | bytes):
        raise InvalidArgument("pass a list of values, not a single string")
    out = tuple(_literal(v) for v in values)
    if not out:
        raise InvalidArgument("a value list needs at least one value")
    return out


class FieldRef:
    """A field in a filter expression; comparisons and methods build AST nodes."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"field name must be a non-empty string, got {name!r}")
        self.name = name

    def __eq__(self, other: object) -> Node:  # type: ignore[override]
        return Compare(self.name, "=", _literal(other))

    def __ne__(self, other: object) -> Node:  # type: ignore[override]
        return Compare(self.name, "!=", _literal(other))

    def __lt__(self, other: object) -> Node:
        return Compare(self.name, "<", _literal(other))

    def __le__(self, other: object) -> Node:
        return Compare(self.name, "<=", _literal(other))

    def __gt__(self, other: object) -> Node:
        return Compare(self.name, ">", _literal(other))

    def __ge__(self, other: object) -> Node:
        return Compare(self.name, ">=", _literal(other))

    __hash__ = None  # type: ignore[assignment]

    def between(self, low: object, high: object) -> Node:
        return Between(self.name, _literal(low), _literal(high))

    def isin(self, values: Iterable[object]) -> Node:
        return InList(self.name, _literals(values))

    def not_in(self, values: Iterable[object]) -> Node:
        return InList(self.name, _literals(values), negated=True)

    def contains(self, value: object) -> Node:
        return Contains(self.name, "one", (_literal(value),))

    def contains_any(self, values: Iterable[object]) -> Node:
        return Contains(self.name, "any", _literals(values))

    def contains_all(self, values: Iterable[object]) -> Node:
        return Contains(self.name, "all", _literals(values))

    def is_null(self) -> Node:
        return IsNull(self.name)

    def is_not_null(self) -> Node:
        return IsNull(self.name, negated=True)

    def __repr__(self) -> str:
        return f"field({self.name!r})"


def field(name: str) -> FieldRef:
    """Start a filter expression on an attribute (or ``"id"``): ``field("year") >= 2020``."""
    return FieldRef(name)
