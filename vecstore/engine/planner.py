"""Per-segment search planning: which strategy runs on a segment, and why.

Every decision is recorded (``SegmentPlan``) so ``explain=True`` and the collection's stats can say
which path ran. The planner prices each strategy that applies in estimated nanoseconds and takes the
cheapest:

- ``exact_scan``: the allowed rows, scanned;
- ``hnsw``: the segment graph, every row traversed, the allowed rows as the mask (broad filters);
- ``hnsw_two_hop``: the segment graph walking only allowed rows, through two-hop edges (narrower ones);
- ``window_postfilter``: the smallest window-tree bucket holding every allowed row, searched as above;
- ``window_cover``: a window answered by the tree buckets inside it (unfiltered) plus its ragged ends;
- ``window_three_split``: the children of the smallest bucket holding a window: whole ones unfiltered,
  the two it cuts with their part as the mask (or scanned, when that is cheaper);
- ``term_graph``: the graphs of the terms whose rows hold every allowed row (a category, an IN-list,
  a tag), each unmasked, masked or scanned, whichever is cheaper;
- ``range_graph``: the graph of the run of a numeric attribute's value order that holds every allowed
  row (a range on that attribute), masked to them.

The unit costs were measured through the engine on this project's machine, one thread, 20k-row
segments of git-commits (384-d) and fashion-mnist (784-d), m=16, ef=64: a scanned row costs about
0.075 ns per dimension (23-32 ns at 384-d, 60-64 ns at 784-d) plus 7 us per scan call; a graph
distance about 55 ns whatever the dimension (memory latency dominates), two-hop searches about 50 ns
per modelled distance growing with the allowed share (it scores more of each neighbourhood), and a
graph call about 10 us beyond its distances. Past 784 dimensions rows cost more by their width: a
graph distance, and a scanned row when the rows lie spread over the segment (a category's, candidates
to rescore; ``scan_row_ns``), are bound by bandwidth. Graph strategies also have recall floors that
costs do not capture: below about 48 / (2m)^2 of a graph's rows (4.7% at m=16) two-hop edges fall apart
(movies 50k, m=16, ef=64: recall@10 0.88-0.96 at 1%, 0.18-0.65 at 0.3%).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EXACT_SCAN = "exact_scan"
HNSW = "hnsw"
HNSW_TWO_HOP = "hnsw_two_hop"
WINDOW_POSTFILTER = "window_postfilter"
WINDOW_COVER = "window_cover"
WINDOW_THREE_SPLIT = "window_three_split"
QUANTIZED_SCAN = "quantized_scan"
QUANTIZED_HNSW = "quantized_hnsw"
TERM_GRAPH = "term_graph"
RANGE_GRAPH = "range_graph"
EMPTY = "empty"
WINDOW_STRATEGIES = (WINDOW_POSTFILTER, WINDOW_COVER, WINDOW_THREE_SPLIT)
GRAPH_STRATEGIES = (HNSW, HNSW_TWO_HOP, *WINDOW_STRATEGIES, TERM_GRAPH, RANGE_GRAPH)

EXACT_NS_PER_ROW_DIM = 0.075
EXACT_CALL_NS = 7_000.0
TRAVERSE_NS_PER_DISTANCE = 55.0
TWO_HOP_NS_PER_DISTANCE = 50.0
GRAPH_CALL_NS = 10_000.0
#: Quantised scans (flat over codes, one thread): a binary code scored by the 4-bit query about
#: 5.5 ns a row plus 0.1 ns a uint64 word (the row's bookkeeping, not its popcounts, dominates: 6.2 ns
#: a row at 384-d, 7.7 at 1536-d), after encoding the query at about 3 ns a dimension; PQ about
#: 0.35 ns per code byte plus 0.54 ns per centroid dimension for the query's table (fitted on
#: git-commits m=48 and jeopardy m=96).
QUANTIZED_CALL_NS = 5_000.0
#: A graph distance between binary codes costs about a float one at 384-d (memory latency dominates):
#: 58 ns per modelled distance on git-commits 50k and on jeopardy 9.8k alike (measured by Hamming;
#: the 4-bit query's four popcounts a word walked jeopardy at the same speed).
BINARY_GRAPH_DISTANCE_SCALE = 1.05
#: Above about 800 dimensions a float graph distance is bound by bandwidth, not latency: jeopardy
#: (1536-d, 9.8k rows, m=16) measured about 258 ns per modelled distance against 55 below: 0.27 ns a
#: dimension past ``HIGH_DIM_FROM``, scoring one row at a time.
HIGH_DIM_FROM = 784
#: A walk scores an expansion's float rows four at a time, their loads overlapping (``hnsw.score_rows``):
#: against one at a time (the calibration above), same graphs and queries alternated in one process,
#: 20k rows, m=16, ef 10-40: 1.08-1.22x the queries a second at 384-d, 1.15-1.27x at 784-d (two-hop
#: 1.0-1.14x), 1.53-1.63x at 1536-d (jeopardy). So a float graph distance costs 0.87 of the calibrated
#: one, and past ``HIGH_DIM_FROM`` it grows by 0.177 ns a dimension, not 0.27 (258 / 1.58 = 163 ns at
#: 1536-d). Walks over codes did not change (sq8 at 784 and 1536 bytes: 0.91-1.12x).
FLOAT_WALK_SCALE = 0.87
FLOAT_HIGH_DIM_NS_PER_DIM = 0.177
#: Above the same width a scan of rows scattered over the segment (a category's or an IN-list's rows
#: found by the payload index, the candidates a code search rescores) is bound by bandwidth too: jeopardy
#: (1536-d, 9.9k rows, one thread, exact scans through the engine) read `category =` rows (263 a query)
#: in 159 us and `category in (3)` rows (780) in 455 us, about 570 ns a row beyond the call against the
#: 115 the calibrated price says. Contiguous rows (a window on the sort column) stream from the hardware
#: prefetcher and keep the calibrated price (jeopardy windows of 8-160 rows: about 250 ns a row).
HIGH_DIM_SCATTERED_NS_PER_DIM = 0.6
BINARY_NS_PER_ROW = 5.5
BINARY_NS_PER_WORD = 0.1
BINARY_ENCODE_NS_PER_DIM = 3.0
#: Scalar (sq8) codes: a graph distance over a row's bytes costs about 0.6 of a float one from 128
#: dimensions up (one thread, 20k rows, m=16, ef 10-40: fashion-mnist 784-d and git-commits 384-d
#: walks both took 0.6 of the float walk's time; a random row's distance 99 against 240 ns at 784-d,
#: 46 against 130 at 384-d); below that the float row is small enough that codes save nothing
#: (32-d: 6.4 against 7.9 ns, and the walk's bookkeeping dominates).
SQ8_GRAPH_DISTANCE_SCALE = 0.6
SQ8_FROM_DIM = 128
#: Past ``HIGH_DIM_FROM`` bytes an sq8 code's graph distance grows by 0.06 ns a byte, about what a float
#: row's does per byte (0.177 ns per 4-byte value): jeopardy's sq8 collection (1536-d, 9.9k rows, one
#: thread, ef 10-28, equal recall) walked its codes at 1.35-1.55x the queries a second of its float
#: walk, rescoring included, and with 0.06 the estimates say 1.35-1.53x. The float rows' width term per
#: value (0.27 ns, and 0.177 since walks score four rows a loop) priced the codes' walk at or above
#: the float walk there, so the sq8 collection walked its floats.
SQ8_HIGH_DIM_NS_PER_BYTE = 0.06
#: A flat scan of sq8 codes: about 40 ns a row plus 0.08 ns a byte (20k rows: 54, 70 and 102 ns a row
#: at 128, 384 and 784 dimensions).
SQ8_NS_PER_ROW = 40.0
SQ8_NS_PER_BYTE = 0.08
SQ8_QUERY_NS_PER_DIM = 1.0
PQ_NS_PER_LOOKUP = 0.35
PQ_TABLE_NS_PER_DIM = 0.54
PQ_CENTROIDS = 256
#: Distance computations of a graph search per unit of ef and link: an expanded node evaluates its
#: unvisited out-links, about half of its 2m layer-0 links once the search has warmed up; a two-hop
#: expansion scores allowed rows among its links and their links, about 2m.
TRAVERSE_WORK_PER_EF_LINK = 0.5
TWO_HOP_WORK_PER_EF_LINK = 1.0
#: Below this allowed fraction a traversal wanders through rows it may not return; two-hop takes over
#: (the costs say the same from about 25%; movies 50k: two-hop 2.5-10x faster at 3-10%).
TRAVERSE_MIN_ALLOWED_FRACTION = 0.2
#: A traversal that keeps a fraction f of the rows costs about f^-0.7 unfiltered ones, not 1/f: most of
#: the rows it visits on the way are close to the query anyway. One thread, 20k rows, m=16, random
#: masks: git-commits (384-d) ef 40: 1.7x at f=0.5, 2.8x at 0.25, 6.1x at 0.1; ef 10: 1.5x, 2.4x,
#: 4.5x; fashion-mnist (784-d) ef 40: 1.5x, 2.4x, 4.5x; ef 10: 1.0x, 1.6x, 2.9x.
TRAVERSE_FRACTION_EXPONENT = 0.7
#: A traversal under a filter whose rows link to each other in the graph ``L`` times more often than
#: rows drawn at random would (a real category: ``filter_clustering``) costs about ``L`` times its
#: random-mask estimate: it must cross the rejected rows around the query to reach the allowed ones.
#: 20k rows, ef 20, one thread, measured / estimated relative to an unfiltered walk's: git-commits
#: repositories and directories (L 1.9-2.5) 1.75-3.3x, movies genres (L 1.1-1.15) 1.2-1.5x. Two-hop
#: walks, which step past rejected rows, measured at or below their estimate on the same filters, but
#: near a query outside the category's region they meet its share divided by ``L``: below the two-hop
#: floor they come back short and are rescanned (fashion-mnist classes, L 6-9, 10% of the rows: 18 of
#: 106 two-hop walks rescanned). So the floor is tested on the share divided by ``L``.
CLUSTERING_SAMPLE_ROWS = 64
#: Below this lift a filter is taken as unrelated to the vectors: a sample of a random label reads
#: 1 +- 0.1, and the movies genres (1.1-1.15) cost about what their estimate says.
CLUSTERED_MIN_LIFT = 1.5
#: A two-hop walk keeps its recall while a node reaches about this many allowed rows within two hops,
#: (2m)^2 x the allowed share; below that share no graph strategy is offered. Movies 50k at m=16, ef=64
#: held recall from a share of 3% (30 rows), but data in tight clusters needs more: 12k rows in 40
#: clusters, m=12, ef=64, 40 queries a filter, window-tree postfilters by rows reached: 24-30 mean
#: recall@10 0.95 (worst filter 0.85), 30-36 0.97 (0.88), 42-48 0.98 (0.93), 48-54 0.99 (0.94), 54-60
#: 0.99 (0.97). At 30 a test's random filter met 0.86. No strategy of the quick bench's sits between
#: 30 and 48 (m=16: shares 2.9% to 4.7%); on the full movies set (58k, m=16) two-hop walks there
#: cost recall: window 2^-6 at ef 20 read 0.912 with them, 0.954 scanning or postfiltering instead.
TWO_HOP_MIN_REACHABLE = 48.0
#: A single query's window-tree search in two or more pieces (cover, three-split) costs beyond its
#: kernels: the pieces are found, each is run and labelled, and their hits merged, all in Python. One
#: thread, 20k rows, 100 queries per window 2^-2 .. 2^-5, ef 10 and 40: a three-split ran 20-80 us
#: further above its modelled cost than a one-piece search (root walk, postfilter) did (fashion-mnist
#: 60-70, git-commits 20-65). A batch shares that work among its queries, so only the single-query
#: lane prices it.
TREE_SPLIT_CALL_NS = 50_000.0
#: A term-graph search in several pieces (an IN-list, contains any) costs about one search call more per
#: piece beyond the first, not a window tree's Python work: git-commits 20k, ef 40, one query at a time,
#: repo in ('curl', 'vim') ran in 162 us against 87 + 74 us for the two single-term searches. A batch
#: shares it among its queries.
TERM_PIECE_CALL_NS = 10_000.0


def two_hop_floor(m: int) -> float:
    """The smallest allowed share of a graph's rows a graph strategy is offered for."""
    return min(1.0, TWO_HOP_MIN_REACHABLE / (2 * m) ** 2)


