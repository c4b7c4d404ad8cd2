"""Row sets held as distinct segment offsets in no particular order, such as the rows of a range on a
numeric attribute (a slice of the attribute's value order): counted, bounded, masked and listed
ascending in one compiled pass each, so a range's rows need no mask over the whole segment, nor a
sorted list of themselves, until a search path asks for one.

On the 58,788 movies rows a range holding a quarter of them took 60 us a query to mask and list (a
scatter, then ``flatnonzero`` over every row) before its range graph walk, which needs neither.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: ``ascending`` sorts a set of fewer than one row in this many of the segment's; a larger one is
#: listed by a mask over the segment's rows, compacted in order (of 58,788 rows: 1,000 sort in 11 us,
#: about what the pass costs; 4,000 in 87 us against the pass's 26 us)
SORT_BELOW_ONE_IN = 48


@njit(nogil=True, cache=True)
def live_rows(rows, live):
    """The offsets of ``rows`` whose ``live`` flag is set, in their order."""
    out = np.empty(rows.shape[0], dtype=np.int64)
    count = 0
    for i in range(rows.shape[0]):
        row = rows[i]
        if live[row]:
            out[count] = row
            count += 1
    return out[:count]


@njit(nogil=True, cache=True)
def row_bounds(rows):
    """``(least, greatest + 1)`` of a non-empty ``rows``."""
    lo = hi = rows[0]
    for i in range(1, rows.shape[0]):  # min and max without branches: a vectorised reduction
        lo = min(lo, rows[i])
        hi = max(hi, rows[i])
    return lo, hi + 1


@njit(nogil=True, cache=True)
def rows_mask(rows, num_rows):
    """bool [num_rows], set at ``rows``."""
    mask = np.zeros(num_rows, dtype=np.bool_)
    for i in range(rows.shape[0]):
        mask[rows[i]] = True
    return mask


@njit(nogil=True, cache=True)
def ascending(rows, num_rows):
    """``rows`` (distinct offsets below ``num_rows``) in ascending order, int64."""
    count = rows.shape[0]
    if count * SORT_BELOW_ONE_IN < num_rows:
        out = rows.astype(np.int64)
        out.sort()
        return out
    mask = rows_mask(rows, num_rows)
    out = np.empty(count + 1, dtype=np.int64)  # one spare slot: every row is written, the unset ones over
    at = 0
    for row in range(num_rows):  # no branch to mispredict on a mask of any density
        out[at] = row
        at += mask[row]
    return out[:count]
