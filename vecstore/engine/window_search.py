"""Searching a sorted segment through its window tree: pricing the tree's strategies for the rows a
filter allows, and running the chosen one (see ``vecstore.index.window_tree`` and the planner).

In a quantised collection whose codes are cheaper to compare than its float rows (high dimensions),
the bucket graphs are walked over the segment's codes instead (``vecstore.engine.code_walks``; a
bucket's codes are a slice of the segment's, as its rows are): each bucket search yields
``k x oversampling`` candidates, and all of them are rescored exactly together.
"""

from __future__ import annotations

import numpy as np

from vecstore.engine import planner
from vecstore.engine.allowed import Allowed
from vecstore.engine.code_walks import CodeWalk
from vecstore.engine.hits import Hits, found_hits, merge_hits, rescored, scan_rows
from vecstore.engine.planner import (
    EXACT_CALL_NS,
    HNSW_TWO_HOP,
    WINDOW_COVER,
    WINDOW_POSTFILTER,
    WINDOW_THREE_SPLIT,
    Option,
    exact_cost,
    masked_graph_option,
    unfiltered_graph_cost,
)
from vecstore.engine.views import SegmentView
from vecstore.index.window_tree import Bucket, bucket_bounds


def _part_option(allowed: int, rows: int, has_graph: bool, ef: int, m: int, dim: int,
                 walk: CodeWalk | None = None) -> tuple[float, bool | None]:  # fmt: skip
    """Cost of the part of a window inside a bucket of ``rows`` rows: (cost, two_hop) through its graph,
    or (cost, None) scanned exactly, whichever is cheaper."""
    graph = masked_graph_option(allowed, rows, ef, m, _scale(walk, dim)) if has_graph else None
    extra = 0.0 if walk is None else walk.rescoring_ns(dim, max(ef, walk.count))
    if graph is not None and graph[1] + extra < exact_cost(allowed, dim):
        return graph[1] + extra, graph[0] == HNSW_TWO_HOP
    return exact_cost(allowed, dim), None


def _scale(walk: CodeWalk | None, dim: int) -> float:
    return planner.float_distance_scale(dim) if walk is None else walk.scale


def tree_options(
    view: SegmentView,
    allowed: Allowed,
    ef: int,
    m: int,
    prune: bool = True,
    walk: CodeWalk | None = None,
    split_ns: float = 0.0,
) -> list[Option]:
    """The window tree's ways to search ``allowed``, priced. Postfiltering applies to any filter whose
    rows lie close together in window order; cover and three-split to windows (a slice of that order).
    With ``walk`` the bucket graphs are priced as walked over codes, candidates rescored. ``split_ns``
    is added to options of several pieces (cover, three-split): their Python work for one query.

    Runs for every query on a sorted segment, so it prices with integers only; the buckets are built
    when an option is run. ``prune=False`` prices every option, even those that cannot win.
    """
    tree = view.tree
    count = allowed.count
    dim = view.vectors.shape[1]
    scale = _scale(walk, dim)
    if walk is not None:
        ef = max(ef, walk.count)
    # per bucket search: rescoring its candidates; per option: preparing the query and one rescoring call
    piece = 0.0 if walk is None else walk.rescoring_ns(dim, ef)
    once = 0.0 if walk is None else walk.query_ns + EXACT_CALL_NS
    how = "" if walk is None else walk.describe()
    if tree is None or count == 0 or (prune and exact_cost(count, dim) <= unfiltered_graph_cost(ef, m, scale=scale)):
        return []  # nothing to gain: a scan of these rows beats any graph search
    lo, hi = allowed.bounds
    options: list[Option] = []
    n, beta = tree.n, tree.beta
    level, number, held_at, held_number, straddle, held_rows = tree.holders(lo, hi)
    if held_at > 0:  # the root itself is priced by the planner as the segment graph
        graph = masked_graph_option(count, held_rows, ef, m, scale)
        if graph is not None:
            why = "a level-{} {} of {} rows holds every allowed row ({:.1%})" + how
            args = (held_at, "straddle bucket" if straddle else "bucket", held_rows, count / held_rows)
            detail = ("postfilter", held_at, held_number, graph[0] == HNSW_TWO_HOP, straddle)
            options.append(Option(WINDOW_POSTFILTER, graph[1] + piece + once, why, args, detail))
    # cover and three-split search at least two pieces, one an unfiltered graph search, and pay
    # ``split_ns``: skip pricing them when an option at hand is already cheaper than that floor
    at_hand = min([exact_cost(count, dim)] + [o.cost_ns for o in options])
    root = masked_graph_option(count, view.num_rows, ef, m, scale)
    if root is not None:
        at_hand = min(at_hand, root[1])
    if allowed.found_by != "window_slice" or (
        prune and at_hand <= unfiltered_graph_cost(ef, m, scale=scale) + EXACT_CALL_NS + split_ns
    ):
        return options
    live_fraction = view.live_count / max(view.num_rows, 1)
    unfiltered = unfiltered_graph_cost(ef, m, live_fraction, scale) + piece
    buckets, ranges, ragged = tree.cover_size(lo, hi)
    if buckets > 1 or (buckets and ranges):
        cost = buckets * unfiltered + ranges * EXACT_CALL_NS + exact_cost(ragged, dim) - EXACT_CALL_NS + once + split_ns
        why = "{} buckets inside the window and {} rows at its ends" + how
        options.append(Option(WINDOW_COVER, cost, why, (buckets, ragged), ("cover", lo, hi)))
    if level < tree.depth:
        cost, whole, cut = once + split_ns, 0, 0
        for child in range(number * beta, (number + 1) * beta):
            start, stop = bucket_bounds(n, beta, level + 1, child)
            first, last = max(lo, start), min(hi, stop)
            if first >= last:
                continue
            if first == start and last == stop:
                cost, whole = cost + unfiltered, whole + 1
            else:
                cost, cut = cost + _part_option(last - first, stop - start, True, ef, m, dim, walk)[0], cut + 1
        if whole + cut > 1:
            why = "{} whole child buckets and {} cut ones" + how
            options.append(Option(WINDOW_THREE_SPLIT, cost, why, (whole, cut), ("three_split", lo, hi, ef, m)))
    return options