@dataclass(slots=True)
class Option:
    """One way to search a segment, with its estimated cost; ``detail`` is what the executor needs.

    The reason is kept as a template and its values, formatted only when someone reads it: the
    planner runs for every query, and formatting costs more than planning."""

    strategy: str
    cost_ns: float
    why: str
    args: tuple = ()
    detail: Any = None

    @property
    def reason(self) -> str:
        return self.why.format(*self.args)


@dataclass(slots=True)
class SegmentPlan:
    """The strategy chosen for one segment, why (a template and its values), and what it beat."""

    segment: str
    strategy: str
    allowed_rows: int
    live_rows: int
    rows_found_by: str  # all_live_rows | window_slice | payload_index | evaluated
    why: str
    args: tuple = ()
    estimated_ns: float = 0.0
    alternatives: list[Option] = field(default_factory=list)  # what the other strategies would cost

    @property
    def reason(self) -> str:
        return self.why.format(*self.args)

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "strategy": self.strategy,
            "allowed_rows": self.allowed_rows,
            "live_rows": self.live_rows,
            "rows_found_by": self.rows_found_by,
            "reason": self.reason,
            "estimated_us": round(self.estimated_ns / 1e3, 1),
            "alternatives_us": {o.strategy: round(o.cost_ns / 1e3, 1) for o in self.alternatives},
        }


