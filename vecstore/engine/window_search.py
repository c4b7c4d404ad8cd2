"""Searching a sorted segment through its window tree: pricing the tree's strategies for the rows a
filter allows, and running the chosen one (see ``vecstore.index.window_tree`` and the planner)."""

from __future__ import annotations

import numpy as np

from vecstore.engine.allowed import Allowed
from vecstore.engine.hits import Hits, found_hits, merge_hits, scan_rows
from vecstore.engine.planner import (
    HNSW_TWO_HOP,
    WINDOW_COVER,
    WINDOW_POSTFILTER,
    WINDOW_THREE_SPLIT,
    Option,
    cheapest_graph_cost,
    exact_cost,
    masked_graph_option,
    unfiltered_graph_cost,
)
from vecstore.engine.views import SegmentView
from vecstore.index.window_tree import Bucket


def _part_option(allowed: int, bucket: Bucket, ef: int, m: int, dim: int) -> tuple[float, bool | None]:
    """Cost of the part of a window inside ``bucket``: (cost, two_hop) through its graph, or
    (cost, None) scanned exactly, whichever is cheaper."""
    graph = masked_graph_option(allowed, bucket.rows, ef, m) if bucket.index is not None else None
    if graph is not None and graph[1] < exact_cost(allowed, dim):
        return graph[1], graph[0] == HNSW_TWO_HOP
    return exact_cost(allowed, dim), None


def tree_options(view: SegmentView, allowed: Allowed, ef: int, m: int) -> list[Option]:
    """The window tree's ways to search ``allowed``, priced. Postfiltering applies to any filter whose
    rows lie close together in window order; cover and three-split to windows (a slice of that order)."""
    tree = view.tree
    count = int(allowed.offsets.shape[0])
    dim = view.vectors.shape[1]
    if tree is None or count == 0 or exact_cost(count, dim) <= cheapest_graph_cost(ef, m):
        return []  # nothing to gain: a scan of these rows beats any graph search
    lo, hi = int(allowed.offsets[0]), int(allowed.offsets[-1]) + 1
    options: list[Option] = []
    holder = tree.smallest_holding(lo, hi)
    if holder.level > 0:  # the root itself is priced by the planner as the segment graph
        graph = masked_graph_option(count, holder.rows, ef, m)
        if graph is not None:
            share = count / holder.rows
            reason = f"a level-{holder.level} bucket of {holder.rows} rows holds every allowed row ({share:.1%})"
            detail = ("postfilter", holder, graph[0] == HNSW_TWO_HOP)
            options.append(Option(WINDOW_POSTFILTER, graph[1], reason, detail))
    if allowed.found_by != "window_slice":
        return options
    live_fraction = view.live_count / max(view.num_rows, 1)
    buckets, ranges = tree.cover(lo, hi)
    if (buckets and ranges) or len(buckets) > 1:
        ragged = sum(stop - start for start, stop in ranges)
        cost = len(buckets) * unfiltered_graph_cost(ef, m, live_fraction) + len(ranges) * exact_cost(0, dim)
        cost += exact_cost(ragged, dim) - exact_cost(0, dim)
        reason = f"{len(buckets)} buckets inside the window and {ragged} rows at its ends"
        options.append(Option(WINDOW_COVER, cost, reason, ("cover", buckets, ranges)))
    whole, parts = tree.three_split(lo, hi)
    if len(whole) + len(parts) > 1:
        cost = len(whole) * unfiltered_graph_cost(ef, m, live_fraction)
        plan_parts = []
        for child, start, stop in parts:
            part_cost, two_hop = _part_option(stop - start, child, ef, m, dim)
            cost += part_cost
            plan_parts.append((child, start, stop, two_hop))
        reason = f"{len(whole)} whole child buckets and {len(parts)} cut ones"
        options.append(Option(WINDOW_THREE_SPLIT, cost, reason, ("three_split", whole, plan_parts)))
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
        _, bucket, two_hop = option.detail
        mask = allowed.mask(view.num_rows)[bucket.start : bucket.stop]
        pieces.append(_bucket_search(view, index, bucket, queries, k, ef, mask, two_hop))
    elif kind == "cover":
        _, buckets, ranges = option.detail
        for bucket in buckets:
            mask = None if live is None else live[bucket.start : bucket.stop]
            pieces.append(_bucket_search(view, index, bucket, queries, k, ef, mask, False))
        for start, stop in ranges:
            pieces.append(scan_rows(view, index, _live_range(view, start, stop), queries, k, metric_code))
    else:
        _, whole, parts = option.detail
        for bucket in whole:
            mask = None if live is None else live[bucket.start : bucket.stop]
            pieces.append(_bucket_search(view, index, bucket, queries, k, ef, mask, False))
        for child, start, stop, two_hop in parts:
            if two_hop is None:
                pieces.append(scan_rows(view, index, _live_range(view, start, stop), queries, k, metric_code))
            else:
                mask = allowed.mask(view.num_rows)[child.start : child.stop]
                pieces.append(_bucket_search(view, index, child, queries, k, ef, mask, two_hop))
    ids, distances, offsets, view_index = (np.ascontiguousarray(a) for a in merge_hits(pieces, nq, k))
    return Hits(view_index, ids, offsets, distances)
