"""Row-set kernels (``vecstore.core.rowsets``) against numpy oracles, on sets small enough to be sorted
and large enough to be listed through a mask, with and without deleted rows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vecstore.core import rowsets


@st.composite
def row_sets(draw):
    """(rows: distinct offsets in random order, num_rows, live mask)."""
    num_rows = draw(st.integers(1, 5_000))
    # from a handful of rows (sorted) to every row (listed through the mask)
    count = draw(st.integers(1, num_rows))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rows = rng.permutation(num_rows)[:count].astype(np.int64)
    live = rng.random(num_rows) < draw(st.sampled_from([1.0, 0.9, 0.3]))
    return rows, num_rows, live


@settings(max_examples=300, deadline=None)
@given(row_sets())
def test_row_set_kernels_equal_numpy(case):
    rows, num_rows, live = case
    kept = rowsets.live_rows(rows, live)
    np.testing.assert_array_equal(kept, rows[live[rows]])  # order kept
    assert rowsets.row_bounds(rows) == (rows.min(), rows.max() + 1)
    want = np.zeros(num_rows, dtype=bool)
    want[rows] = True
    np.testing.assert_array_equal(rowsets.rows_mask(rows, num_rows), want)
    listed = rowsets.ascending(rows, num_rows)
    assert listed.dtype == np.int64
    np.testing.assert_array_equal(listed, np.sort(rows))
    np.testing.assert_array_equal(rowsets.ascending(kept, num_rows), np.flatnonzero(want & live))


def test_both_ways_of_listing_ascending_are_taken_and_agree():
    num_rows = 48 * 1_000
    rng = np.random.default_rng(3)
    for count in (1, 999, 1_000, 1_001, 30_000, num_rows):  # around the sorting threshold, and every row
        rows = rng.permutation(num_rows)[:count].astype(np.int64)
        np.testing.assert_array_equal(rowsets.ascending(rows, num_rows), np.sort(rows))
    assert rowsets.SORT_BELOW_ONE_IN == 48  # the counts above straddle its threshold