def scan_row_ns(dim: int, scattered: bool = False) -> float:
    """One row of an exact scan; ``scattered``: rows spread over the segment, not one contiguous run."""
    ns = EXACT_NS_PER_ROW_DIM * dim
    if scattered:
        ns += HIGH_DIM_SCATTERED_NS_PER_DIM * max(0, dim - HIGH_DIM_FROM)
    return ns


def exact_cost(rows: int, dim: int, scattered: bool = False) -> float:
    """An exact scan of ``rows`` rows in one call (``scan_row_ns``)."""
    return EXACT_CALL_NS + scan_row_ns(dim, scattered) * rows


def _wide_row_scale(width: int, ns_per_unit: float) -> float:
    """A graph distance over rows ``width`` values (or code bytes) wide relative to the calibrated one,
    by their bandwidth past ``HIGH_DIM_FROM``."""
    return 1.0 + ns_per_unit * max(0, width - HIGH_DIM_FROM) / TRAVERSE_NS_PER_DISTANCE


def float_distance_scale(dim: int) -> float:
    """A graph distance between float rows relative to the calibrated one (``TRAVERSE_NS_PER_DISTANCE``),
    scored four rows at a time (``FLOAT_WALK_SCALE``)."""
    return FLOAT_WALK_SCALE * _wide_row_scale(dim, FLOAT_HIGH_DIM_NS_PER_DIM)


