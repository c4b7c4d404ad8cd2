"""Run one search over a snapshot of segment views: filter masks, per-segment top-k, merge, gather."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from vecstore.core.exact import GEMM_MIN_QUERIES, exact_topk
from vecstore.engine.filtering import matching_rows
from vecstore.engine.planner import EMPTY, HNSW, HNSW_TWO_HOP, SegmentPlan, plan_segment
from vecstore.engine.views import SegmentView
from vecstore.filters import Node, evaluate, interval_on
from vecstore.filters.bind import parse_timestamp
from vecstore.types import METRIC_CODES, SearchResult


def _window_slice(view: SegmentView, node: Node) -> np.ndarray | None:
    """Offsets of a window filter on the segment's sort column: two binary searches, no scan."""
    values = view.sorted_values
    intervals = interval_on(node, view.sorted_by) if values is not None else None
    if intervals is None:
        return None
    is_time = values.dtype.kind == "M"
    lo, hi = 0, values.shape[0]
    for interval in intervals:
        if interval.low is not None:
            bound = parse_timestamp(interval.low, view.sorted_by) if is_time else interval.low
            lo = max(lo, int(np.searchsorted(values, bound, "left" if interval.low_inclusive else "right")))
        if interval.high is not None:
            bound = parse_timestamp(interval.high, view.sorted_by) if is_time else interval.high
            hi = min(hi, int(np.searchsorted(values, bound, "right" if interval.high_inclusive else "left")))
    if hi <= lo:
        return np.empty(0, dtype=np.int64)
    offsets = np.arange(lo, hi, dtype=np.int64)
    return offsets if view.live is None else offsets[view.live[lo:hi]]


@dataclass
class Allowed:
    """The live rows of one view a filter allows, how they were found, and (built once, on demand)
    the same rows as a mask for graph traversal."""

    offsets: np.ndarray  # int64, ascending
    found_by: str  # all_live_rows | window_slice | payload_index | evaluated
    _mask: np.ndarray | None = None

    def mask(self, num_rows: int) -> np.ndarray:
        if self._mask is None:
            mask = np.zeros(num_rows, dtype=np.bool_)
            mask[self.offsets] = True
            self._mask = mask
        return self._mask


def _find_allowed(view: SegmentView, node: Node) -> Allowed:
    if view.sorted_by is not None:
        offsets = _window_slice(view, node)
        if offsets is not None:
            return Allowed(offsets, "window_slice")
    if view.payload is not None:
        return Allowed(matching_rows(node, view.payload, view.live), "payload_index")
    mask = evaluate(node, view.columns(), view.num_rows)
    if view.live is not None:
        mask &= view.live
    return Allowed(np.flatnonzero(mask).astype(np.int64), "evaluated")


def allowed_rows(view: SegmentView, node: Node | None) -> Allowed:
    """The live rows of ``view`` that satisfy ``node``; repeated filters come from the view's cache."""
    if node is None:
        return Allowed(view.live_offsets, "all_live_rows")
    allowed = view.filter_results.get(node)
    if allowed is None:
        allowed = _find_allowed(view, node)
        view.filter_results.put(node, allowed, allowed.offsets.nbytes + view.num_rows)
    return allowed


def allowed_offsets(view: SegmentView, node: Node | None) -> tuple[np.ndarray, str]:
    """Offsets of the live rows of ``view`` that satisfy ``node``, and how they were found."""
    allowed = allowed_rows(view, node)
    return allowed.offsets, allowed.found_by


def count_matching(views: Sequence[SegmentView], node: Node | None) -> int:
    if node is None:
        return sum(v.live_count for v in views)
    return sum(int(allowed_offsets(v, node)[0].shape[0]) for v in views)


@dataclass
class _Hits:
    view_index: np.ndarray  # [q, k] index of the view each hit came from, -1 for padding
    ids: np.ndarray  # [q, k]
    offsets: np.ndarray  # [q, k]
    distances: np.ndarray  # [q, k]


