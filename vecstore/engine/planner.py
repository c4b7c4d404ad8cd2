"""Per-segment search planning: which strategy runs on a segment, and why.

Every decision is recorded (``SegmentPlan``) so ``explain=True`` and the collection's stats can say
which path ran. A segment is searched by an exact scan of its allowed rows, or through its HNSW graph:
with the allowed rows as a mask checked on results while every row is traversed (broad filters), or
walking only the allowed rows through two-hop edges (narrower filters). The choice compares estimated
distance computations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EXACT_SCAN = "exact_scan"
HNSW = "hnsw"
HNSW_TWO_HOP = "hnsw_two_hop"
EMPTY = "empty"

#: Distance computations of one graph search, per unit of ef and link: an expanded node evaluates its
#: unvisited out-links, about half of its 2m layer-0 links once the search has warmed up.
GRAPH_WORK_PER_EF_LINK = 0.5
#: Below this allowed fraction a traversal of every row wanders through rows it may not return; the
#: two-hop walk over allowed rows takes over (movies, 50k rows: 2.5-10x faster at 3-10%, same recall;
#: at 26-30% traversal was faster, 348 vs 438 us for a window of 30%).
TRAVERSE_MIN_ALLOWED_FRACTION = 0.2
#: Below this the allowed rows fall apart even with two-hop edges (movies, 50k rows: recall@10 0.96-0.98
#: at 3% and ef=64, 0.88-0.96 at 1%, 0.18-0.65 at 0.3%), so the exact scan answers.
TWO_HOP_MIN_ALLOWED_FRACTION = 0.03
#: Distance computations of a two-hop search per unit of ef and link: it scores allowed rows only.
TWO_HOP_WORK_PER_EF_LINK = 1.0


@dataclass(slots=True)
class SegmentPlan:
    segment: str
    strategy: str
    allowed_rows: int
    live_rows: int
    rows_found_by: str  # all_live_rows | window_slice (binary search on the sort column) | payload_index | evaluated
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def graph_cost(allowed_rows: int, total_rows: int, ef: int, m: int) -> float:
    """Estimated distance computations of a masked graph search that must collect ``ef`` allowed rows.

    Only a fraction ``allowed / total`` of the nodes it visits count towards ef, so the work grows as
    the inverse of that fraction.
    """
    fraction = allowed_rows / max(total_rows, 1)
    return GRAPH_WORK_PER_EF_LINK * 2 * m * ef / max(fraction, 1e-9)


def two_hop_cost(ef: int, m: int) -> float:
    """Estimated distance computations of a two-hop search: about 2m scored rows per expansion."""
    return TWO_HOP_WORK_PER_EF_LINK * 2 * m * ef


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
) -> SegmentPlan:
    """Choose the strategy for one segment given how many of its rows the filter allows.

    ``graph_rows`` is the node count of the segment's graph, or None when it has none (yet).
    """
    if allowed_rows == 0:
        return SegmentPlan(name, EMPTY, 0, live_rows, rows_found_by, "no live row matches the filter")

    def exact(reason: str) -> SegmentPlan:
        return SegmentPlan(name, EXACT_SCAN, allowed_rows, live_rows, rows_found_by, reason)

    if exact_requested:
        return exact("exact=True requested")
    if graph_rows is None:
        return exact("segment has no graph (too small, or still being built); exact scan of the allowed rows")
    fraction = allowed_rows / graph_rows
    if fraction < TWO_HOP_MIN_ALLOWED_FRACTION:
        return exact(f"filter allows {fraction:.2%} of the graph's rows, below {TWO_HOP_MIN_ALLOWED_FRACTION:.0%}")
    if fraction < TRAVERSE_MIN_ALLOWED_FRACTION:
        estimate = two_hop_cost(ef, m)
        if estimate >= allowed_rows:
            return exact(f"exact scan of {allowed_rows} rows is cheaper than a two-hop search (~{estimate:.0f})")
        return SegmentPlan(
            name,
            HNSW_TWO_HOP,
            allowed_rows,
            live_rows,
            rows_found_by,
            f"filter allows {fraction:.1%}: two-hop search of the allowed rows (~{estimate:.0f} distances at "
            f"ef={ef}) is cheaper than scanning {allowed_rows} rows",
        )
    estimate = graph_cost(allowed_rows, graph_rows, ef, m)
    if estimate >= allowed_rows:
        return exact(f"exact scan of {allowed_rows} rows is cheaper than the graph (~{estimate:.0f} distances)")
    return SegmentPlan(
        name,
        HNSW,
        allowed_rows,
        live_rows,
        rows_found_by,
        f"graph (~{estimate:.0f} distances at ef={ef}) is cheaper than scanning {allowed_rows} rows",
    )
