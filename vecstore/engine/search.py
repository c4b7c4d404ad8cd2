"""Run one search over a snapshot of segment views: filter masks, per-segment top-k, merge, gather."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache, partial

import numpy as np
import pyarrow as pa

from vecstore.core.exact import GEMM_MIN_QUERIES, exact_topk
from vecstore.engine.allowed import Allowed, allowed_rows
from vecstore.engine.code_walks import CodeWalk, code_walk
from vecstore.engine.filtering import cardinality
from vecstore.engine.hits import Hits, found_hits, merge_hits, rescored, scan_rows
from vecstore.engine.planner import (
    CLUSTERING_SAMPLE_ROWS,
    EMPTY,
    HNSW_TWO_HOP,
    QUANTIZED_HNSW,
    QUANTIZED_SCAN,
    RANGE_GRAPH,
    TERM_GRAPH,
    TERM_PIECE_CALL_NS,
    TREE_SPLIT_CALL_NS,
    Option,
    SegmentPlan,
    plan_segment,
    quantized_graph_option,
    quantized_option,
    unfiltered_graph_cost,
    walk_candidates,
)
from vecstore.engine.range_search import range_options
from vecstore.engine.term_search import cover_lift, run_term_option, term_options
from vecstore.engine.views import SegmentView
from vecstore.engine.window_search import run_tree_option, tree_options
from vecstore.filters import Node
from vecstore.types import METRIC_CODES, SearchResult


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


def _graph_search(
    view: SegmentView,
    index: int,
    allowed: Allowed,
    queries: np.ndarray,
    k: int,
    ef: int,
    two_hop: bool = False,
) -> Hits:
    """Top-k through the segment's graph, masked to the allowed rows unless every row is allowed."""
    graph = view.graph
    assert graph is not None
    if allowed.found_by == "all_live_rows":
        mask = view.live  # None without deletes; the view's own mask otherwise, not rebuilt per call
    else:
        mask = allowed.mask(view.num_rows)
    found, distances = graph.search_validated(queries, k, max(ef, k), mask, two_hop=two_hop)  # checked by to_queries
    return found_hits(view, index, found, distances)


def _quantized_search(
    view: SegmentView,
    index: int,
    offsets: np.ndarray,
    queries: np.ndarray,
    k: int,
    oversampling: float,
    rescore: bool,
    metric: int,
) -> Hits:
    """Top-k from the segment's codes: ``k x oversampling`` candidates among the allowed rows, rescored
    exactly on the vectors (or, without rescoring, the best k by PQ's estimate)."""
    codes = view.codes
    assert codes is not None
    if not rescore:  # only PQ gets here: its estimates are distances in the metric's own terms
        found, distances = codes.estimates(queries, offsets, view.ids, k)  # type: ignore[union-attr]
        return found_hits(view, index, found, distances)
    candidates = codes.candidates(queries, offsets, view.ids, max(k, math.ceil(k * oversampling)))
    return rescored(view, index, queries, candidates, k, metric)


def _quantized_graph_search(
    view: SegmentView,
    index: int,
    allowed: Allowed,
    queries: np.ndarray,
    k: int,
    ef: int,
    oversampling: float,
    rescore: bool,
    two_hop: bool,
    metric: int,
) -> Hits:
    """Top-k through the segment graph walked by code distances (masked as a float walk would be),
    the ``k x oversampling`` candidates rescored exactly (or, for PQ without rescoring, the best k)."""
    codes, graph = view.codes, view.graph
    assert codes is not None and graph is not None
    mask = view.live if allowed.found_by == "all_live_rows" else allowed.mask(view.num_rows)
    count = k if not rescore else walk_candidates(codes.kind, max(k, math.ceil(k * oversampling)), ef)
    found, estimates = graph.search_codes(codes.codes, codes.traversal_queries(queries), count, ef, mask, two_hop,
                                          code_metric=codes.code_metric)  # fmt: skip
    if not rescore:
        if codes.metric == "cosine":
            estimates = np.where(found >= 0, estimates + np.float32(1.0), estimates)
        return found_hits(view, index, found, estimates)
    return rescored(view, index, queries, found, k, metric)


def _tree_options(view: SegmentView, allowed: Allowed, ef: int, m: int, k: int, oversampling: float,
                  rescore: bool, queries: int) -> list[Option]:  # fmt: skip
    if allowed.found_by == "all_live_rows":  # no filter: the segment's own graph is the tree's root
        return []
    # a search in several pieces pays its Python work once for all the queries that share the plan
    return tree_options(view, allowed, ef, m, walk=code_walk(view, k, oversampling, rescore),
                        split_ns=TREE_SPLIT_CALL_NS / queries)  # fmt: skip