def unfiltered_graph_cost(ef: int, m: int, live_fraction: float = 1.0, scale: float = 1.0) -> float:
    """A graph search that may return nearly every row (deleted rows aside); ``scale`` is the cost of
    one distance relative to the calibrated one."""
    work = TRAVERSE_WORK_PER_EF_LINK * 2 * m * ef / max(live_fraction, 1e-9)
    return GRAPH_CALL_NS + TRAVERSE_NS_PER_DISTANCE * scale * work


def _rows_within(budget_ns: float, dim: int, scattered: bool = False) -> int:
    """The most rows whose exact scan costs at most ``budget_ns``."""
    rows = max(0, int((budget_ns - EXACT_CALL_NS) / scan_row_ns(dim, scattered)))
    while rows > 0 and exact_cost(rows, dim, scattered) > budget_ns:  # the division may round either way
        rows -= 1
    while exact_cost(rows + 1, dim, scattered) <= budget_ns:
        rows += 1
    return rows


def scan_row_limit(dim: int, ef: int, m: int) -> int:
    """The most allowed rows ``plan_segment`` scans exactly, without weighing any graph strategy, in a
    segment with a graph and no codes: the rows whose scan costs no more than one plain graph search.
    (Computed per call, not cached: it is a few float operations, and costs may be recalibrated.)"""
    return _rows_within(unfiltered_graph_cost(ef, m, scale=float_distance_scale(dim)), dim)


def _fewest_rows(fraction: float, graph_rows: int) -> int:
    """The fewest allowed rows that are at least ``fraction`` of a graph of ``graph_rows`` (as
    ``masked_graph_option`` compares them)."""
    graph_rows = max(graph_rows, 1)
    rows = max(0, math.ceil(fraction * graph_rows))
    while rows > 0 and (rows - 1) / graph_rows >= fraction:
        rows -= 1
    while rows / graph_rows < fraction:
        rows += 1
    return rows


