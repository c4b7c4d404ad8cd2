"""Per-segment search planning: which strategy runs on a segment, and why.

Every decision is recorded (``SegmentPlan``) so ``explain=True`` and the collection's stats can say
which path ran. Today every segment is searched by an exact scan of its allowed rows; graph and
window-tree strategies plug in here as they arrive, chosen by estimated cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EXACT_SCAN = "exact_scan"
EMPTY = "empty"


@dataclass(frozen=True)
class SegmentPlan:
    segment: str
    strategy: str
    allowed_rows: int
    live_rows: int
    rows_found_by: str  # all_live_rows | window_slice (binary search on the sort column) | evaluated
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_segment(
    name: str, allowed_rows: int, live_rows: int, rows_found_by: str, *, exact_requested: bool, has_index: bool
) -> SegmentPlan:
    """Choose the strategy for one segment given how many of its rows the filter allows."""
    if allowed_rows == 0:
        return SegmentPlan(name, EMPTY, 0, live_rows, rows_found_by, "no live row matches the filter")
    if exact_requested:
        reason = "exact=True requested"
    elif not has_index:
        reason = "segment has no approximate index; exact scan of the allowed rows"
    else:  # pragma: no cover - no approximate index exists yet
        reason = "exact scan chosen"
    return SegmentPlan(name, EXACT_SCAN, allowed_rows, live_rows, rows_found_by, reason)