class _Pieces:
    """The parts of one tree search: exact hits, and (walking over codes) candidates to rescore."""

    def __init__(self, view: SegmentView, index: int, queries: np.ndarray, k: int, ef: int, walk: CodeWalk | None):
        self.view, self.index, self.queries, self.k, self.walk = view, index, queries, k, walk
        self.ef = ef if walk is None else max(ef, walk.count)
        self.hits: list[Hits] = []
        self.candidates: list[np.ndarray] = []
        codes = view.codes
        self.code_queries = None if walk is None or codes is None else codes.traversal_queries(queries)

    def bucket(self, bucket: Bucket, mask, two_hop: bool) -> None:
        if self.code_queries is None:
            found, distances = bucket.index.search_validated(self.queries, self.k, max(self.ef, self.k), mask,
                                                             two_hop=two_hop)  # fmt: skip
            offsets = np.where(found >= 0, found + bucket.start, -1)
            self.hits.append(found_hits(self.view, self.index, offsets, distances))
            return
        codes = self.view.codes.codes[bucket.start : bucket.stop]
        found, _ = bucket.index.search_codes(codes, self.code_queries, self.walk.candidates(self.ef), self.ef, mask,
                                             two_hop, code_metric=self.view.codes.code_metric)  # fmt: skip
        self.candidates.append(np.where(found >= 0, found + bucket.start, -1))

    def scan(self, offsets: np.ndarray, metric_code: int) -> None:
        self.hits.append(scan_rows(self.view, self.index, offsets, self.queries, self.k, metric_code))

    def merged(self, metric_code: int) -> Hits:
        if self.candidates:
            self.hits.append(rescored(self.view, self.index, self.queries, np.concatenate(self.candidates, axis=1),
                                      self.k, metric_code))  # fmt: skip
        return merge_hits(self.hits, self.queries.shape[0], self.k)


def _live_range(view: SegmentView, start: int, stop: int) -> np.ndarray:
    offsets = np.arange(start, stop, dtype=np.int64)
    return offsets if view.live is None else offsets[view.live[start:stop]]


def run_tree_option(
    view: SegmentView,
    index: int,
    allowed: Allowed,
    option: Option,
    queries: np.ndarray,
    k: int,
    ef: int,
    metric_code: int,
    walk: CodeWalk | None = None,
) -> Hits:
    """Run a window-tree option on one segment (over codes with ``walk``, as it was priced); the pieces
    cover disjoint rows and merge by distance."""
    kind = option.detail[0]
    live = view.live
    pieces = _Pieces(view, index, queries, k, ef, walk)
    if kind == "postfilter":
        _, level, number, two_hop, straddle = option.detail
        bucket = view.tree.straddle(level, number) if straddle else view.tree.bucket(level, number)
        pieces.bucket(bucket, allowed.mask(view.num_rows)[bucket.start : bucket.stop], two_hop)
    elif kind == "cover":
        buckets, ranges = view.tree.cover(option.detail[1], option.detail[2])
        for bucket in buckets:
            pieces.bucket(bucket, None if live is None else live[bucket.start : bucket.stop], False)
        for start, stop in ranges:
            pieces.scan(_live_range(view, start, stop), metric_code)
    else:
        _, lo, hi, priced_ef, m = option.detail
        whole, parts = view.tree.three_split(lo, hi)
        for bucket in whole:
            pieces.bucket(bucket, None if live is None else live[bucket.start : bucket.stop], False)
        dim = view.vectors.shape[1]
        for child, start, stop in parts:
            two_hop = _part_option(stop - start, child.rows, child.index is not None, priced_ef, m, dim, walk)[1]
            if two_hop is None:
                pieces.scan(_live_range(view, start, stop), metric_code)
            else:
                pieces.bucket(child, allowed.mask(view.num_rows)[child.start : child.stop], two_hop)
    return pieces.merged(metric_code)
