"""Searching a segment through its term graphs (``vecstore.index.term_graphs``): which terms hold every
row a filter allows, what searching their graphs costs, and running that search.

A filter is answered by term graphs when some terms' rows hold all of its rows: an equality or IN-list
on a string column, ``contains`` / ``contains any`` on a list column (one of the values, for
``contains all``), or such a predicate ANDed with anything else (a window, a range, another term).
Each term is then one piece: its graph walked (unmasked when the filter allows all of the term's live
rows, else masked or two-hop over them), or its allowed rows scanned when that is cheaper or the term
has no graph (too few rows). The pieces' hits are merged by distance; a row holding several of the
terms (a list column) is reported once.

In a quantised collection whose codes are cheaper to compare than its float rows, the graphs are walked
over their nodes' codes (``vecstore.engine.code_walks``) and every walk's candidates rescored together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from vecstore.engine import planner
from vecstore.engine.allowed import Allowed
from vecstore.engine.code_walks import CodeWalk
from vecstore.engine.hits import Hits, found_hits, merge_hits, rescored, scan_rows
from vecstore.engine.planner import EXACT_CALL_NS, HNSW_TWO_HOP, TERM_GRAPH, Option, exact_cost, masked_graph_option
from vecstore.engine.views import SegmentView
from vecstore.filters import And, Compare, Contains, InList, Node
from vecstore.index.payload import TermIndex
from vecstore.index.range_graphs import RangeRun
from vecstore.index.term_graphs import TermGraph


@dataclass(frozen=True, slots=True)
class TermPiece:
    """One term's part of a search: ``rows`` are the term's segment rows (ascending; a range run's in
    value order), ``mask`` the allowed ones among them (None: all of them), ``how`` is "walk",
    "two_hop" or "scan"; a walk over the nodes' codes when ``coded``."""

    graph: TermGraph | RangeRun | None
    rows: np.ndarray
    mask: np.ndarray | None
    allowed: int
    how: str
    coded: bool = False

    def offsets(self) -> np.ndarray:
        rows = np.asarray(self.rows, dtype=np.int64)
        return rows if self.mask is None else rows[self.mask]


def _cover(node: Node, view: SegmentView) -> tuple[str, tuple[str, ...], bool] | None:
    """(field, terms, exact) when the rows of ``terms`` in ``field`` hold every row ``node`` allows, with
    ``exact`` True when they are exactly those rows (before deletes); else None. Of an AND's children,
    the one whose terms hold the fewest rows."""
    terms, payload = view.terms, view.payload
    if terms is None or payload is None:
        return None
    if isinstance(node, And):
        covers = [c for c in (_cover(child, view) for child in node.children) if c is not None]
        if not covers:
            return None
        field, values, _ = min(covers, key=lambda c: _rows_of(payload.columns[c[0]], c[1]))
        return field, values, False
    field = getattr(node, "field", None)
    if not isinstance(field, str) or not terms.has_field(field):
        return None
    if isinstance(node, Compare) and node.op == "=":
        values = (node.value,)
    elif isinstance(node, InList) and not node.negated:
        values = tuple(dict.fromkeys(node.values))
    elif isinstance(node, Contains) and node.mode == "all":  # every row holds each value: one suffices
        index = payload.columns[field]
        fewest = min(dict.fromkeys(node.values), key=lambda v: _rows_of(index, (v,)))
        return field, (fewest,), len(set(node.values)) == 1  # type: ignore[return-value]
    elif isinstance(node, Contains):
        values = tuple(dict.fromkeys(node.values))
    else:
        return None
    if not all(isinstance(v, str) for v in values):
        return None
    return field, values, True  # type: ignore[return-value]


def cover_lift(view: SegmentView, node: Node | None) -> float:
    """The largest ``TermGraph.lift`` among the terms whose rows hold every row ``node`` allows (1.0
    when there are none, or none has a graph): a union of clustered terms links to itself less than
    each of them does, yet a walk still has to reach each one's region."""
    cover = None if node is None else _cover(node, view)
    if cover is None:
        return 1.0
    field, values, _ = cover
    graphs = [view.terms.get(field, v) for v in values]  # type: ignore[union-attr]
    return max([g.lift for g in graphs if g is not None], default=1.0)


def _rows_of(index: object, values: tuple) -> int:
    if not isinstance(index, TermIndex):
        return 1 << 62
    return sum(stop - start for start, stop in (index.term_span(v) for v in values))


