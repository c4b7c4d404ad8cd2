"""Which rows of a segment view a filter allows: a slice of the window order, the payload index, or
the reference evaluator; remembered per view for repeated filters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vecstore.core import rowsets
from vecstore.engine.filtering import matching, matching_rows, range_positions, single_term_rows
from vecstore.engine.views import SegmentView
from vecstore.filters import And, Node, evaluate, interval_on
from vecstore.filters.bind import parse_timestamp


def _window_bounds(view: SegmentView, node: Node) -> tuple[int, int] | None:
    """``[lo, hi)`` of the sorted segment's rows where ``node``, a window on the sort column, holds:
    two binary searches, no scan. None when ``node`` is not such a window."""
    values = view.sorted_values
    intervals = interval_on(node, view.sorted_by) if values is not None else None
    if intervals is None:
        return None
    is_time = values.dtype.kind == "M"
    lo, hi = 0, values.shape[0]
    for interval in intervals:
        if interval.low is not None:
            bound = parse_timestamp(interval.low, view.sorted_by) if is_time else interval.low
            lo = max(lo, int(values.searchsorted(bound, "left" if interval.low_inclusive else "right")))
        if interval.high is not None:
            bound = parse_timestamp(interval.high, view.sorted_by) if is_time else interval.high
            hi = min(hi, int(values.searchsorted(bound, "right" if interval.high_inclusive else "left")))
    return lo, max(lo, hi)


def _window_slice(view: SegmentView, node: Node) -> np.ndarray | None:
    """Offsets of a window filter on the segment's sort column (live rows only), or None."""
    bounds = _window_bounds(view, node)
    if bounds is None:
        return None
    lo, hi = bounds
    offsets = np.arange(lo, hi, dtype=np.int64)
    return offsets if view.live is None else offsets[view.live[lo:hi]]


def _window_and_rest(view: SegmentView, node: Node) -> tuple[tuple[int, int], Node] | None:
    """For ``window and rest`` on a sorted segment: the window's row bounds and the rest of the filter."""
    if not isinstance(node, And):
        return None
    window = [c for c in node.children if interval_on(c, view.sorted_by) is not None]
    rest = [c for c in node.children if interval_on(c, view.sorted_by) is None]
    if not window or not rest:
        return None
    bounds = _window_bounds(view, And.of(*window))
    assert bounds is not None  # an and of windows on one column is one
    return bounds, And.of(*rest)


class Allowed:
    """The live rows of one view a filter allows, how they were found, and (built once, on demand)
    the same rows as a mask for graph traversal.

    A broad window of a segment without deletes is a run of rows, ``Allowed.run(lo, hi)``: it is
    counted, bounded and masked without listing its rows (a 100% window of 58,000 rows listed them in
    464 KB per query, evicting the graph the walk then read); ``offsets`` lists them when asked. A
    range on a numeric field is a slice of that field's value order, ``Allowed.value_span``: counted
    at once, listed, masked or bounded only when asked.
    """

    __slots__ = ("_mask", "_num_rows", "_offsets", "_rows", "_run", "found_by", "positions")

    def __init__(
        self,
        offsets: np.ndarray | None,
        found_by: str,
        run: tuple[int, int] | None = None,
        mask: np.ndarray | None = None,
    ) -> None:
        self._offsets = offsets  # int64, ascending; None for a run or a value span not listed yet
        self.found_by = found_by  # all_live_rows | window_slice | payload_index | evaluated
        self._mask = mask  # bool over the view's rows, when the rows were found through one
        self._run = run
        self._rows: np.ndarray | None = None  # a value span's live rows, in value order
        self._num_rows = 0  # the view's rows, for listing ``_rows`` ascending
        #: (field, start, stop) when the rows are those of positions [start, stop) of a numeric field's
        #: value order (deleted ones left out): a range graph over that order masks its nodes by them
        self.positions: tuple[str, int, int] | None = None

    @classmethod
    def run(cls, lo: int, hi: int, found_by: str = "window_slice") -> Allowed:
        """Every row ``lo .. hi - 1``, all live."""
        return cls(None, found_by, (lo, max(lo, hi)))

    @classmethod
    def value_span(
        cls, field: str, order: np.ndarray, start: int, stop: int, num_rows: int, live: np.ndarray | None
    ) -> Allowed:
        """The live rows at positions ``[start, stop)`` of ``field``'s value order ``order`` (a range on a
        numeric field): counted now, listed, masked or bounded only when asked."""
        rows = order[start:stop]
        allowed = cls(None, "payload_index")
        allowed._rows = rows if live is None else rowsets.live_rows(rows, live)
        allowed._num_rows = num_rows
        allowed.positions = (field, start, stop)
        return allowed

    @property
    def offsets(self) -> np.ndarray:
        if self._offsets is None:
            if self._rows is not None:
                self._offsets = rowsets.ascending(self._rows, self._num_rows)
            else:
                assert self._run is not None
                self._offsets = np.arange(self._run[0], self._run[1], dtype=np.int64)
        return self._offsets

    @property
    def count(self) -> int:
        """How many rows are allowed."""
        if self._run is not None:
            return self._run[1] - self._run[0]
        if self._rows is not None:
            return int(self._rows.shape[0])
        return int(self._offsets.shape[0])  # type: ignore[union-attr]

    @property
    def bounds(self) -> tuple[int, int]:
        """``[first, last + 1)``: the span of the allowed rows (some of it may be disallowed); needs a row."""
        if self._run is not None:
            return self._run
        if self._offsets is None and self._rows is not None:
            lo, hi = rowsets.row_bounds(self._rows)
            return int(lo), int(hi)
        offsets = self._offsets
        return int(offsets[0]), int(offsets[-1]) + 1  # type: ignore[index]

    def sample(self, count: int) -> np.ndarray:
        """Up to ``count`` allowed rows spread evenly over them, the first and the last among them (a run
        is not listed for it). Integer steps: no rounding to repeat a row, and cheap per query."""
        n = self.count
        c = min(count, n)
        picks = np.arange(c, dtype=np.int64) * (n - 1) // max(c - 1, 1)
        if self._offsets is None and self._run is not None:
            return picks + self._run[0]
        return self.offsets[picks]

    def covers(self, num_rows: int) -> bool:
        """Whether every one of the view's ``num_rows`` rows is allowed (a filter that cuts nothing)."""
        return self.count == num_rows

    def mask_within(self, num_rows: int, start: int, stop: int) -> np.ndarray:
        """``mask(num_rows)[start:stop]``: for a run, only those rows are masked (a bucket of the window
        tree need not pay for a mask over the whole segment)."""
        if self._run is None or self._mask is not None:
            return self.mask(num_rows)[start:stop]
        mask = np.zeros(stop - start, dtype=np.bool_)
        lo, hi = self._run
        mask[max(lo, start) - start : max(min(hi, stop) - start, 0)] = True
        return mask

    def mask(self, num_rows: int) -> np.ndarray:
        if self._mask is None and self._rows is not None:
            self._mask = rowsets.rows_mask(self._rows, num_rows)
        if self._mask is None:
            mask = np.zeros(num_rows, dtype=np.bool_)
            count = self.count
            if count:
                lo, hi = self.bounds
                if hi - lo == count:  # a run (a window): no scatter
                    mask[lo:hi] = True
                else:
                    mask[self.offsets] = True
            self._mask = mask
        return self._mask