def outright_scan_limit(
    dim: int, ef: int, m: int, smallest_graph_rows: int, split_ns: float, scale: float | None = None,
    extra_ns: float = 0.0, scattered: bool = False,
) -> int:  # fmt: skip
    """The most allowed rows ``plan_segment`` scans however it weighs the graphs of a segment whose
    smallest graph, a window-tree bucket or the segment graph itself, has ``smallest_graph_rows`` nodes,
    walked at ``scale`` of the calibrated distance (float rows' by default: at least ``scan_row_limit``
    then) with ``extra_ns`` more per option (``coded_scan_limit``'s walks over codes). Every graph
    option costs at least:

    - a traversal, an unfiltered search, and it is offered only where the allowed rows are at least
      ``TRAVERSE_MIN_ALLOWED_FRACTION`` of its graph;
    - a two-hop walk, its call and distances at the smallest share it is offered for
      (``two_hop_floor``), below which no graph is walked at all;
    - a cover or three-split with a graph piece, an unfiltered search and ``split_ns`` (without one,
      the same rows scanned in two calls, dearer than one).

    ``scattered``: the filter's rows lie spread over the segment (``scan_row_ns``)."""
    scale = float_distance_scale(dim) if scale is None else scale
    unfiltered = unfiltered_graph_cost(ef, m, scale=scale) + extra_ns
    floor = two_hop_floor(m)
    two_hop = two_hop_cost(floor, ef, m, scale) + extra_ns
    pieces = unfiltered + split_ns
    walked_from = _fewest_rows(floor, smallest_graph_rows)
    traversed_from = _fewest_rows(TRAVERSE_MIN_ALLOWED_FRACTION, smallest_graph_rows)
    return max(
        _rows_within(unfiltered, dim, scattered),  # past it a traversal might win, wherever it is offered
        min(_rows_within(min(two_hop, pieces), dim, scattered), traversed_from - 1),  # no traversal
        min(_rows_within(pieces, dim, scattered), walked_from - 1),  # no walk of a masked graph: pieces only
    )


def coded_scan_limit(dim: int, ef: int, m: int, graph_rows: int, tree_rows: int | None, float_rows: int,
                     split_ns: float, kind: str, code_width: int, k: int, oversampling: float,
                     scattered: bool = False, term_rows: int | None = None) -> int:  # fmt: skip
    """``outright_scan_limit`` for a segment with ``kind`` codes, whose options ``plan_segment`` weighs
    as it prices them: the graphs walked over float rows (the smallest of ``float_rows`` nodes); the
    segment graph (``graph_rows`` nodes) walked over the codes at least at ``max(ef, k x oversampling)``
    after preparing the query; the window tree's buckets (the smallest of ``tree_rows``) and the term
    graphs and range runs (the smallest of ``term_rows``) likewise, plus the call that rescores their
    candidates, or over float rows where codes walk no cheaper (``code_walks.code_walk``). No row count
    past where a scan of the codes (``quantized_option``, rescoring included) undercuts the exact scan
    is scanned outright. Candidates' rescoring in a walk is left out of its price: the bound may only
    come out lower. ``scattered``: the filter's rows lie spread over the segment (``scan_row_ns``)."""
    code_scale = code_graph_scale(kind, code_width)
    walk_ef = max(ef, k, math.ceil(k * oversampling))
    query_ns = code_query_ns(kind, dim)
    over_codes = code_scale < float_distance_scale(dim)
    coded_rows = [rows for rows in (tree_rows, term_rows) if rows is not None]
    if not over_codes:
        float_rows, coded_rows = min([float_rows, *coded_rows]), []
    high = min(
        outright_scan_limit(dim, ef, m, float_rows, split_ns, scattered=scattered),
        outright_scan_limit(dim, walk_ef, m, graph_rows, split_ns, code_scale, query_ns, scattered),
    )
    if coded_rows:
        high = min(high, outright_scan_limit(dim, walk_ef, m, min(coded_rows), split_ns, code_scale,
                                             query_ns + EXACT_CALL_NS, scattered))  # fmt: skip
    return codes_scan_limit(dim, high, kind, code_width, k, oversampling, scattered)


def codes_scan_limit(dim: int, high: int, kind: str, code_width: int, k: int, oversampling: float,
                     scattered: bool = False) -> int:  # fmt: skip
    """The most rows, at most ``high``, whose exact scan costs no more than scanning their ``kind`` codes
    and rescoring the best (``quantized_option``): what ``plan_segment`` scans exactly where no graph is
    priced."""
    low = 0
    # the exact scan's cost less the code scan's is negative while the code scan rescores every row, and
    # affine in the rows after: the counts where the exact scan costs no more are a prefix, bisected
    while low < high:
        rows = (low + high + 1) >> 1
        if exact_cost(rows, dim, scattered) <= quantized_option(rows, kind, dim, code_width, k, oversampling,
                                                                True).cost_ns:  # fmt: skip
            low = rows
        else:
            high = rows - 1
    return low


def whole_segment_strategy(live_rows: int, graph_rows: int | None, ef: int, m: int, dim: int, exact: bool) -> str:
    """``plan_segment``'s strategy for an unfiltered search of a segment without codes, without building
    the plan: a single unfiltered query pays for every step it takes."""
    if live_rows == 0:
        return EMPTY
    if exact or graph_rows is None:
        return EXACT_SCAN
    exact_ns = exact_cost(live_rows, dim)
    scale = float_distance_scale(dim)
    if exact_ns <= unfiltered_graph_cost(ef, m, scale=scale):
        return EXACT_SCAN
    root = masked_graph_option(live_rows, graph_rows, ef, m, scale)
    if root is None or root[1] >= exact_ns:  # of equal costs plan_segment keeps the first: the scan
        return EXACT_SCAN
    return root[0]


