"""Searching a segment through the range graphs of a numeric attribute (``vecstore.index.range_graphs``):
which run of the attribute's value order holds every row a filter allows, and what walking its graph
costs. Runs as a one-piece term-graph search (``term_search.run_term_option``).

A filter is answered by a range graph when it is a range on such an attribute (``<``, ``<=``, ``>``,
``>=``, ``=``, ``between``, an IN-list: the span from its least to its greatest value), or such a
range ANDed with anything else; of several ranges in an AND, the one held by the fewest rows.
"""

from __future__ import annotations

import numpy as np

from vecstore.engine.allowed import Allowed
from vecstore.engine.code_walks import CodeWalk
from vecstore.engine.filtering import value_span
from vecstore.engine.planner import RANGE_GRAPH, Option
from vecstore.engine.term_search import coded_once_ns, term_piece
from vecstore.engine.views import SegmentView
from vecstore.filters import And, Node
from vecstore.index.payload import NumericIndex
from vecstore.index.range_graphs import RangeRun


def holding_run(view: SegmentView, node: Node) -> RangeRun | None:
    """The fewest-row run of a range graph that holds every row ``node`` allows, or None."""
    terms = view.terms
    if terms is None or not terms.ranges or view.payload is None:
        return None
    runs = [terms.ranges[field].holder(*span) for field, span in _value_spans(view, node).items() if span[0] < span[1]]
    return min((run for run in runs if run is not None), key=lambda run: run.num_rows, default=None)


def _value_spans(view: SegmentView, node: Node) -> dict[str, tuple[int, int]]:
    """Per field with range graphs, the span of its value order holding every row ``node`` allows; the
    ranges an AND holds on one field intersected (``a > 70 and a <= 80``: one span)."""
    if isinstance(node, And):
        spans: dict[str, tuple[int, int]] = {}
        for child in node.children:
            for field, (start, stop) in _value_spans(view, child).items():
                low, high = spans.get(field, (start, stop))
                spans[field] = (max(low, start), max(max(low, start), min(high, stop)))
        return spans
    field = getattr(node, "field", None)
    if not isinstance(field, str) or field not in view.terms.ranges:  # type: ignore[union-attr]
        return {}
    index = view.payload.columns.get(field)  # type: ignore[union-attr]
    span = value_span(node, index) if isinstance(index, NumericIndex) else None
    return {} if span is None else {field: span}


def range_options(view: SegmentView, allowed: Allowed, node: Node | None, ef: int, m: int,
                  walk: CodeWalk | None = None) -> list[Option]:  # fmt: skip
    """The walk of the range graph holding the rows ``allowed`` (those of ``node``), masked to them and
    priced (over its nodes' codes with ``walk``); empty when no run holds them or scanning them costs
    less."""
    if node is None or allowed.count == 0:
        return []
    run = holding_run(view, node)
    if run is None:
        return []
    mask = run_node_mask(view, allowed, run)
    # the run holds every allowed row: the mask's count is the filter's, not summed again (15k rows a query)
    piece, cost = term_piece(run, run.rows, mask, ef, m, view.vectors.shape[1], allowed.count, walk)
    if piece.how == "scan":
        return []  # the plain scan of the same rows costs less
    why = "the {} holds every allowed row ({:.1%})" + ("" if walk is None else walk.describe())
    detail = ("terms", (piece,), False, walk)
    cost += coded_once_ns(walk, [piece])
    return [Option(RANGE_GRAPH, cost, why, (run.describe(), allowed.count / run.num_rows), detail)]


def run_node_mask(view: SegmentView, allowed: Allowed, run: RangeRun) -> np.ndarray:
    """The run's nodes that ``allowed`` holds. Rows found as positions of the run's value order (a range
    on its field) are a slice of its nodes, masked without touching the segment's rows."""
    positions = allowed.positions
    if positions is not None and positions[0] == run.field and run.start <= positions[1] <= positions[2] <= run.stop:
        mask = np.zeros(run.num_rows, dtype=np.bool_)
        mask[positions[1] - run.start : positions[2] - run.start] = True
        return mask if view.live is None else mask & view.live[run.rows]
    return allowed.mask(view.num_rows)[run.rows]
