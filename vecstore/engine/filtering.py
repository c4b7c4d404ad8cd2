"""Filters answered from a segment's payload index: the exact matching rows without evaluating every
row, and cardinality bounds for the planner.

The reference evaluator (``vecstore.filters.evaluate``) defines what a filter means; this module must
agree with it row for row (the tests check random filters against it), including SQL's three-valued
logic: a predicate on a null value is unknown, ``not unknown`` stays unknown, and unknown rows never
match. So every sub-result carries its true rows and its unknown rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vecstore.filters import And, Between, Compare, Contains, InList, IsNull, Node, Not, Or
from vecstore.filters.bind import parse_timestamp
from vecstore.index.payload import NumericIndex, PayloadIndex, TermIndex

_MICROS_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}


@dataclass(frozen=True)
class Cardinality:
    """Bounds on how many rows of a segment (deleted ones included) a filter matches."""

    low: int
    expected: float
    high: int

    @property
    def exact(self) -> bool:
        return self.low == self.high

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "expected": round(self.expected, 1), "high": self.high}


@dataclass
class _Truth:
    true: np.ndarray  # bool [n]
    unknown: np.ndarray | None  # bool [n]; None when no row is unknown


def _literal(index: NumericIndex, value: object, field: str) -> float | int:
    """A filter literal in the units the index stores (timestamps as counts of the column's unit)."""
    if index.unit is not None:
        micros = parse_timestamp(value, field).astype(np.int64)  # type: ignore[arg-type]
        per_unit = _MICROS_PER_UNIT[index.unit]
        return int(micros) if per_unit == 1 else micros / per_unit
    if isinstance(value, bool):
        return int(value)
    return value  # type: ignore[return-value]


# -- spans: [start, stop) runs of an index's ``rows`` array -------------------------------------------


def _numeric_spans(node: Node, index: NumericIndex) -> list[tuple[int, int]]:
    """Spans of the rows where a Compare (other than !=), Between or InList on a numeric field is true."""
    field = node.field  # type: ignore[attr-defined]
    if isinstance(node, Between):
        return [index.span(_literal(index, node.low, field), True, _literal(index, node.high, field), True)]
    if isinstance(node, InList):
        values = {_literal(index, v, field) for v in node.values}
        return [index.span(v, True, v, True) for v in values]
    assert isinstance(node, Compare)
    v = _literal(index, node.value, field)
    if node.op in ("=", "!="):  # the caller complements !=
        return [index.span(v, True, v, True)]
    return [index.span(*_ORDERED_BOUNDS[node.op](v))]


def value_span(node: Node, index: NumericIndex) -> tuple[int, int] | None:
    """[start, stop) of the positions in ``index``'s value order that hold every row where ``node`` (a
    comparison other than !=, a between or an IN-list on the index's field) is true; None for another
    node. An IN-list gets the span from its least to its greatest value."""
    if (isinstance(node, Compare) and node.op == "!=") or (isinstance(node, InList) and node.negated):
        return None
    if not isinstance(node, Compare | Between | InList):
        return None
    spans = [span for span in _numeric_spans(node, index) if span[0] < span[1]]
    if not spans:
        return 0, 0
    return min(start for start, _ in spans), max(stop for _, stop in spans)


def range_positions(node: Node, payload: PayloadIndex) -> tuple[str, int, int] | None:
    """``(field, start, stop)`` when ``node`` is one comparison (other than !=) or between on a numeric
    field: its rows are exactly positions ``[start, stop)`` of the field's value order. Else None."""
    if not isinstance(node, Compare | Between):  # an IN-list's span also holds rows between its values
        return None
    index = payload.columns.get(node.field)
    if not isinstance(index, NumericIndex):
        return None
    span = value_span(node, index)  # None for !=
    return None if span is None else (node.field, *span)


#: ordered comparison -> (low, low inclusive, high, high inclusive) of the interval it keeps
_ORDERED_BOUNDS = {
    "<": lambda v: (None, True, v, False),
    "<=": lambda v: (None, True, v, True),
    ">": lambda v: (v, False, None, True),
    ">=": lambda v: (v, True, None, True),
}


def _term_spans(node: Node, index: TermIndex) -> list[tuple[int, int]]:
    """Spans of the rows where a Compare (other than !=), Between, InList or Contains-any is true."""
    if isinstance(node, Between):
        return [index.range_span(node.low, True, node.high, True)]  # type: ignore[arg-type]
    if isinstance(node, InList | Contains):
        return [index.term_span(v) for v in dict.fromkeys(node.values)]  # type: ignore[arg-type]
    assert isinstance(node, Compare)
    v = node.value
    if node.op in ("=", "!="):
        return [index.term_span(v)]  # type: ignore[arg-type]
    return [index.range_span(*_ORDERED_BOUNDS[node.op](v))]


def _spans(node: Node, index: NumericIndex | TermIndex) -> list[tuple[int, int]]:
    return _numeric_spans(node, index) if isinstance(index, NumericIndex) else _term_spans(node, index)


def _complemented(node: Node) -> bool:
    """True when the leaf's rows are everything non-null except its spans (!= and not in)."""
    return (isinstance(node, Compare) and node.op == "!=") or (isinstance(node, InList) and node.negated)


# -- evaluation ---------------------------------------------------------------------------------------


def _mask_of(rows: np.ndarray, spans: list[tuple[int, int]], n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for start, stop in spans:
        mask[rows[start:stop]] = True
    return mask


def _leaf(node: Node, payload: PayloadIndex) -> _Truth:
    n = payload.num_rows
    index = payload.columns[node.field]  # type: ignore[attr-defined]
    null = _mask_of(index.nulls, [(0, index.nulls.shape[0])], n) if index.nulls.shape[0] else None
    if isinstance(node, IsNull):
        nulls = null if null is not None else np.zeros(n, dtype=bool)
        return _Truth(~nulls if node.negated else nulls, None)
    if isinstance(node, Contains) and node.mode == "all":
        true = np.ones(n, dtype=bool)
        for span in _term_spans(node, index):  # type: ignore[arg-type]
            true &= _mask_of(index.rows, [span], n)
    else:
        true = _mask_of(index.rows, _spans(node, index), n)
        if _complemented(node):
            true = ~true if null is None else ~true & ~null
    return _Truth(true, null)


def _evaluate(node: Node, payload: PayloadIndex) -> _Truth:
    if isinstance(node, Not):
        child = _evaluate(node.child, payload)
        true = ~child.true if child.unknown is None else ~child.true & ~child.unknown
        return _Truth(true, child.unknown)
    if isinstance(node, And | Or):
        parts = [_evaluate(child, payload) for child in node.children]
        unknowns = [p.unknown for p in parts if p.unknown is not None]
        any_unknown = np.logical_or.reduce(unknowns) if unknowns else None
        if isinstance(node, And):
            true = np.logical_and.reduce([p.true for p in parts])
            if any_unknown is None:
                return _Truth(true, None)
            # unknown unless some child is known false
            some_false = np.logical_or.reduce([~p.true if p.unknown is None else ~p.true & ~p.unknown for p in parts])
            return _Truth(true, any_unknown & ~some_false)
        true = np.logical_or.reduce([p.true for p in parts])
        return _Truth(true, None if any_unknown is None else any_unknown & ~true)
    return _leaf(node, payload)


def _single_term(node: Node) -> bool:
    """Whether ``node`` is true exactly on the rows of one term (a range of terms is several lists,
    ascending within each but not across them)."""
    if isinstance(node, Compare):
        return node.op == "="
    if isinstance(node, InList):
        return not node.negated and len(set(node.values)) == 1
    return isinstance(node, Contains) and len(set(node.values)) == 1


def single_term(node: Node) -> tuple[str, object] | None:
    """``(field, term)`` when ``node`` holds exactly on the rows of one term (``=``, a one-value IN-list,
    a one-value contains); else None. Whether the field is a string or list column is the index's to say."""
    if not _single_term(node):
        return None
    value = node.value if isinstance(node, Compare) else node.values[0]  # type: ignore[attr-defined]
    return node.field, value  # type: ignore[attr-defined]


def single_term_rows(node: Node, payload: PayloadIndex) -> np.ndarray | None:
    """The ascending rows (deleted ones included) where ``node`` is true, when it holds exactly on the
    rows of one term of a string or list column: a slice of the index, nothing computed. Else None."""
    index = payload.columns.get(getattr(node, "field", None))  # type: ignore[arg-type]
    if not isinstance(index, TermIndex) or not _single_term(node):
        return None
    start, stop = _term_spans(node, index)[0]
    return index.rows[start:stop]


def matching_rows(node: Node, payload: PayloadIndex, live: np.ndarray | None) -> np.ndarray:
    """Ascending int64 offsets of the live rows where ``node`` is true, read from the payload index."""
    return matching(node, payload, live)[0]


def matching(node: Node, payload: PayloadIndex, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``matching_rows``, and the mask over the segment's rows it was read from (None when one term's
    list was read directly): a graph walk needs that mask, and building it again costs a scatter."""
    rows = single_term_rows(node, payload)
    if rows is not None:  # one term's rows: already ascending, no mask needed
        return np.asarray(rows if live is None else rows[live[rows]], dtype=np.int64), None
    true = _evaluate(node, payload).true
    if live is not None:
        true &= live
    return np.flatnonzero(true), true


# -- cardinality --------------------------------------------------------------------------------------


def _leaf_cardinality(node: Node, payload: PayloadIndex) -> Cardinality:
    n = payload.num_rows
    index = payload.columns[node.field]  # type: ignore[attr-defined]
    nulls = int(index.nulls.shape[0])
    if isinstance(node, IsNull):
        count = n - nulls if node.negated else nulls
        return Cardinality(count, count, count)
    lengths = [stop - start for start, stop in _spans(node, index)]
    if isinstance(index, TermIndex) and isinstance(node, Contains):
        # a row may hold several of the terms: exact only for one term
        if len(lengths) == 1:  # one distinct term: its list is the answer
            return Cardinality(lengths[0], lengths[0], lengths[0])
        if node.mode == "all":
            high = min(lengths)
            return Cardinality(0, min(_independent_and(lengths, n), high), high)
        return Cardinality(max(lengths), min(sum(lengths), n - nulls), min(sum(lengths), n - nulls))
    count = sum(lengths)  # distinct values of one field: disjoint row sets
    if _complemented(node):
        count = n - nulls - count
    return Cardinality(count, count, count)


def _independent_and(counts: list[float], n: int) -> float:
    return n * math.prod(c / n for c in counts) if n else 0.0


def cardinality(node: Node, payload: PayloadIndex) -> Cardinality:
    """Bounds on the rows matching ``node``: exact for one predicate, combined by rule for AND / OR /
    NOT (the expected value assumes the predicates independent)."""
    n = payload.num_rows
    if isinstance(node, And | Or):
        parts = [cardinality(child, payload) for child in node.children]
        if isinstance(node, And):
            low = max(0, sum(p.low for p in parts) - (len(parts) - 1) * n)
            high = min(p.high for p in parts)
            expected = _independent_and([p.expected for p in parts], n)
        else:
            low = max(p.low for p in parts)
            high = min(n, sum(p.high for p in parts))
            expected = n - _independent_and([n - p.expected for p in parts], n) if n else 0.0
        return Cardinality(low, min(max(expected, low), high), high)
    if isinstance(node, Not):
        child = cardinality(node.child, payload)
        # rows where the child is unknown match neither it nor its negation
        unknown = _null_rows_under(node.child, payload)
        low = max(0, n - child.high - unknown)
        high = n - child.low
        return Cardinality(low, min(max(n - child.expected - unknown, low), high), high)
    return _leaf_cardinality(node, payload)


def _null_rows_under(node: Node, payload: PayloadIndex) -> int:
    """An upper bound on the rows where ``node`` is unknown: the null rows of every field it reads."""
    if isinstance(node, Not):
        return _null_rows_under(node.child, payload)
    if isinstance(node, And | Or):
        return min(payload.num_rows, sum(_null_rows_under(c, payload) for c in node.children))
    if isinstance(node, IsNull):
        return 0
    return int(payload.columns[node.field].nulls.shape[0])  # type: ignore[attr-defined]