def two_hop_cost(fraction: float, ef: int, m: int, scale: float = 1.0) -> float:
    """A two-hop walk of a graph whose allowed rows are ``fraction`` of its nodes."""
    work = TWO_HOP_WORK_PER_EF_LINK * 2 * m * ef * (1 + 2 * fraction)
    return GRAPH_CALL_NS + TWO_HOP_NS_PER_DISTANCE * scale * work


def masked_graph_option(allowed: int, graph_rows: int, ef: int, m: int, scale: float = 1.0) -> tuple[str, float] | None:
    """The better of traversal and two-hop in a graph of ``graph_rows`` nodes of which ``allowed``
    pass, or None when too few pass for either to keep its recall."""
    fraction = allowed / max(graph_rows, 1)
    if fraction < two_hop_floor(m):
        return None
    if fraction < TRAVERSE_MIN_ALLOWED_FRACTION:
        return HNSW_TWO_HOP, two_hop_cost(fraction, ef, m, scale)
    work = TRAVERSE_WORK_PER_EF_LINK * 2 * m * ef * fraction**-TRAVERSE_FRACTION_EXPONENT
    return HNSW, GRAPH_CALL_NS + TRAVERSE_NS_PER_DISTANCE * scale * work


def code_graph_scale(kind: str, code_width: int) -> float:
    """A graph distance over codes (``code_width``: uint64 words a binary code, bytes a PQ or sq8 code)
    relative to the calibrated float one."""
    if kind == "binary":
        return BINARY_GRAPH_DISTANCE_SCALE
    if kind == "sq8":
        if code_width < SQ8_FROM_DIM:
            return float_distance_scale(code_width)
        return SQ8_GRAPH_DISTANCE_SCALE * _wide_row_scale(code_width, SQ8_HIGH_DIM_NS_PER_BYTE)
    return 1.0 + PQ_NS_PER_LOOKUP * code_width / TRAVERSE_NS_PER_DISTANCE


def code_query_ns(kind: str, dim: int) -> float:
    """Preparing a query for its codes: the 4-bit encoding (binary), the offset and step (sq8) or the
    distance table (PQ)."""
    if kind == "binary":
        return BINARY_ENCODE_NS_PER_DIM * dim
    if kind == "sq8":
        return SQ8_QUERY_NS_PER_DIM * dim
    return PQ_TABLE_NS_PER_DIM * PQ_CENTROIDS * dim


def walk_candidates(kind: str, count: int, ef: int) -> int:
    """Rows a graph walk over ``kind`` codes hands to rescoring when ``count`` (k x oversampling) were
    asked for: scalar codes rescore every one of the walk's ef results (the walk found them anyway;
    rescoring them costs a fraction of the walk and recovers rows the codes ranked just below the k-th)."""
    return max(count, ef) if kind == "sq8" else count


def quantized_graph_option(
    allowed_rows: int,
    graph_rows: int,
    ef: int,
    m: int,
    kind: str,
    dim: int,
    code_width: int,
    k: int,
    oversampling: float,
    rescore: bool,
) -> Option | None:
    """The segment graph walked by code distances (ef at least the candidate count), then the
    candidates rescored exactly; None where a masked walk would lose its recall."""
    candidates = max(k, math.ceil(k * oversampling))
    walk_ef = max(ef, candidates)
    walk = masked_graph_option(allowed_rows, graph_rows, walk_ef, m, code_graph_scale(kind, code_width))
    if walk is None:
        return None
    if rescore:
        candidates = walk_candidates(kind, candidates, walk_ef)
    # rescoring is priced by the row: for one query it runs inside the walk's call, a batch shares its call
    rescoring = scan_row_ns(dim, scattered=True) * min(candidates, allowed_rows) if rescore else 0.0
    two_hop = walk[0] == HNSW_TWO_HOP
    how = "rescored" if rescore else "by their estimates, not rescored"
    why = (
        f"graph walked over {kind} codes{' through two-hop edges' if two_hop else ''} (ef {{}}), {{}} candidates {how}"
    )
    cost = walk[1] + code_query_ns(kind, dim) + rescoring
    return Option(QUANTIZED_HNSW, cost, why, (walk_ef, candidates), ("quantized_graph", two_hop))