def term_piece(graph: TermGraph | RangeRun | None, rows: np.ndarray, mask: np.ndarray | None, ef: int, m: int,
               dim: int, allowed: int | None = None,
               walk: CodeWalk | None = None) -> tuple[TermPiece, float]:  # fmt: skip
    """The cheaper of walking a term's (or a range run's) graph and scanning its allowed rows, and its cost.
    ``allowed``: how many of ``mask`` are set, when the caller knows (a range run holds every allowed row).
    With ``walk`` the graph is priced as walked over codes, its candidates rescored (the rescoring call
    and the query's preparation are the option's, once: ``coded_once_ns``)."""
    if allowed is None:
        allowed = rows.shape[0] if mask is None else int(mask.sum())
    if mask is not None and allowed == rows.shape[0]:
        mask = None
    scan_ns = exact_cost(allowed, dim, scattered=True)  # a term's rows lie spread over the segment
    if graph is not None and allowed:
        if walk is None:
            option = masked_graph_option(allowed, graph.num_rows, ef, m, planner.float_distance_scale(dim))
            extra = 0.0
        else:
            walk_ef = max(ef, walk.count)
            option = masked_graph_option(allowed, graph.num_rows, walk_ef, m, walk.scale)
            extra = walk.rescoring_ns(dim, walk_ef)
        if option is not None and option[1] + extra < scan_ns:
            how = "two_hop" if option[0] == HNSW_TWO_HOP else "walk"
            return TermPiece(graph, rows, mask, allowed, how, walk is not None), option[1] + extra
    return TermPiece(graph, rows, mask, allowed, "scan"), scan_ns


def coded_once_ns(walk: CodeWalk | None, pieces: list[TermPiece]) -> float:
    """What an option whose pieces walk over codes pays once: preparing the query, and the call that
    rescores every walk's candidates."""
    return walk.query_ns + EXACT_CALL_NS if walk is not None and any(p.coded for p in pieces) else 0.0


def term_options(view: SegmentView, allowed: Allowed, node: Node | None, ef: int, m: int,
                 piece_ns: float = 0.0, walk: CodeWalk | None = None) -> list[Option]:  # fmt: skip
    """The term-graph search of the rows ``allowed`` (those of ``node``), priced; empty when no terms'
    rows hold them all, or none of those terms has a graph. ``piece_ns`` is added for every piece
    beyond the first (its call's work, for one query). With ``walk`` the graphs are walked over codes."""
    if node is None or view.terms is None or not len(view.terms) or allowed.count == 0:
        return []
    cover = _cover(node, view)
    if cover is None:
        return []
    field, values, exact = cover
    index = view.payload.columns[field]  # type: ignore[union-attr]
    dim = view.vectors.shape[1]
    live = view.live
    every = None if exact else allowed.mask(view.num_rows)
    pieces: list[TermPiece] = []
    cost, graphs = 0.0, 0
    for value in values:
        graph = view.terms.get(field, value)
        if graph is not None:
            rows = graph.rows
        else:
            start, stop = index.term_span(value)  # type: ignore[union-attr]
            rows = index.rows[start:stop]  # type: ignore[union-attr]
        if rows.shape[0] == 0:
            continue
        mask = every[rows] if every is not None else None if live is None else live[rows]
        piece, piece_ns = term_piece(graph, rows, mask, ef, m, dim, walk=walk)
        if piece.allowed == 0:
            continue
        pieces.append(piece)
        cost += piece_ns
        graphs += piece.how != "scan"
    if not graphs:
        return []  # every piece scanned: the plain scan of the same rows costs less
    cost += piece_ns * (len(pieces) - 1) + coded_once_ns(walk, pieces)
    why = "graphs of {} of {} terms of {} ({} rows allowed), the rest scanned"
    if walk is not None and any(p.coded for p in pieces):
        why += walk.describe()
    # a row of a list column may hold several of the terms, and be found in each of their graphs
    overlap = len(pieces) > 1 and pa.types.is_large_list(view.table.schema.field(field).type)
    detail = ("terms", tuple(pieces), overlap, walk)
    return [Option(TERM_GRAPH, cost, why, (graphs, len(pieces), field, allowed.count), detail)]


