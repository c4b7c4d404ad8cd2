"""Bounded top-k selection shared by every search kernel.

A max-heap of capacity k holds the best (distance, key) pairs seen so far; ``key`` is the external
id of the row, so ties in distance are broken by the smaller id whatever the storage order is.
That makes every exact answer deterministic across segment layouts.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always")
def worse(d1: float, k1: int, d2: float, k2: int) -> bool:
    """True when (d1, k1) ranks after (d2, k2)."""
    return d1 > d2 or (d1 == d2 and k1 > k2)


@njit(nogil=True, cache=True)
def _sift_down(hd, hk, ho, size, pos):
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and worse(hd[right], hk[right], hd[left], hk[left]):
            child = right
        if worse(hd[child], hk[child], hd[pos], hk[pos]):
            hd[pos], hd[child] = hd[child], hd[pos]
            hk[pos], hk[child] = hk[child], hk[pos]
            ho[pos], ho[child] = ho[child], ho[pos]
            pos = child
        else:
            return


@njit(nogil=True, cache=True)
def heap_offer(hd, hk, ho, size, d, key, offset):
    """Offer one candidate to the heap (arrays of capacity k); returns the new size."""
    cap = hd.shape[0]
    if size < cap:
        pos = size
        hd[pos] = d
        hk[pos] = key
        ho[pos] = offset
        while pos > 0:
            parent = (pos - 1) // 2
            if worse(hd[pos], hk[pos], hd[parent], hk[parent]):
                hd[pos], hd[parent] = hd[parent], hd[pos]
                hk[pos], hk[parent] = hk[parent], hk[pos]
                ho[pos], ho[parent] = ho[parent], ho[pos]
                pos = parent
            else:
                break
        return size + 1
    if worse(hd[0], hk[0], d, key):
        hd[0] = d
        hk[0] = key
        ho[0] = offset
        _sift_down(hd, hk, ho, size, 0)
    return size


@njit(nogil=True, cache=True)
def heap_drain_sorted(hd, hk, ho, size, out_offsets, out_distances):
    """Pop the heap into ascending (distance, key) order; slots past ``size`` are padded -1 / +inf."""
    for i in range(size, out_offsets.shape[0]):
        out_offsets[i] = -1
        out_distances[i] = np.inf
    while size > 0:
        size -= 1
        out_offsets[size] = ho[0]
        out_distances[size] = hd[0]
        hd[0] = hd[size]
        hk[0] = hk[size]
        ho[0] = ho[size]
        _sift_down(hd, hk, ho, size, 0)


@njit(inline="always")
def heap_arrays(cap):
    """Empty (distance, key, offset) heap arrays of capacity ``cap`` for ``heap_offer``."""
    return np.empty(cap, dtype=np.float32), np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.int64)


@njit(inline="always")
def offer_if_kept(hd, hk, ho, size, d, key, offset):
    """``heap_offer`` only when the candidate would be kept: the common loser costs one comparison."""
    if size < hd.shape[0] or worse(hd[0], hk[0], d, key):
        return heap_offer(hd, hk, ho, size, d, key, offset)
    return size


@njit(inline="always")
def drained(hd, hk, ho, size, width):
    """The heap as ascending offsets int64 [width] and distances float32 [width], -1 / +inf padded."""
    out_offsets = np.empty(width, dtype=np.int64)
    out_distances = np.empty(width, dtype=np.float32)
    heap_drain_sorted(hd, hk, ho, size, out_offsets, out_distances)
    return out_offsets, out_distances


@njit(nogil=True, cache=True)
def label_found(found, keys, source):
    """For found row offsets [q, k] (-1 padded): their keys and a ``source`` tag per hit, both -1 on
    padding (one call instead of four numpy passes: it runs for every search)."""
    ids = np.empty(found.shape, dtype=np.int64)
    tags = np.empty(found.shape, dtype=np.int64)
    for i in range(found.shape[0]):
        for j in range(found.shape[1]):
            row = found[i, j]
            ids[i, j] = keys[row] if row >= 0 else -1
            tags[i, j] = source if row >= 0 else -1
    return ids, tags