def _merge(hits: list[_Hits], nq: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best k per query by (distance, id) across segments; padding (-1 / inf) sorts last."""
    if not hits:
        return (
            np.full((nq, k), -1, dtype=np.int64),
            np.full((nq, k), np.inf, dtype=np.float32),
            np.full((nq, k), -1, dtype=np.int64),
            np.full((nq, k), -1, dtype=np.int64),
        )
    if len(hits) == 1:  # one segment searched: already ordered
        h = hits[0]
        return h.ids[:, :k], h.distances[:, :k], h.offsets[:, :k], h.view_index[:, :k]
    ids = np.concatenate([h.ids for h in hits], axis=1)
    dist = np.concatenate([h.distances for h in hits], axis=1)
    offs = np.concatenate([h.offsets for h in hits], axis=1)
    src = np.concatenate([h.view_index for h in hits], axis=1)
    # one sort for all queries: by query, then padding last, then distance, then id
    width = ids.shape[1]
    query_of = np.repeat(np.arange(nq), width)
    flat = np.lexsort((ids.ravel(), dist.ravel(), (ids < 0).ravel(), query_of)).reshape(nq, width)
    ids, dist, offs, src = (a.ravel()[flat] for a in (ids, dist, offs, src))
    return ids[:, :k], dist[:, :k], offs[:, :k], src[:, :k]  # padding sorted last, marked -1 in every array


def _gather(views: Sequence[SegmentView], src: np.ndarray, offs: np.ndarray, select: Sequence[str]) -> dict:
    """Selected columns for every non-padding hit, in row-major (query, rank) order."""
    flat_src = src.ravel()
    flat_offs = offs.ravel()
    keep = flat_src >= 0
    flat_src, flat_offs = flat_src[keep], flat_offs[keep]
    order = np.argsort(flat_src, kind="stable")
    out: dict[str, pa.Array] = {}
    for name in select:
        pieces = []
        for view_index in np.unique(flat_src):
            rows = flat_offs[flat_src == view_index]
            pieces.append(views[int(view_index)].table.column(name).take(pa.array(rows)))
        if pieces:
            column = pa.chunked_array(pieces).combine_chunks()
            inverse = np.empty_like(order)
            inverse[order] = np.arange(order.shape[0])
            out[name] = column.take(pa.array(inverse))
        else:
            out[name] = pa.array([], type=views[0].table.schema.field(name).type) if views else pa.array([])
    return out


#: For a batch, allowed rows spread over several segments are copied into one block and scanned once
#: when they are at most this many: one BLAS product and merge instead of one per segment.
GATHER_MAX_ROWS = 65_536


def _scan(view: SegmentView, index: int, offsets: np.ndarray, queries: np.ndarray, k: int, metric: int) -> _Hits:
    found, distances = exact_topk(view.vectors, view.norms, queries, offsets, view.ids, k, metric)
    return _found_hits(view, index, found, distances)


def _found_hits(view: SegmentView, index: int, found: np.ndarray, distances: np.ndarray) -> _Hits:
    """Hits from segment offsets (-1 padded): ids looked up, padding marked in every array."""
    ids = view.ids.take(found, mode="clip")
    padding = found < 0
    ids[padding] = -1
    source = np.full(found.shape, index, dtype=np.int64)
    source[padding] = -1
    return _Hits(source, ids, found, distances)


def _graph_search(
    view: SegmentView,
    index: int,
    allowed: Allowed,
    queries: np.ndarray,
    k: int,
    ef: int,
    two_hop: bool = False,
) -> _Hits:
    """Top-k through the segment's graph, masked to the allowed rows unless every row is allowed."""
    graph = view.graph
    assert graph is not None
    if allowed.found_by == "all_live_rows":
        mask = view.live  # None without deletes; the view's own mask otherwise, not rebuilt per call
    else:
        mask = allowed.mask(view.num_rows)
    found, distances = graph.search_validated(queries, k, max(ef, k), mask, two_hop=two_hop)  # checked by to_queries
    return _found_hits(view, index, found, distances)


def _gathered_scan(
    views: Sequence[SegmentView], scans: list[tuple[int, np.ndarray]], queries: np.ndarray, k: int, metric: int
) -> _Hits:
    """Exact top-k over the allowed rows of several segments, copied into one contiguous block."""
    vectors = np.concatenate([views[i].vectors[offsets] for i, offsets in scans])
    norms = np.concatenate([views[i].norms[offsets] for i, offsets in scans])
    ids = np.concatenate([views[i].ids[offsets] for i, offsets in scans])
    source = np.concatenate([np.full(offsets.shape[0], i, dtype=np.int64) for i, offsets in scans])
    source_offsets = np.concatenate([offsets for _, offsets in scans])
    rows = np.arange(ids.shape[0], dtype=np.int64)
    found, distances = exact_topk(vectors, norms, queries, rows, ids, k, metric)
    hit = found >= 0
    safe = np.maximum(found, 0)
    return _Hits(
        np.where(hit, source[safe], -1),
        np.where(hit, ids[safe], -1),
        np.where(hit, source_offsets[safe], -1),
        distances,
    )


def search_views(
    views: Sequence[SegmentView],
    queries: np.ndarray,
    *,
    k: int,
    node: Node | None,
    metric: str,
    exact: bool,
    ef: int,
    m: int,
    select: Sequence[str],
    explain: bool,
    counters: Counter,
) -> SearchResult:
    """Search every view, merge by (distance, id), gather selected attributes, record the plan."""
    nq = queries.shape[0]
    metric_code = METRIC_CODES[metric]
    plans: list[SegmentPlan] = []
    scans: list[tuple[int, np.ndarray]] = []
    graph_hits: list[_Hits] = []
    for index, view in enumerate(views):
        allowed = allowed_rows(view, node)
        offsets = allowed.offsets
        plan = plan_segment(
            view.name,
            int(offsets.shape[0]),
            view.live_count,
            allowed.found_by,
            exact_requested=exact,
            graph_rows=None if view.graph is None else view.num_rows,
            ef=max(ef, k),
            m=m,
        )
        plans.append(plan)
        counters[plan.strategy] += nq
        if plan.strategy in (HNSW, HNSW_TWO_HOP):
            two_hop = plan.strategy == HNSW_TWO_HOP
            hits = _graph_search(view, index, allowed, queries, k, ef, two_hop)
            short = (hits.ids >= 0).sum(axis=1) < min(k, offsets.shape[0])
            if short.any():  # the graph could not reach k allowed rows: those queries scan exactly
                exact_hits = _scan(view, index, offsets, queries[short], k, metric_code)
                for name in ("view_index", "ids", "offsets", "distances"):
                    getattr(hits, name)[short] = getattr(exact_hits, name)
                counters["graph_short_rescans"] += int(short.sum())
            graph_hits.append(hits)
        elif plan.strategy != EMPTY:
            scans.append((index, offsets))
    total_rows = sum(offsets.shape[0] for _, offsets in scans)
    # the copy pays for itself only when a batch shares it (one BLAS product instead of one per segment)
    gathered = len(scans) > 1 and nq >= GEMM_MIN_QUERIES and total_rows <= GATHER_MAX_ROWS
    if gathered:
        hits = [_gathered_scan(views, scans, queries, k, metric_code)]
        counters["gathered_scans"] += 1
    else:
        hits = [_scan(views[index], index, offsets, queries, k, metric_code) for index, offsets in scans]
    ids, distances, offs, src = _merge(hits + graph_hits, nq, k)
    selected = _gather(views, src, offs, select) if select else None
    strategy = _overall(plans)
    plan_out = None
    if explain:
        segment_plans = [p.to_dict() for p in plans]
        plan_out = [
            {
                "filter": None if node is None else str(node),
                "strategy": strategy,
                "segments_scanned_together": gathered,
                "segments": segment_plans,
            }
            for _ in range(nq)
        ]
    return SearchResult(ids, distances, plan_out, selected, strategy)


def _overall(plans: Sequence[SegmentPlan]) -> str:
    strategies = {p.strategy for p in plans if p.strategy != EMPTY}
    if not strategies:
        return EMPTY
    return strategies.pop() if len(strategies) == 1 else "mixed"


def merge_query_groups(
    queries: np.ndarray, nodes: Sequence[Node | None], run: Callable[..., SearchResult]
) -> SearchResult:
    """Search with one filter per query: queries sharing a filter run together, results are reassembled."""
    groups: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        groups.setdefault("" if node is None else str(node), []).append(index)
    nq = queries.shape[0]
    parts = []
    for members in groups.values():
        rows = np.asarray(members, dtype=np.int64)
        parts.append((rows, run(queries[rows], node=nodes[members[0]])))
    k = parts[0][1].ids.shape[1]
    ids = np.empty((nq, k), dtype=np.int64)
    distances = np.empty((nq, k), dtype=np.float32)
    plan: list[dict] | None = [{}] * nq if parts[0][1].plan is not None else None
    for rows, result in parts:
        ids[rows] = result.ids
        distances[rows] = result.distances
        if plan is not None and result.plan is not None:
            for row, entry in zip(rows.tolist(), result.plan, strict=True):
                plan[row] = entry
    selected = None
    if parts[0][1].selected is not None:
        # selected values come per group in (query, rank) order of the group; put them in global order
        keys = np.concatenate([(rows[:, None] * k + np.arange(k))[result.ids >= 0] for rows, result in parts])
        order = pa.array(np.argsort(keys, kind="stable"))
        selected = {
            name: pa.chunked_array([result.selected[name] for _, result in parts]).combine_chunks().take(order)
            for name in parts[0][1].selected
        }
    strategies = {result.strategy for _, result in parts} - {EMPTY}
    strategy = EMPTY if not strategies else strategies.pop() if len(strategies) == 1 else "mixed"
    return SearchResult(ids, distances, plan, selected, strategy)