def run_term_option(view: SegmentView, index: int, option: Option, queries: np.ndarray, k: int, ef: int,
                    metric_code: int) -> Hits:  # fmt: skip
    """Run a term-graph option on one segment: each piece walked or scanned, the hits merged by
    distance with each row once. Walks over codes hand their candidates to one exact rescoring."""
    _, pieces, overlap, walk = option.detail
    nq = queries.shape[0]
    found: list[tuple[np.ndarray, np.ndarray]] = []  # per piece: segment offsets [q, k] (-1 padded), distances
    candidates: list[np.ndarray] = []  # per piece walked over codes: segment offsets [q, c] (-1 padded)
    code_queries = None
    for piece in pieces:
        if piece.how == "scan":
            hits = scan_rows(view, index, piece.offsets(), queries, k, metric_code)
            found.append((hits.offsets, hits.distances))
            continue
        graph = piece.graph
        assert graph is not None
        two_hop = piece.how == "two_hop"
        if piece.coded:
            codes = view.terms.node_codes(graph, view.codes)  # type: ignore[union-attr,arg-type]
            if code_queries is None:
                code_queries = codes.traversal_queries(queries)
            walk_ef = max(ef, walk.count)
            nodes, _ = graph.index.search_codes(codes.codes, code_queries, walk.candidates(walk_ef), walk_ef,
                                                piece.mask, two_hop, code_metric=codes.code_metric)  # fmt: skip
            candidates.append(np.where(nodes >= 0, graph.rows[np.maximum(nodes, 0)], -1))
            continue
        nodes, distances = graph.index.search_validated(queries, k, max(ef, k), piece.mask, two_hop=two_hop)
        found.append((np.where(nodes >= 0, graph.rows[np.maximum(nodes, 0)], -1), distances))
    if candidates:
        rows = np.concatenate(candidates, axis=1)
        if overlap and len(candidates) > 1:
            rows = _once_each(rows)
        hits = rescored(view, index, queries, rows, k, metric_code)
        found.append((hits.offsets, hits.distances))
    if nq == 1 and len(found) > 1:
        return _merged_one(view, index, found, k, overlap)
    hits = [found_hits(view, index, offsets, distances) for offsets, distances in found]
    if len(hits) == 1:
        return hits[0]
    if not overlap:
        return merge_hits(hits, nq, k)
    return _distinct(merge_hits(hits, nq, k * len(hits)), k)


def _once_each(rows: np.ndarray) -> np.ndarray:
    """Each query's candidate rows [q, c] with every row once (a row of several pieces' terms is found
    in each of their graphs), the repeats turned to -1 padding; the order does not matter."""
    rows = np.sort(rows, axis=1)
    repeated = np.zeros(rows.shape, dtype=bool)
    repeated[:, 1:] = rows[:, 1:] == rows[:, :-1]
    rows[repeated] = -1
    return rows


def _merged_one(view: SegmentView, index: int, found: list[tuple[np.ndarray, np.ndarray]], k: int,
                overlap: bool) -> Hits:  # fmt: skip
    """One query's pieces merged by (distance, id) on flat arrays (``merge_hits`` sorts [q, width]
    blocks, several times the cost for one query), each row once."""
    offsets = np.concatenate([o[0] for o, _ in found])
    distances = np.concatenate([d[0] for _, d in found])
    real = offsets >= 0
    offsets, distances = offsets[real], distances[real]
    ids = view.ids[offsets]
    order = np.lexsort((ids, distances))
    if overlap:  # a row found in two pieces has the same id: keep its first (closest) place
        _, first = np.unique(ids[order], return_index=True)
        order = order[np.sort(first)]
    order = order[:k]
    out_offsets = np.full((1, k), -1, dtype=np.int64)
    out_ids = np.full((1, k), -1, dtype=np.int64)
    out_distances = np.full((1, k), np.inf, dtype=np.float32)
    n = order.shape[0]
    out_offsets[0, :n], out_ids[0, :n], out_distances[0, :n] = offsets[order], ids[order], distances[order]
    source = np.where(out_offsets >= 0, index, -1)
    return Hits(source, out_ids, out_offsets, out_distances)


def _distinct(hits: Hits, k: int) -> Hits:
    """The first k hits of each query with every id once (a row in two pieces' terms is found twice)."""
    ids = hits.ids
    nq, width = ids.shape
    query_of = np.repeat(np.arange(nq), width)
    order = np.lexsort((np.tile(np.arange(width), nq), ids.ravel(), query_of))  # by query, id, rank
    sorted_ids = ids.ravel()[order]
    again = np.zeros(nq * width, dtype=bool)
    again[1:] = (sorted_ids[1:] == sorted_ids[:-1]) & (query_of[order][1:] == query_of[order][:-1])
    again[1:] &= sorted_ids[1:] >= 0
    repeated = np.empty_like(again)
    repeated[order] = again
    repeated = repeated.reshape(nq, width)
    if not repeated.any():
        return Hits(hits.view_index[:, :k], ids[:, :k], hits.offsets[:, :k], hits.distances[:, :k])
    keep = np.argsort(repeated, axis=1, kind="stable")[:, :k]  # first occurrences, in rank order
    dropped = np.take_along_axis(repeated, keep, axis=1)
    out = [np.take_along_axis(a, keep, axis=1) for a in (hits.view_index, ids, hits.offsets, hits.distances)]
    for a in out[:3]:
        a[dropped] = -1
    out[3][dropped] = np.inf
    return Hits(*out)
