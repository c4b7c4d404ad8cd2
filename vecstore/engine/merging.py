"""Merging small sealed segments into one, so a search visits fewer graphs.

Every sealed segment costs a search its own graph traversal, so many small segments (one per seal of
``seal_rows``) are merged in the background, up to ``max_segment_rows`` rows, and the merged segment
gets its graph before it replaces its inputs: searches never fall back to scanning it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

#: Rows a merge may produce, unless the collection sets ``max_segment_rows``.
DEFAULT_MAX_SEGMENT_ROWS = 500_000


def choose_merge(live_rows: Mapping[int, int], max_segment_rows: int) -> tuple[int, ...] | None:
    """Segments to merge: the smallest ones (below half of the limit), as many as fit in the limit.

    Returns at least two segment ids, or None when no merge would reduce the segment count.
    """
    small = sorted((rows, segment_id) for segment_id, rows in live_rows.items() if rows < max_segment_rows / 2)
    chosen: list[int] = []
    total = 0
    for rows, segment_id in small:
        if total + rows > max_segment_rows:
            break
        chosen.append(segment_id)
        total += rows
    return tuple(sorted(chosen)) if len(chosen) >= 2 else None


def merged_table(tables: Sequence[pa.Table], live_masks: Sequence[np.ndarray], window: str | None) -> pa.Table:
    """The live rows of ``tables`` as one table, sorted like a sealed segment (by window, then id)."""
    parts = [table.filter(pa.array(mask)) for table, mask in zip(tables, live_masks, strict=True)]
    table = pa.concat_tables(parts).combine_chunks()
    if window is not None:
        table = table.sort_by([(window, "ascending"), ("id", "ascending")])
    return table


def died_since(ids: Sequence[np.ndarray], before: Sequence[np.ndarray], now: Sequence[np.ndarray]) -> np.ndarray:
    """Ids of rows deleted (or replaced) in the inputs after the merge took its snapshot."""
    died = [
        segment_ids[now_mask & ~before_mask]
        for segment_ids, before_mask, now_mask in zip(ids, before, now, strict=True)
    ]
    return np.concatenate(died) if died else np.empty(0, dtype=np.int64)