def quantized_option(
    allowed_rows: int, kind: str, dim: int, code_width: int, k: int, oversampling: float, rescore: bool
) -> Option:
    """A scan of the allowed rows' codes (``code_width``: uint64 words a binary code, bytes a PQ code),
    then an exact rescoring of the best ``k x oversampling``."""
    candidates = min(allowed_rows, math.ceil(k * oversampling))
    if kind == "binary":
        scan = (BINARY_NS_PER_ROW + BINARY_NS_PER_WORD * code_width) * allowed_rows
    elif kind == "sq8":
        scan = (SQ8_NS_PER_ROW + SQ8_NS_PER_BYTE * code_width) * allowed_rows
    else:
        scan = PQ_NS_PER_LOOKUP * code_width * allowed_rows
    scan += code_query_ns(kind, dim)
    rescoring = exact_cost(candidates, dim, scattered=True) if rescore else 0.0  # the candidates lie anywhere
    how = "{} candidates rescored" if rescore else "{} candidates by their estimates, not rescored"
    why = f"{kind} codes of {{}} rows, {how}"
    return Option(QUANTIZED_SCAN, QUANTIZED_CALL_NS + scan + rescoring, why, (allowed_rows, candidates), ("quantized",))


def _lift_may_matter(root: tuple[str, float], fraction: float, others_ns: float, m: int) -> bool:
    """Whether the filter's clustering could change the choice, so is worth its sample: a lift (at most
    1 / fraction, every link of an allowed row staying inside) only makes the segment-graph walk dearer
    (masked) or withdraws it (two-hop), so it matters only where that walk would otherwise win, and not
    where it wins even at the largest lift."""
    strategy, cost = root
    if cost >= others_ns:
        return False
    if strategy == HNSW:
        return cost / fraction >= others_ns
    return fraction * fraction < two_hop_floor(m)


def _walk_kind(code_walk: Option) -> str:
    """HNSW or HNSW_TWO_HOP: how a ``quantized_graph_option`` crosses the segment graph."""
    return HNSW_TWO_HOP if code_walk.detail[1] else HNSW


def _lifted_cost(strategy: str, cost_ns: float, fraction: float, lift: float, m: int) -> float | None:
    """A walk of the segment graph (over floats or codes) under a filter of ``lift``: a traversal ``lift``
    times dearer, a two-hop walk at its price but withdrawn (None) below its floor."""
    if strategy == HNSW:
        return cost_ns * lift
    return cost_ns if fraction / lift >= two_hop_floor(m) else None


def _clustered_code_walk(code_walk: Option, fraction: float, lift: float, m: int) -> Option | None:
    """``_lifted_cost`` for a walk over codes (the whole option, rescoring included: a small share of it).
    Measured: fashion-mnist `class in (2)` (20% of the rows, lift 6-9) walked over sq8 codes ran 2,743
    queries a second at recall 0.95 where the classes' term graphs, the float collection's choice, ran
    6,764."""
    kind = _walk_kind(code_walk)
    cost = _lifted_cost(kind, code_walk.cost_ns, fraction, lift, m)
    if cost is None:
        return None
    if kind == HNSW_TWO_HOP:  # kept at its price
        return code_walk
    why = code_walk.why + "; filter linked {:.1f}x more to itself than random rows"
    return Option(code_walk.strategy, cost, why, (*code_walk.args, lift), code_walk.detail)


