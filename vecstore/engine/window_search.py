"""Searching a sorted segment through its window tree: pricing the tree's strategies for the rows a
filter allows, and running the chosen one (see ``vecstore.index.window_tree`` and the planner)."""

from __future__ import annotations

import numpy as np

from vecstore.engine.allowed import Allowed
from vecstore.engine.hits import Hits, found_hits, merge_hits, scan_rows
from vecstore.engine.planner import (
    EXACT_CALL_NS,
    HNSW_TWO_HOP,
    WINDOW_COVER,
    WINDOW_POSTFILTER,
    WINDOW_THREE_SPLIT,
    Option,
    exact_cost,
    float_distance_scale,
    masked_graph_option,
    unfiltered_graph_cost,
)
from vecstore.engine.views import SegmentView
from vecstore.index.window_tree import Bucket, bucket_bounds


def _part_option(allowed: int, rows: int, has_graph: bool, ef: int, m: int, dim: int) -> tuple[float, bool | None]:
    """Cost of the part of a window inside a bucket of ``rows`` rows: (cost, two_hop) through its graph,
    or (cost, None) scanned exactly, whichever is cheaper."""
    graph = masked_graph_option(allowed, rows, ef, m, float_distance_scale(dim)) if has_graph else None
    if graph is not None and graph[1] < exact_cost(allowed, dim):
        return graph[1], graph[0] == HNSW_TWO_HOP
    return exact_cost(allowed, dim), None


def tree_options(view: SegmentView, allowed: Allowed, ef: int, m: int, prune: bool = True) -> list[Option]:
    """The window tree's ways to search ``allowed``, priced. Postfiltering applies to any filter whose
    rows lie close together in window order; cover and three-split to windows (a slice of that order).

    Runs for every query on a sorted segment, so it prices with integers only; the buckets are built
    when an option is run. ``prune=False`` prices every option, even those that cannot win.
    """
    tree = view.tree
    count = int(allowed.offsets.shape[0])
    dim = view.vectors.shape[1]
    scale = float_distance_scale(dim)
    if tree is None or count == 0 or (prune and exact_cost(count, dim) <= unfiltered_graph_cost(ef, m, scale=scale)):
        return []  # nothing to gain: a scan of these rows beats any graph search
    lo, hi = int(allowed.offsets[0]), int(allowed.offsets[-1]) + 1
    options: list[Option] = []
    n, beta = tree.n, tree.beta
    level, number = tree.holder(lo, hi)
    if level > 0:  # the root itself is priced by the planner as the segment graph
        start, stop = bucket_bounds(n, beta, level, number)
        graph = masked_graph_option(count, stop - start, ef, m, scale)
        if graph is not None:
            why = "a level-{} bucket of {} rows holds every allowed row ({:.1%})"
            args = (level, stop - start, count / (stop - start))
            detail = ("postfilter", level, number, graph[0] == HNSW_TWO_HOP)
            options.append(Option(WINDOW_POSTFILTER, graph[1], why, args, detail))
    # cover and three-split search at least two pieces, one an unfiltered graph search: skip pricing them
    # when an option at hand is already cheaper than that floor
    at_hand = min([exact_cost(count, dim)] + [o.cost_ns for o in options])
    root = masked_graph_option(count, view.num_rows, ef, m, scale)
    if root is not None:
        at_hand = min(at_hand, root[1])
    if allowed.found_by != "window_slice" or (
        prune and at_hand <= unfiltered_graph_cost(ef, m, scale=scale) + EXACT_CALL_NS
    ):
        return options
    live_fraction = view.live_count / max(view.num_rows, 1)
    unfiltered = unfiltered_graph_cost(ef, m, live_fraction, scale)
    buckets, ranges, ragged = tree.cover_size(lo, hi)
    if buckets > 1 or (buckets and ranges):
        cost = buckets * unfiltered + ranges * EXACT_CALL_NS + exact_cost(ragged, dim) - EXACT_CALL_NS
        why = "{} buckets inside the window and {} rows at its ends"
        options.append(Option(WINDOW_COVER, cost, why, (buckets, ragged), ("cover", lo, hi)))
    if level < tree.depth:
        cost, whole, cut = 0.0, 0, 0
        for child in range(number * beta, (number + 1) * beta):
            start, stop = bucket_bounds(n, beta, level + 1, child)
            first, last = max(lo, start), min(hi, stop)
            if first >= last:
                continue
            if first == start and last == stop:
                cost, whole = cost + unfiltered, whole + 1
            else:
                cost, cut = cost + _part_option(last - first, stop - start, True, ef, m, dim)[0], cut + 1
        if whole + cut > 1:
            why = "{} whole child buckets and {} cut ones"
            options.append(Option(WINDOW_THREE_SPLIT, cost, why, (whole, cut), ("three_split", lo, hi, ef, m)))
    return options


def _bucket_search(
    view: SegmentView, index: int, bucket: Bucket, queries: np.ndarray, k: int, ef: int, mask, two_hop: bool
) -> Hits:
    found, distances = bucket.index.search_validated(queries, k, max(ef, k), mask, two_hop=two_hop)
    return found_hits(view, index, np.where(found >= 0, found + bucket.start, -1), distances)


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
) -> Hits:
    """Run a window-tree option on one segment; the pieces cover disjoint rows and merge by distance."""
    kind = option.detail[0]
    live = view.live
    nq = queries.shape[0]
    pieces: list[Hits] = []
    if kind == "postfilter":
        _, level, number, two_hop = option.detail
        bucket = view.tree.bucket(level, number)
        mask = allowed.mask(view.num_rows)[bucket.start : bucket.stop]
        pieces.append(_bucket_search(view, index, bucket, queries, k, ef, mask, two_hop))
    elif kind == "cover":
        buckets, ranges = view.tree.cover(option.detail[1], option.detail[2])
        for bucket in buckets:
            mask = None if live is None else live[bucket.start : bucket.stop]
            pieces.append(_bucket_search(view, index, bucket, queries, k, ef, mask, False))
        for start, stop in ranges:
            pieces.append(scan_rows(view, index, _live_range(view, start, stop), queries, k, metric_code))
    else:
        _, lo, hi, priced_ef, m = option.detail
        whole, parts = view.tree.three_split(lo, hi)
        for bucket in whole:
            mask = None if live is None else live[bucket.start : bucket.stop]
            pieces.append(_bucket_search(view, index, bucket, queries, k, ef, mask, False))
        dim = view.vectors.shape[1]
        for child, start, stop in parts:
            two_hop = _part_option(stop - start, child.rows, child.index is not None, priced_ef, m, dim)[1]
            if two_hop is None:
                pieces.append(scan_rows(view, index, _live_range(view, start, stop), queries, k, metric_code))
            else:
                mask = allowed.mask(view.num_rows)[child.start : child.stop]
                pieces.append(_bucket_search(view, index, child, queries, k, ef, mask, two_hop))
    return merge_hits(pieces, nq, k)