def _all_options(pricers: list[Callable[[], list[Option]]]) -> list[Option]:
    return [option for price in pricers for option in price()]


def _quantized_graph(view: SegmentView, allowed_rows: int, ef: int, m: int, k: int, oversampling: float,
                     rescore: bool, dim: int) -> Option | None:  # fmt: skip
    if view.codes is None or view.graph is None:
        return None
    return quantized_graph_option(allowed_rows, view.num_rows, ef, m, view.codes.kind, dim,
                                  view.codes.codes.shape[1], k, oversampling, rescore)  # fmt: skip


def _gathered_scan(
    views: Sequence[SegmentView], scans: list[tuple[int, np.ndarray]], queries: np.ndarray, k: int, metric: int
) -> Hits:
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
    return Hits(
        np.where(hit, source[safe], -1),
        np.where(hit, ids[safe], -1),
        np.where(hit, source_offsets[safe], -1),
        distances,
    )


@lru_cache(maxsize=4096)
def _fields_read(node: Node) -> frozenset[str]:
    """The fields ``node`` reads (asked for every planned query; filters repeat, and nodes are immutable)."""
    return frozenset(node.fields())


def reads_term_graphs(view: SegmentView, node: Node | None) -> tuple[bool, bool]:
    """Whether ``node`` reads a field with term graphs in ``view``, and one with range graphs: only such
    a filter has options through them."""
    if view.terms is None or node is None:
        return False, False
    fields = _fields_read(node)
    return view.terms.has_any_field(fields), not fields.isdisjoint(view.terms.ranges)


def plan_view(
    view: SegmentView,
    allowed: Allowed,
    *,
    k: int,
    ef: int,
    m: int,
    dim: int,
    exact: bool,
    oversampling: float,
    rescore: bool,
    queries: int,
    node: Node | None = None,
) -> tuple[SegmentPlan, Option | None]:
    """The planner's choice for one view given the rows its filter ``node`` allows (``ef`` already at
    least k), for ``queries`` queries sharing the plan."""
    rows = allowed.count
    pricers = []
    walk = None if exact else code_walk(view, k, oversampling, rescore)
    # term and range graphs are walked over sq8 codes only, which rank rows as the floats nearly do
    # (one-bit codes of clustered 32-d rows read recall@10 0.8 there at oversampling 20)
    term_walk = walk if walk is not None and walk.kind == "sq8" else None
    coded_graphs = False  # whether some graph of the options below is walked over codes
    if not exact and view.tree is not None:
        pricers.append(partial(_tree_options, view, allowed, ef, m, k, oversampling, rescore, queries))
        coded_graphs = walk is not None
    if not exact:
        through_terms, through_ranges = reads_term_graphs(view, node)
        if through_terms:
            pricers.append(partial(term_options, view, allowed, node, ef, m, TERM_PIECE_CALL_NS / queries, term_walk))
        if through_ranges:
            pricers.append(partial(range_options, view, allowed, node, ef, m, term_walk))
        coded_graphs = coded_graphs or (term_walk is not None and (through_terms or through_ranges))
    trees = partial(_all_options, pricers) if pricers else None
    # windows on the sort column are served by the window tree's options; a category's rows may cluster
    clustering = (
        None
        if exact or view.graph is None or allowed.found_by not in ("payload_index", "evaluated")
        else partial(filter_clustering, view, allowed, node)
    )
    codes = None if exact else view.codes
    return plan_segment(
        view.name,
        rows,
        view.live_count,
        allowed.found_by,
        exact_requested=exact,
        graph_rows=None if view.graph is None else view.num_rows,
        ef=ef,
        m=m,
        dim=dim,
        tree_options=trees,
        quantized=None
        if codes is None
        else quantized_option(rows, codes.kind, dim, codes.codes.shape[1], k, oversampling, rescore),
        quantized_graph=None if exact else _quantized_graph(view, rows, ef, m, k, oversampling, rescore, dim),
        clustering=clustering,
        # a bucket, term or range graph walked over codes costs at least an unfiltered walk over them
        code_walk_floor_ns=_code_walk_floor(walk, ef, m) if coded_graphs else None,  # type: ignore[arg-type]
    )


def _code_walk_floor(walk: CodeWalk, ef: int, m: int) -> float:
    return unfiltered_graph_cost(max(ef, walk.count), m, scale=walk.scale) + walk.query_ns