def plan_segment(
    name: str,
    allowed_rows: int,
    live_rows: int,
    rows_found_by: str,
    *,
    exact_requested: bool,
    graph_rows: int | None,
    ef: int,
    m: int,
    dim: int,
    tree_options: Callable[[], list[Option]] | None = None,
    quantized: Option | None = None,
    quantized_graph: Option | None = None,
    clustering: Callable[[], float] | None = None,
    code_walk_floor_ns: float | None = None,
) -> tuple[SegmentPlan, Option | None]:
    """Choose the strategy for one segment given how many of its rows the filter allows.

    ``graph_rows`` is the node count of the segment's graph, or None when it has none (yet);
    ``tree_options`` prices the window tree's options for this filter (called only when graphs are
    priced at all: most selective filters never pay for it), ``quantized`` the scan of
    the segment's codes when it has some, ``clustering`` how much more the allowed rows link to each
    other than random ones (a traversal of the segment graph is priced that much dearer; called only
    when one is priced). ``code_walk_floor_ns``: the least a graph of ``tree_options`` walked over codes
    costs, when they walk over codes. Returns the plan and the chosen option (None for exact and empty
    plans).
    """
    if allowed_rows == 0:
        return SegmentPlan(name, EMPTY, 0, live_rows, rows_found_by, "no live row matches the filter"), None
    # a category's rows (payload index) or an evaluated filter's lie spread over the segment; a window's are a run
    exact_ns = exact_cost(allowed_rows, dim, scattered=rows_found_by in ("payload_index", "evaluated"))
    if exact_requested:
        return SegmentPlan(name, EXACT_SCAN, allowed_rows, live_rows, rows_found_by, "exact=True requested"), None
    if quantized is None and quantized_graph is None:  # the common selective filter: nothing to weigh
        if graph_rows is None:
            why, args = "segment has no graph (too small, or still being built); exact scan of the allowed rows", ()
            return SegmentPlan(name, EXACT_SCAN, allowed_rows, live_rows, rows_found_by, why, args, exact_ns), None
        if exact_ns <= unfiltered_graph_cost(ef, m, scale=float_distance_scale(dim)):
            why, args = "exact scan of {} rows is cheaper than any graph search", (allowed_rows,)
            return SegmentPlan(name, EXACT_SCAN, allowed_rows, live_rows, rows_found_by, why, args, exact_ns), None
    options = [Option(EXACT_SCAN, exact_ns, "exact scan of {} rows", (allowed_rows,))]
    if quantized is not None:
        options.append(quantized)
    scans_ns = min(o.cost_ns for o in options)
    # graphs are priced only when a scan costs more than one plain graph search
    scale = float_distance_scale(dim)
    graph_floor = unfiltered_graph_cost(ef, m, scale=scale)  # no float graph walk costs less
    if quantized_graph is not None:
        graph_floor = min(graph_floor, quantized_graph.cost_ns)
    if code_walk_floor_ns is not None:  # a smaller graph walked over codes may cost less than either
        graph_floor = min(graph_floor, code_walk_floor_ns)
    lift = 1.0  # sampled only where a walk is priced; read again by the reason below
    if graph_rows is not None and scans_ns > graph_floor:
        root = masked_graph_option(allowed_rows, graph_rows, ef, m, scale)
        if tree_options is not None:
            options += tree_options()
        if root is not None:
            fraction = allowed_rows / graph_rows
            others_ns = min(o.cost_ns for o in options)
            # the codes' walk crosses the same graph under the same filter: a lift weighs on it alike
            walks = (
                [root] if quantized_graph is None else [root, (_walk_kind(quantized_graph), quantized_graph.cost_ns)]
            )
            if clustering is not None and any(_lift_may_matter(w, fraction, others_ns, m) for w in walks):
                lift = clustering()
            if lift >= CLUSTERED_MIN_LIFT:
                why = "filter allows {:.1%} of the graph's rows, linked {:.1f}x more to each other than random rows"
                cost = _lifted_cost(root[0], root[1], fraction, lift, m)
                if cost is not None:
                    options.append(Option(root[0], cost, why, (fraction, lift)))
                if quantized_graph is not None:
                    quantized_graph = _clustered_code_walk(quantized_graph, fraction, lift, m)
            else:
                options.append(Option(root[0], root[1], "filter allows {:.1%} of the graph's rows", (fraction,)))
        if quantized_graph is not None:
            options.append(quantized_graph)
    best = min(options, key=lambda o: o.cost_ns)
    alternatives = [o for o in options if o is not best]
    if len(options) > 1:
        why, args = "{0.reason}: ~{1:.0f} us, the cheapest estimate", (best, best.cost_ns / 1e3)
    elif graph_rows is None:
        why, args = "segment has no graph (too small, or still being built); exact scan of the allowed rows", ()
    elif scans_ns <= graph_floor:
        why, args = "exact scan of {} rows is cheaper than any graph search", (allowed_rows,)
    elif lift >= CLUSTERED_MIN_LIFT:  # a walk was priced, and the lift withdrew it
        fraction = allowed_rows / graph_rows
        why = (
            "filter allows {:.2%} of the graph's rows, linked {:.1f}x more to each other than random rows: "
            "{:.2%} near a query, below {:.1%} (m={})"
        )
        args = (fraction, lift, fraction / lift, two_hop_floor(m), m)
    else:
        fraction = allowed_rows / graph_rows
        why, args = "filter allows {:.2%} of the graph's rows, below {:.1%} (m={})", (fraction, two_hop_floor(m), m)
    plan = SegmentPlan(
        name, best.strategy, allowed_rows, live_rows, rows_found_by, why, args, best.cost_ns, alternatives
    )
    return plan, (None if best.strategy == EXACT_SCAN else best)