def _find_allowed(view: SegmentView, node: Node) -> Allowed:
    if view.sorted_by is not None and view.sorted_values is not None:
        offsets = _window_slice(view, node)
        if offsets is not None:
            return Allowed(offsets, "window_slice")
        split = _window_and_rest(view, node) if view.payload is not None else None
        if split is not None:
            # a window and something else: the rest's rows (often one term's list, read directly) cut to
            # the window's slice by two binary searches, instead of a mask over every row per predicate
            (lo, hi), rest = split
            term_rows = single_term_rows(rest, view.payload)
            if term_rows is not None:  # one term's list: cut to the window first, then to the live rows
                rows = np.asarray(term_rows[term_rows.searchsorted(lo) : term_rows.searchsorted(hi)], dtype=np.int64)
                return Allowed(rows if view.live is None else rows[view.live[rows]], "payload_index")
            rows = matching_rows(rest, view.payload, view.live)
            return Allowed(rows[rows.searchsorted(lo) : rows.searchsorted(hi)], "payload_index")
    if view.payload is not None:
        span = range_positions(node, view.payload)
        if span is not None:  # one range on a number: a slice of its value order, listed only if asked
            field, start, stop = span
            order = view.payload.columns[field].rows
            return Allowed.value_span(field, order, start, stop, view.num_rows, view.live)
        offsets, mask = matching(node, view.payload, view.live)
        return Allowed(offsets, "payload_index", mask=mask)
    mask = evaluate(node, view.columns(), view.num_rows)
    if view.live is not None:
        mask &= view.live
    return Allowed(np.flatnonzero(mask).astype(np.int64), "evaluated", mask=mask)


def allowed_rows(view: SegmentView, node: Node | None) -> Allowed:
    """The live rows of ``view`` that satisfy ``node``; repeated filters come from the view's cache."""
    if node is None:
        return Allowed(view.live_offsets, "all_live_rows")
    allowed = view.filter_results.get(node)
    if allowed is None:
        allowed = _find_allowed(view, node)
        view.filter_results.put(node, allowed, 8 * allowed.count + view.num_rows)  # listed and masked, at most
    return allowed


def allowed_offsets(view: SegmentView, node: Node | None) -> tuple[np.ndarray, str]:
    """Offsets of the live rows of ``view`` that satisfy ``node``, and how they were found."""
    allowed = allowed_rows(view, node)
    return allowed.offsets, allowed.found_by


def count_matching(views: Sequence[SegmentView], node: Node | None) -> int:
    if node is None:
        return sum(v.live_count for v in views)
    return sum(int(allowed_offsets(v, node)[0].shape[0]) for v in views)
