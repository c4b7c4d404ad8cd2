"""The single-query lane: one query without options, answered by one compiled call a segment.

A single search pays for per-call work beside its distances: checking the query, planning, labelling
and merging hits. For a selective filter that work costs several times the scan (a fresh 2-row
window: 52 us through the general path, 17 us here, on the same machine), and after a graph walk has
evicted the caches each Python step costs about three times its isolated price. So, per segment:

- a window on the sort column (alone, or AND one term of a string or list column) that the planner
  would scan outright is bounded, cut to the term's rows and the live rows, and scanned inside one
  kernel call (in an l2 segment, over the term graph's copy of the term's rows when the term has a
  graph: there they are one run, not rows scattered over the segment); any other filter's rows come
  from the view's usual lookup and are scanned by one call;
- without a filter the planner's rule for whole segments chooses, and a graph walk is one call that
  also checks the query and names the hits;
- a filter allowing more rows is planned as the general path plans it (a window's rows come from the
  same kernel), and a masked or two-hop walk of the segment graph, of the window-tree bucket that holds
  every allowed row (postfilter) or of a term or range graph that is its option's one piece runs as one
  such call; the tree's and the terms' options of several pieces run as the general path runs them;
- a segment with scalar (sq8) codes is planned, filter or not: a walk over its codes, or a scan of
  the allowed rows' codes, runs as one call that also rescores the candidates on the float rows.

Results, tie-breaks and stats are the general path's. Whenever the lane would do something else
(binary or PQ codes, a parallel scan, a walk that fell short of k rows), it answers
None and the general path runs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from vecstore.core.exact import PARALLEL_SCAN_MIN_ROWS, query_sq, window_copy_topk_one, window_topk_one
from vecstore.engine.allowed import Allowed, allowed_rows
from vecstore.engine.code_walks import CodeWalk, code_walk
from vecstore.engine.filtering import single_term, single_term_rows
from vecstore.engine.hits import Hits, found_hits, merge_hits, scan_rows
from vecstore.engine.ingest import squared_norm_accepted, to_queries
from vecstore.engine.planner import (
    EMPTY,
    EXACT_SCAN,
    HNSW,
    HNSW_TWO_HOP,
    QUANTIZED_HNSW,
    QUANTIZED_SCAN,
    RANGE_GRAPH,
    TERM_GRAPH,
    TREE_SPLIT_CALL_NS,
    WINDOW_STRATEGIES,
    coded_scan_limit,
    codes_scan_limit,
    outright_scan_limit,
    walk_candidates,
    whole_segment_strategy,
)
from vecstore.engine.search import plan_view, reads_term_graphs
from vecstore.engine.term_search import TermPiece, run_term_option
from vecstore.engine.views import SegmentView
from vecstore.engine.window_search import run_tree_option
from vecstore.filters import And, Node, interval_on
from vecstore.filters.ast import Value
from vecstore.filters.bind import parse_timestamp
from vecstore.index.term_graphs import TermGraph
from vecstore.types import METRIC_CODES, SearchResult

#: Counted once per search the lane answers (beside the per-segment strategy counts).
LANE_COUNTER = "single_query_lane"
_EVERY_ROW_LIVE = np.zeros(0, dtype=np.bool_)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: strategies whose lane call checks the query itself (``_walk``, ``_code_walk``, ``_code_scan``): no
#: second check
_CALLS_THAT_CHECK = frozenset((HNSW, HNSW_TWO_HOP, QUANTIZED_HNSW, QUANTIZED_SCAN))


@lru_cache(maxsize=4096)
def _timestamp_micros(text: Value, field: str) -> int:
    """A bound on a timestamp column (datetime64[us]) as the integer its rows are compared as."""
    return int(parse_timestamp(text, field).astype(np.int64))


def _kernel_bounds(kind: str, node: Node, field: str) -> tuple | None:
    """``(low, low_open, has_low, high, high_open, has_high)`` for the kernel, in the number type of a
    sort column of dtype ``kind``, when ``node`` only bounds ``field``; None otherwise (or for a bound
    the kernel could compare inexactly, such as 2.5 against integers)."""
    intervals = interval_on(node, field)
    if intervals is None:
        return None
    low, low_open, has_low = 0, False, False
    high, high_open, has_high = 0, False, False
    for interval in intervals:
        for bound, inclusive, is_low in ((interval.low, interval.low_inclusive, True),
                                         (interval.high, interval.high_inclusive, False)):  # fmt: skip
            if bound is None:
                continue
            if kind == "M":
                value = _timestamp_micros(bound, field)
            elif isinstance(bound, bool):
                return None
            elif kind == "f" and isinstance(bound, int | float):
                value = float(bound)
            elif kind in "iu" and isinstance(bound, int) and _INT64_MIN <= bound <= _INT64_MAX:
                value = bound
            else:
                return None
            if is_low and (not has_low or value > low or (value == low and not inclusive)):
                low, low_open, has_low = value, not inclusive, True
            if not is_low and (not has_high or value < high or (value == high and not inclusive)):
                high, high_open, has_high = value, not inclusive, True
    if kind == "f":
        low, high = float(low), float(high)  # one number type for the kernel's two bounds
    return low, low_open, has_low, high, high_open, has_high


@lru_cache(maxsize=4096)
def _kernel_window(kind: str, node: Node, field: str) -> tuple[tuple, Node | None] | None:
    """The kernel's bounds for a filter that is a window on the sort column ``field`` (of dtype
    ``kind``), alone or AND one other predicate, with that predicate (None when alone); None for any
    other filter. Whether the other predicate is one term's rows is for each segment's index to say."""
    bounds = _kernel_bounds(kind, node, field)
    if bounds is not None:
        return bounds, None
    if not isinstance(node, And):
        return None
    window = [c for c in node.children if interval_on(c, field) is not None]
    rest = [c for c in node.children if interval_on(c, field) is None]
    if not window or len(rest) != 1:
        return None
    bounds = _kernel_bounds(kind, And.of(*window), field)
    return None if bounds is None else (bounds, rest[0])


_NO_TERM = np.zeros(0, dtype=np.int64)


def _window_args(view: SegmentView, node: Node, metric: str) -> tuple[tuple, TermGraph | None] | None:
    """``window_rows``' arguments before ``max_rows`` for a window on the view's sort column, or a
    window AND one term (its rows read straight from the payload index); None for any other filter.
    Beside them, for a window AND a term that has a graph in an l2 segment, that graph: its copy of the
    term's rows is scanned instead of the segment's (``exact.window_copy_topk_one``)."""
    values = view.sorted_values
    if values is None:
        return None
    window = _kernel_window(values.dtype.kind, node, view.sorted_by)  # type: ignore[arg-type]
    if window is None:
        return None
    bounds, rest = window
    term_rows = _NO_TERM
    copied = None
    if rest is not None:
        rows = None if view.payload is None else single_term_rows(rest, view.payload)
        if rows is None:
            return None
        term_rows = rows
        if metric == "l2" and view.terms is not None:
            copied = view.terms.get(*single_term(rest))  # type: ignore[misc]
            if copied is not None and copied.num_rows != rows.shape[0]:  # built on other rows: not this term's
                copied = None
    keys = values.view(np.int64) if values.dtype.kind == "M" else values
    live = _EVERY_ROW_LIVE if view.live is None else view.live
    return (keys, *bounds, term_rows, rest is not None, live), copied


def _window_scan(view: SegmentView, window: tuple[tuple, TermGraph | None], limit: int, query: np.ndarray, k: int,
                 metric_code: int) -> tuple:  # fmt: skip
    """``window_topk_one`` of ``_window_args``' window (through its term graph's copy of the rows when
    it names one): ``(query_sq, rows, offsets, keys, distances)``."""
    args, copied = window
    if copied is None:
        return window_topk_one(*args, limit, view.vectors, view.norms, query, view.ids, k, metric_code)
    keys, low, low_open, has_low, high, high_open, has_high, _, _, live = args
    return window_copy_topk_one(keys, low, low_open, has_low, high, high_open, has_high, copied.rows, live, limit,
                                copied.index.vectors, query, view.ids, k)  # fmt: skip


def _row_limit(view: SegmentView, node: Node, dim: int, ef: int, m: int, exact: bool, k: int,
               oversampling: float, scattered: bool) -> int:  # fmt: skip
    """The most rows ``node`` allows in ``view`` that the lane scans in one kernel call on this thread
    without asking the planner, kept with the view per settings (pricing it costs more than a selective
    scan): every row exact search scans, else every row the planner would scan however it weighed the
    graphs it may walk for ``node`` (term and range graphs only for a filter reading their fields), and
    the view's codes' scan and walks when it has codes. ``scattered``: the filter is not a window on the
    sort column, so its rows lie spread over the segment (``planner.scan_row_ns``)."""
    serial = PARALLEL_SCAN_MIN_ROWS - 1
    if exact:
        return serial
    codes = view.codes
    if view.graph is None and codes is None:
        return serial
    through_terms = view.graph is not None and any(reads_term_graphs(view, node))
    key = ("row_limit", dim, ef, m, k, oversampling, through_terms, scattered)
    limit = view.unfiltered_plans.get(key)
    if limit is not None:
        return limit
    tree_rows = None if view.tree is None else view.tree.smallest_graph_rows
    # term graphs and range runs are walked only for a filter reading their fields; over the codes where
    # the tree's buckets are, for the sq8 codes the lane serves (``search.plan_view``)
    terms = view.terms.smallest_graph_rows if through_terms and view.terms is not None else None
    if view.graph is None:  # nothing to walk: the planner weighs the codes' scan alone
        limit = codes_scan_limit(dim, serial, codes.kind, codes.codes.shape[1], k, oversampling, scattered)
    elif codes is not None:
        limit = coded_scan_limit(dim, ef, m, view.num_rows, tree_rows, view.num_rows, TREE_SPLIT_CALL_NS, codes.kind,
                                 codes.codes.shape[1], k, oversampling, scattered, terms)  # fmt: skip
    else:
        float_rows = view.num_rows if terms is None else min(view.num_rows, terms)
        smallest = float_rows if tree_rows is None else min(float_rows, tree_rows)
        limit = outright_scan_limit(dim, ef, m, smallest, TREE_SPLIT_CALL_NS, scattered=scattered)
    limit = min(serial, limit)
    _keep_plan(view, key, limit)
    return limit


def _query_is_sound(query: np.ndarray, sq: float, metric: str) -> bool:
    """Whether the kernel's squared norm shows a query the general checks accept; if it does not, those
    checks run (and raise, naming the fault)."""
    if squared_norm_accepted(sq, metric):
        return True
    to_queries(query, query.shape[0], metric, 1)
    return False


def _query_checked(query: np.ndarray, metric: str) -> bool:
    """``_query_is_sound`` by the query's compiled squared norm, for a path whose kernel does not check
    the query: a quarter of what ``to_queries`` costs a single query, which a selective scan notices."""
    return _query_is_sound(query, query_sq(query), metric)


def _walk(
    view: SegmentView, index: int, query: np.ndarray, k: int, ef: int, mask: np.ndarray | None, two_hop: bool,
    metric: str, rows: int,
) -> Hits | None:  # fmt: skip
    """The segment's graph walked for one query in one call that checks the query and names the hits;
    None when the walk fell short of k of the ``rows`` allowed (the general path rescans those)."""
    graph = view.graph
    assert graph is not None
    keyed = graph.search_one_keyed(query, view.ids, k, ef, mask, two_hop)
    if keyed is None:  # an inner-product graph: the general call and labelling
        if not _query_checked(query, metric):
            return None
        found, distances = graph.search_validated(query[None], k, ef, mask, two_hop=two_hop)
        hits = found_hits(view, index, found, distances)
    else:
        sq, found, ids, distances = keyed
        if not _query_is_sound(query, sq, metric):
            return None
        hits = Hits(found, ids, found, distances)  # the lane never gathers columns: no source index needed
    return None if found[0, min(k, rows) - 1] < 0 else hits


def _code_walk(
    view: SegmentView, query: np.ndarray, k: int, ef: int, oversampling: float, mask: np.ndarray | None,
    two_hop: bool, metric: str, rows: int,
) -> Hits | None:  # fmt: skip
    """The segment's graph walked over its sq8 codes for one query, the walk's candidates rescored, in
    one call that checks the query; None when it fell short of k of the ``rows`` allowed."""
    codes, graph = view.codes, view.graph
    assert codes is not None and graph is not None
    count = walk_candidates(codes.kind, max(k, math.ceil(k * oversampling)), ef)
    sq, found, ids, distances = graph.search_codes_rescored_keyed(
        codes, query, view.vectors, view.norms, view.ids, METRIC_CODES[metric], k, count, ef, mask, two_hop
    )
    if not _query_is_sound(query, sq, metric):
        return None
    return None if found[0, min(k, rows) - 1] < 0 else Hits(found, ids, found, distances)


def _code_scan(
    view: SegmentView, allowed: Allowed, query: np.ndarray, k: int, oversampling: float, metric: str
) -> Hits | None:
    """The allowed rows' sq8 codes scanned for one query, the best ``k x oversampling`` (as the general
    path asks) rescored, in one call that checks the query."""
    codes = view.codes
    assert codes is not None
    count = max(k, math.ceil(k * oversampling))
    sq, found, ids, distances = codes.scan_rescored_keyed(
        query, allowed.offsets, view.vectors, view.norms, view.ids, METRIC_CODES[metric], k, count
    )
    return Hits(found, ids, found, distances) if _query_is_sound(query, sq, metric) else None


def _keyed_hits(keyed: tuple | None, query: np.ndarray, k: int, metric: str, rows: int) -> Hits | None:
    """Hits of a ``search_one_keyed`` walk (the query checked by its squared norm); None when it fell
    short of k of the ``rows`` allowed."""
    assert keyed is not None  # a float graph of a collection whose metric is not ip
    sq, found, ids, distances = keyed
    if not _query_is_sound(query, sq, metric) or found[0, min(k, rows) - 1] < 0:
        return None
    return Hits(found, ids, found, distances)  # the lane never gathers columns: no source index needed


def _postfilter_walk(
    view: SegmentView, allowed: Allowed, option, query: np.ndarray, k: int, ef: int, metric: str, rows: int
) -> Hits | None:
    """A window-tree postfilter (the bucket or straddle bucket holding every allowed row, walked with
    the filter as its mask) in one call that checks the query and names the hits, as ``_walk`` walks
    the segment graph; None when the walk fell short of k of the ``rows`` allowed. Not for an
    inner-product collection (its graphs' hits are rescored after the walk)."""
    _, level, number, two_hop, straddle = option.detail
    tree = view.tree
    bucket = tree.straddle(level, number) if straddle else tree.bucket(level, number)
    start, stop = bucket.start, bucket.stop
    mask = allowed.mask_within(view.num_rows, start, stop)
    keyed = bucket.index.search_one_keyed(query, view.ids, k, ef, mask, two_hop, base=start)
    return _keyed_hits(keyed, query, k, metric, rows)


def _term_walk(
    view: SegmentView, piece: TermPiece, query: np.ndarray, k: int, ef: int, metric: str, rows: int
) -> Hits | None:  # fmt: skip
    """A term or range graph, the one piece of its option, walked in one call that checks the query and
    names the hits; None when the walk fell short of k of the ``rows`` allowed. Not for an
    inner-product collection."""
    graph = piece.graph
    assert graph is not None
    keyed = graph.index.search_one_keyed(query, view.ids, k, ef, piece.mask, piece.how == "two_hop", rows=graph.rows)
    return _keyed_hits(keyed, query, k, metric, rows)


def _term_code_walk(
    view: SegmentView, piece: TermPiece, walk: CodeWalk, query: np.ndarray, k: int, ef: int, metric: str, rows: int
) -> Hits | None:  # fmt: skip
    """A term or range graph, the one piece of its option, walked over its nodes' sq8 codes and the
    walk's candidates rescored on the segment's float rows, in one call that checks the query; None when
    it fell short of k of the ``rows`` allowed."""
    graph = piece.graph
    assert graph is not None and view.terms is not None and view.codes is not None
    codes = view.terms.node_codes(graph, view.codes)
    walk_ef = max(ef, walk.count)
    sq, found, ids, distances = graph.index.search_codes_rescored_keyed(
        codes, query, view.vectors, view.norms, view.ids, METRIC_CODES[metric], k, walk.candidates(walk_ef), walk_ef,
        piece.mask, piece.how == "two_hop", rows=graph.rows,
    )  # fmt: skip
    if not _query_is_sound(query, sq, metric):
        return None
    return None if found[0, min(k, rows) - 1] < 0 else Hits(found, ids, found, distances)


def _whole_segment(
    view: SegmentView, index: int, query: np.ndarray, k: int, ef: int, m: int, exact: bool, metric: str
) -> tuple[str, Hits | None] | None:
    """An unfiltered search of one segment as the planner would run it (scan or graph walk), or None
    when the general path must run it (a parallel scan, or a walk that fell short of k rows). Checks
    the query (raising the general path's errors)."""
    rows = view.live_count
    key = ("whole", ef, m, query.shape[0], exact)
    strategy = view.unfiltered_plans.get(key)
    if strategy is None:  # the planner's rule, once per view and settings
        strategy = whole_segment_strategy(rows, None if view.graph is None else view.num_rows, ef, m, query.shape[0],
                                          exact)  # fmt: skip
        _keep_plan(view, key, strategy)
    if strategy in (EMPTY, EXACT_SCAN):
        if not _query_checked(query, metric):
            return None
        if strategy == EMPTY:
            return EMPTY, None
        if rows >= PARALLEL_SCAN_MIN_ROWS:
            return None
        return EXACT_SCAN, scan_rows(view, index, view.live_offsets, query[None], k, METRIC_CODES[metric])
    assert strategy in (HNSW, HNSW_TWO_HOP)
    hits = _walk(view, index, query, k, ef, view.live, strategy == HNSW_TWO_HOP, metric, rows)
    return None if hits is None else (strategy, hits)


def _unfiltered(
    view: SegmentView, index: int, query: np.ndarray, k: int, ef: int, m: int, exact: bool, metric: str,
    oversampling: float, checked: bool,
) -> tuple[str, Hits | None] | None:  # fmt: skip
    """Every live row of one segment searched as the planner would, its plan kept with the view: a scan
    or graph walk, or with sq8 codes a walk over them; None when the general path must run it. Checks
    the query unless ``checked`` (raising the general path's errors)."""
    if view.codes is None or exact:
        return _whole_segment(view, index, query, k, ef, m, exact, metric)
    every, planned = _unfiltered_plan(view, k, ef, m, query.shape[0], oversampling)
    outcome = _planned(view, index, every, query, k, ef, m, metric, oversampling, planned)
    unchecked = outcome is not None and not checked and outcome[0] not in _CALLS_THAT_CHECK
    return None if unchecked and not _query_checked(query, metric) else outcome


#: Settings (k, ef, ...) whose unfiltered plans one view keeps; past this many it starts afresh.
UNFILTERED_PLANS_KEPT = 64


def _unfiltered_plan(view: SegmentView, k: int, ef: int, m: int, dim: int, oversampling: float) -> tuple:
    """``plan_view`` for every live row of ``view`` (its allowed rows and the plan), once per view and
    settings: planning costs several microseconds of a single search."""
    key = (k, ef, m, dim, oversampling)
    found = view.unfiltered_plans.get(key)
    if found is None:
        allowed = allowed_rows(view, None)
        found = (allowed, plan_view(view, allowed, k=k, ef=ef, m=m, dim=dim, exact=False, oversampling=oversampling,
                                    rescore=True, queries=1))  # fmt: skip
        _keep_plan(view, key, found)
    return found


def _keep_plan(view: SegmentView, key: tuple, plan: object, kept: dict | None = None) -> None:
    kept = view.unfiltered_plans if kept is None else kept
    if len(kept) >= UNFILTERED_PLANS_KEPT:
        kept.clear()
    kept[key] = plan


def _filter_plan(view: SegmentView, allowed: Allowed, node: Node, k: int, ef: int, m: int, dim: int,
                 oversampling: float) -> tuple:  # fmt: skip
    """``plan_view`` for the rows ``node`` allows, kept with the view for the filter's next search: a
    repeated filter (a category, a tenant) skips pricing the window tree and the term graphs again."""
    key = (node, k, ef, m, dim, oversampling)
    found = view.filter_plans.get(key)
    if found is None:
        found = plan_view(view, allowed, k=k, ef=ef, m=m, dim=dim, exact=False, oversampling=oversampling,
                          rescore=True, queries=1, node=node)  # fmt: skip
        _keep_plan(view, key, found, view.filter_plans)
    return found


def _planned(
    view: SegmentView, index: int, allowed: Allowed, query: np.ndarray, k: int, ef: int, m: int, metric: str,
    oversampling: float, planned: tuple | None = None, node: Node | None = None,
) -> tuple[str, Hits] | None:  # fmt: skip
    """A filter allowing more rows than an outright scan, or any search of a segment with sq8 codes: the
    planner chooses, and the lane runs its choice when that is a serial scan, a masked or two-hop walk
    of the segment graph (over its floats or its sq8 codes), or a window-tree search (the general path
    would only plan it again). ``planned`` is the plan when the caller has it already."""
    if planned is None:
        planned = _filter_plan(view, allowed, node, k, ef, m, query.shape[0], oversampling)
    plan, option = planned
    rows = allowed.count
    if plan.strategy == EMPTY:
        return EMPTY, None
    if plan.strategy == EXACT_SCAN and rows < PARALLEL_SCAN_MIN_ROWS:
        return EXACT_SCAN, scan_rows(view, index, allowed.offsets, query[None], k, METRIC_CODES[metric])
    if option is not None and plan.strategy in WINDOW_STRATEGIES:
        walk = code_walk(view, k, oversampling, True)  # over codes where _tree_options priced it so
        if walk is None and option.detail[0] == "postfilter" and metric != "ip":
            hits = _postfilter_walk(view, allowed, option, query, k, ef, metric, rows)
            return None if hits is None else (plan.strategy, hits)
        hits = run_tree_option(view, index, allowed, option, query[None], k, ef, METRIC_CODES[metric], walk)
        return None if hits.ids[0, min(k, rows) - 1] < 0 else (plan.strategy, hits)
    if plan.strategy in (TERM_GRAPH, RANGE_GRAPH) and option is not None:
        _, pieces, _, walk = option.detail
        if len(pieces) == 1 and pieces[0].coded:
            hits = _term_code_walk(view, pieces[0], walk, query, k, ef, metric, rows)
            return None if hits is None else (plan.strategy, hits)
        if len(pieces) == 1 and pieces[0].how != "scan" and metric != "ip":
            hits = _term_walk(view, pieces[0], query, k, ef, metric, rows)
            return None if hits is None else (plan.strategy, hits)
        hits = run_term_option(view, index, option, query[None], k, ef, METRIC_CODES[metric])
        return None if hits.ids[0, min(k, rows) - 1] < 0 else (plan.strategy, hits)
    if plan.strategy == QUANTIZED_SCAN and option is not None and view.codes is not None:
        found = _code_scan(view, allowed, query, k, oversampling, metric)
        return None if found is None else (QUANTIZED_SCAN, found)
    # a filter that cuts no live row walks as unfiltered search does: no mask to check
    every = allowed.found_by == "all_live_rows" or (view.live is None and allowed.covers(view.num_rows))
    mask = view.live if every else allowed.mask(view.num_rows)
    if plan.strategy == QUANTIZED_HNSW and option is not None:
        found = _code_walk(view, query, k, ef, oversampling, mask, option.detail[1], metric, rows)
        return None if found is None else (QUANTIZED_HNSW, found)
    if plan.strategy not in (HNSW, HNSW_TWO_HOP) or option is None or option.detail is not None:
        return None
    hits = _walk(view, index, query, k, ef, mask, plan.strategy == HNSW_TWO_HOP, metric, rows)
    return None if hits is None else (plan.strategy, hits)


def search_one(
    views: Sequence[SegmentView],
    query: np.ndarray,
    k: int,
    node: Node | None,
    *,
    metric: str,
    ef: int,
    m: int,
    exact: bool,
    counters: Counter,
    oversampling: float = 1.0,
) -> SearchResult | None:
    """The top-k of one float32 query [dim] over the rows ``node`` allows (every live row for None), when
    the planner would scan each segment serially or walk its graph (over its floats or sq8 codes;
    ``oversampling`` is the collection's); None when it might do something else (the caller then takes
    the general path)."""
    if not views:
        return None
    metric_code = METRIC_CODES[metric]
    dim = query.shape[0]
    search_ef = max(ef, k)
    hits: list[Hits] = []
    strategies: list[str] = []
    checked = False
    for index, view in enumerate(views):
        coded = view.codes is not None and not exact
        if coded and view.codes.kind != "sq8":  # type: ignore[union-attr]
            return None
        if node is None:
            outcome = _unfiltered(view, index, query, k, search_ef, m, exact, metric, oversampling, checked)
            if outcome is None:
                return None
            checked = True
            strategies.append(outcome[0])
            if outcome[1] is not None:
                hits.append(outcome[1])
            continue
        window = _window_args(view, node, metric)
        # a window AND a term is priced as a run: its kernel finds and scores the rows in one call, where
        # the planner prices the same rows as scattered (past 784 dimensions it may take the codes)
        limit = _row_limit(view, node, dim, search_ef, m, exact, k, oversampling, window is None)
        allowed = None
        if window is not None:
            sq, rows, offsets, ids, distances = _window_scan(view, window, limit, query, k, metric_code)
            if not checked:
                if not _query_is_sound(query, sq, metric):
                    return None
                checked = True
            if rows >= 0:  # scanned
                if rows:
                    hits.append(Hits(offsets, ids, offsets, distances))  # the lane never gathers: no source needed
                strategies.append(EXACT_SCAN if rows else EMPTY)
                continue
            # too many rows to scan outright: the kernel handed back the window's live rows to plan with,
            # or the bounds of a run of rows
            if rows == -2:
                lo, hi = int(offsets[0, 0]), int(offsets[0, 1])
                if lo == 0 and hi == view.num_rows:  # every row (a run has no deletes): unfiltered search
                    outcome = _unfiltered(view, index, query, k, search_ef, m, exact, metric, oversampling, True)
                    if outcome is None:
                        return None
                    strategies.append(outcome[0])
                    if outcome[1] is not None:
                        hits.append(outcome[1])
                    continue
                allowed = Allowed.run(lo, hi)
            else:
                allowed = Allowed(offsets[0], "payload_index" if window[0][-2] else "window_slice")
        if not checked:
            if not _query_checked(query, metric):  # raises for a query the general path would refuse
                return None
            checked = True
        if allowed is None:
            allowed = allowed_rows(view, node)
        rows = allowed.count
        if rows <= limit:
            if rows:
                hits.append(scan_rows(view, index, allowed.offsets, query.reshape(1, dim), k, metric_code))
            strategies.append(EXACT_SCAN if rows else EMPTY)
            continue
        if exact:
            return None  # a scan of this many rows runs on every core: the general path's
        outcome = _planned(view, index, allowed, query, k, search_ef, m, metric, oversampling, node=node)
        if outcome is None:
            return None
        strategies.append(outcome[0])
        if outcome[1] is not None:
            hits.append(outcome[1])
    for strategy in strategies:
        counters[strategy] += 1
    counters[LANE_COUNTER] += 1
    if not hits:
        return SearchResult(np.full((1, k), -1, dtype=np.int64), np.full((1, k), np.inf, dtype=np.float32),
                            None, None, EMPTY)  # fmt: skip
    best = hits[0] if len(hits) == 1 else merge_hits(hits, 1, k)  # one segment's hits are k wide, in order
    ran = {s for s in strategies if s != EMPTY}
    return SearchResult(best.ids, best.distances, None, None, ran.pop() if len(ran) == 1 else "mixed")
