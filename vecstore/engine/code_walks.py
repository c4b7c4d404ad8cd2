"""Graph walks over a segment's codes: when a quantised segment's window-tree buckets, term graphs and
range runs are walked by code distance instead of over float rows, and what that costs.

In a quantised collection whose codes are cheaper to compare than its float rows (high dimensions),
a graph over some of the segment's rows is walked over those rows' codes: each walk yields
``k x oversampling`` candidates (a scalar-code walk all of its ef results), rescored exactly on the
float rows. A bucket's codes are a slice of the segment's; a term graph's and a range run's are
gathered once (``TermGraphs.node_codes``), and only sq8 codes walk them (``search.plan_view``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vecstore.engine import planner
from vecstore.engine.planner import EXACT_NS_PER_ROW_DIM, code_graph_scale, code_query_ns, walk_candidates
from vecstore.engine.views import SegmentView


@dataclass(frozen=True)
class CodeWalk:
    """Graphs walked over codes: ``count`` candidates a graph search (its ef at least that), a code
    distance ``scale`` times the calibrated float one, and ``query_ns`` to prepare the query."""

    kind: str
    count: int
    scale: float
    query_ns: float

    def candidates(self, ef: int) -> int:
        """Rows one graph search at ``ef`` hands to rescoring (``walk_candidates``)."""
        return walk_candidates(self.kind, self.count, ef)

    def rescoring_ns(self, dim: int, ef: int) -> float:
        """Rescoring one graph search's candidates (the call itself is priced once per option)."""
        return EXACT_NS_PER_ROW_DIM * dim * self.candidates(ef)

    def describe(self) -> str:
        return f", walked over {self.kind} codes"


def code_walk(view: SegmentView, k: int, oversampling: float, rescore: bool) -> CodeWalk | None:
    """How the graphs over some of ``view``'s rows (window-tree buckets, term graphs, range runs) are
    walked: over its codes when it has them, the search rescores, and a code distance costs less than a
    float one; else None (over the float rows)."""
    codes = view.codes
    if codes is None or not rescore:
        return None
    dim = view.vectors.shape[1]
    scale = code_graph_scale(codes.kind, codes.codes.shape[1])
    if scale >= planner.float_distance_scale(dim):
        return None
    return CodeWalk(codes.kind, max(k, math.ceil(k * oversampling)), scale, code_query_ns(codes.kind, dim))