def filter_clustering(view: SegmentView, allowed: Allowed, node: Node | None = None) -> float:
    """How many times more often the allowed rows' layer-0 links in the segment graph lead to allowed
    rows than they would for rows drawn at random (1: as a random mask; a category whose rows sit in
    their own regions of the vector space scores its inverse share at most), from a sample of rows;
    at least the lift of the terms covering ``node`` that have graphs (``cover_lift``)."""
    terms = 1.0 if view.terms is None else cover_lift(view, node)
    sample = allowed.sample(CLUSTERING_SAMPLE_ROWS)
    if sample.shape[0] == 0:
        return terms
    graph = view.graph.graph  # type: ignore[union-attr]
    return max(terms, graph.link_lift(sample, allowed.mask(view.num_rows), allowed.count / view.num_rows))


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
    oversampling: float = 1.0,
    rescore: bool = True,
) -> SearchResult:
    """Search every view, merge by (distance, id), gather selected attributes, record the plan."""
    nq = queries.shape[0]
    metric_code = METRIC_CODES[metric]
    plans: list[SegmentPlan] = []
    scans: list[tuple[int, np.ndarray]] = []
    graph_hits: list[Hits] = []
    for index, view in enumerate(views):
        allowed = allowed_rows(view, node)
        offsets = allowed.offsets
        search_ef = max(ef, k)
        plan, option = plan_view(view, allowed, k=k, ef=search_ef, m=m, dim=queries.shape[1], exact=exact,
                                 oversampling=oversampling, rescore=rescore, queries=nq, node=node)  # fmt: skip
        plans.append(plan)
        counters[plan.strategy] += nq
        if option is not None:
            if option.strategy == QUANTIZED_SCAN:
                hits = _quantized_search(view, index, offsets, queries, k, oversampling, rescore, metric_code)
            elif option.strategy == QUANTIZED_HNSW:
                two_hop = option.detail[1]
                hits = _quantized_graph_search(
                    view, index, allowed, queries, k, search_ef, oversampling, rescore, two_hop, metric_code
                )
            elif option.strategy in (TERM_GRAPH, RANGE_GRAPH):
                hits = run_term_option(view, index, option, queries, k, ef, metric_code)
            elif option.detail is not None:
                walk = code_walk(view, k, oversampling, rescore)  # as _tree_options priced it
                hits = run_tree_option(view, index, allowed, option, queries, k, ef, metric_code, walk)
            else:
                hits = _graph_search(view, index, allowed, queries, k, ef, plan.strategy == HNSW_TWO_HOP)
            last = hits.ids[:, min(k, offsets.shape[0]) - 1]  # padding sorts last
            if (last[0] < 0) if nq == 1 else (last < 0).any():
                # the graph could not reach k allowed rows: those queries scan exactly
                short = last < 0
                exact_hits = scan_rows(view, index, offsets, queries[short], k, metric_code)
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
        hits = [scan_rows(views[index], index, offsets, queries, k, metric_code) for index, offsets in scans]
    merged = merge_hits(hits + graph_hits, nq, k)
    ids, distances, offs, src = merged.ids, merged.distances, merged.offsets, merged.view_index
    selected = _gather(views, src, offs, select) if select else None
    strategy = _overall(plans)
    plan_out = None
    if explain:
        segment_plans = [p.to_dict() for p in plans]
        if node is not None:  # what the payload index alone predicts, beside the exact count the plan used
            for entry, view in zip(segment_plans, views, strict=True):
                if view.payload is not None:
                    entry["cardinality_bounds"] = cardinality(node, view.payload).to_dict()
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
    queries: np.ndarray,
    nodes: Sequence[Node | None],
    run: Callable[..., SearchResult],
    run_one: Callable[..., SearchResult | None] | None = None,
) -> SearchResult:
    """Search with one filter per query: queries sharing a filter run together, results are reassembled
    in query order. A query alone with its filter goes to ``run_one`` first (the single-query lane),
    and to ``run`` when that answers None. (Groups run one after another: running them on two threads
    measured 15% slower for one-query groups and 6% faster for 25% windows, as their Python work holds
    the GIL.)"""
    groups: dict[Node | None, list[int]] = {}
    for index, node in enumerate(nodes):
        groups.setdefault(node, []).append(index)
    nq = queries.shape[0]
    members = [np.asarray(rows, dtype=np.int64) for rows in groups.values()]
    results = []
    for rows in members:
        node = nodes[int(rows[0])]
        alone = run_one(queries[int(rows[0])], node=node) if run_one is not None and rows.shape[0] == 1 else None
        results.append(run(queries[rows], node=node) if alone is None else alone)
    parts = list(zip(members, results, strict=True))
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
