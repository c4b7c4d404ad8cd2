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
  the two it cuts with their part as the mask (or scanned, when that is cheaper).

The unit costs were measured on this project's machine (git-commits 50k rows, 384-d, one thread): a
scanned row 30-160 ns (in cache / from memory), a traversal distance 75 ns, a two-hop distance 145 ns
(it pays for the second hop's bookkeeping), and about 5 us per graph search call beyond its distances.
Graph strategies also have recall floors that costs do not capture: below 3% of a graph's rows even
two-hop edges fall apart (movies 50k, ef=64: recall@10 0.88-0.96 at 1%, 0.18-0.65 at 0.3%).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

EXACT_SCAN = "exact_scan"
HNSW = "hnsw"
HNSW_TWO_HOP = "hnsw_two_hop"
WINDOW_POSTFILTER = "window_postfilter"
WINDOW_COVER = "window_cover"
WINDOW_THREE_SPLIT = "window_three_split"
EMPTY = "empty"
GRAPH_STRATEGIES = (HNSW, HNSW_TWO_HOP, WINDOW_POSTFILTER, WINDOW_COVER, WINDOW_THREE_SPLIT)

EXACT_NS_PER_ROW = 60.0
TRAVERSE_NS_PER_DISTANCE = 75.0
TWO_HOP_NS_PER_DISTANCE = 145.0
GRAPH_CALL_NS = 5_000.0
#: Distance computations of a graph search per unit of ef and link: an expanded node evaluates its
#: unvisited out-links, about half of its 2m layer-0 links once the search has warmed up; a two-hop
#: expansion scores allowed rows among its links and their links, about 2m.
TRAVERSE_WORK_PER_EF_LINK = 0.5
TWO_HOP_WORK_PER_EF_LINK = 1.0
#: Below this allowed fraction a traversal wanders through rows it may not return; two-hop takes over
#: (the costs say the same from about 25%; movies 50k: two-hop 2.5-10x faster at 3-10%).
TRAVERSE_MIN_ALLOWED_FRACTION = 0.2
#: Below this the allowed rows fall apart even with two-hop edges; no graph strategy is offered.
TWO_HOP_MIN_ALLOWED_FRACTION = 0.03


@dataclass(slots=True)
class SegmentPlan:
    segment: str
    strategy: str
    allowed_rows: int
    live_rows: int
    rows_found_by: str  # all_live_rows | window_slice | payload_index | evaluated
    reason: str
    estimated_us: float = 0.0
    alternatives_us: dict[str, float] = field(default_factory=dict)  # what the other strategies would cost

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Option:
    """One way to search a segment, with its estimated cost; ``detail`` is what the executor needs."""

    strategy: str
    cost_ns: float
    reason: str
    detail: Any = None


def exact_cost(rows: int) -> float:
    return EXACT_NS_PER_ROW * rows


def unfiltered_graph_cost(ef: int, m: int, live_fraction: float = 1.0) -> float:
    """A graph search that may return nearly every row (deleted rows aside)."""
    return GRAPH_CALL_NS + TRAVERSE_NS_PER_DISTANCE * TRAVERSE_WORK_PER_EF_LINK * 2 * m * ef / max(live_fraction, 1e-9)


def masked_graph_option(allowed: int, graph_rows: int, ef: int, m: int) -> tuple[str, float] | None:
    """The better of traversal and two-hop in a graph of ``graph_rows`` nodes of which ``allowed``
    pass, or None when too few pass for either to keep its recall."""
    fraction = allowed / max(graph_rows, 1)
    if fraction < TWO_HOP_MIN_ALLOWED_FRACTION:
        return None
    if fraction < TRAVERSE_MIN_ALLOWED_FRACTION:
        return HNSW_TWO_HOP, GRAPH_CALL_NS + TWO_HOP_NS_PER_DISTANCE * TWO_HOP_WORK_PER_EF_LINK * 2 * m * ef
    return HNSW, GRAPH_CALL_NS + TRAVERSE_NS_PER_DISTANCE * TRAVERSE_WORK_PER_EF_LINK * 2 * m * ef / fraction


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
    tree_options: list[Option] | None = None,
) -> tuple[SegmentPlan, Option | None]:
    """Choose the strategy for one segment given how many of its rows the filter allows.

    ``graph_rows`` is the node count of the segment's graph, or None when it has none (yet);
    ``tree_options`` are the window tree's priced options for this filter. Returns the plan and the
    chosen option (None for exact and empty plans).
    """
    if allowed_rows == 0:
        return SegmentPlan(name, EMPTY, 0, live_rows, rows_found_by, "no live row matches the filter"), None
    exact = Option(EXACT_SCAN, exact_cost(allowed_rows), f"exact scan of {allowed_rows} rows")
    if exact_requested:
        return SegmentPlan(name, EXACT_SCAN, allowed_rows, live_rows, rows_found_by, "exact=True requested"), None
    if graph_rows is None:
        reason = "segment has no graph (too small, or still being built); exact scan of the allowed rows"
        return SegmentPlan(name, EXACT_SCAN, allowed_rows, live_rows, rows_found_by, reason, exact.cost_ns / 1e3), None
    options = [exact]
    root = masked_graph_option(allowed_rows, graph_rows, ef, m)
    fraction = allowed_rows / graph_rows
    if root is not None:
        options.append(Option(root[0], root[1], f"filter allows {fraction:.1%} of the graph's rows"))
    options += tree_options or []
    best = min(options, key=lambda o: o.cost_ns)
    alternatives = {o.strategy: round(o.cost_ns / 1e3, 1) for o in options if o is not best}
    if best is exact and root is None and not tree_options:
        reason = f"filter allows {fraction:.2%} of the graph's rows, below {TWO_HOP_MIN_ALLOWED_FRACTION:.0%}"
    else:
        reason = f"{best.reason}: ~{best.cost_ns / 1e3:.0f} us, the cheapest estimate"
    plan = SegmentPlan(
        name, best.strategy, allowed_rows, live_rows, rows_found_by, reason, round(best.cost_ns / 1e3, 1), alternatives
    )
    return plan, (None if best is exact else best)
