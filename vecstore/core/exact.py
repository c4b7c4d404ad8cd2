"""Exact (brute-force) top-k over the allowed rows of one segment.

Inputs are flat arrays: ``vectors`` float32 [n, dim] (may be read-only, memory-mapped), ``norms``
float32 [n] (squared norms for l2, inverse norms for cosine, unused for ip), ``offsets`` int64 [m]
(the rows the filter allows), ``keys`` int64 [n] (external ids, the tie-break). Outputs are
``(offsets, distances)`` padded with -1 / +inf, sorted by (distance, key).

Distances, smaller is closer: l2 -> squared Euclidean; ip -> negative inner product;
cosine -> 1 - cosine similarity.

Single queries run a fused scan; batches of many queries use the BLAS matrix product over blocks of
rows (compute bound instead of memory bound) and a parallel Numba merge into per-query heaps.
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads, njit, prange

from vecstore.core.prefetch import prefetch_whole_row
from vecstore.core.topk import drained, heap_arrays, heap_drain_sorted, heap_offer, worse

L2, IP, COSINE = 0, 1, 2
#: Batches at least this large go through the blocked matrix product.
GEMM_MIN_QUERIES = 8
#: ... over at least this many rows (below it, the per-thread scan is as fast).
GEMM_MIN_ROWS = 64
GEMM_BLOCK_ROWS = 4096
#: A single query scans this many rows or more on every core (below it, threads cost more than they save).
PARALLEL_SCAN_MIN_ROWS = 16_384
#: A scan loads the row this many places ahead whole while it scores the current one, for rows of at
#: least this many bytes. One thread, 243 scattered rows of 20k (one term inside a window): 384-d
#: 36-40 -> 26-29 us, 784-d 69-70 -> 60-62 us; 32-d rows lost in a bare loop (4.4 -> 8.3 us over 1000
#: consecutive rows), so short rows skip it. A run of consecutive rows (a window) skips it too: the
#: hardware streams a run by itself, and a software prefetch there only costs (312 consecutive 784-d
#: rows, cache evicted: 66-87 us with it, 53-60 us without).
SCAN_PREFETCH_AHEAD = 2
SCAN_PREFETCH_MIN_ROW_BYTES = 256


def row_norms(vectors: np.ndarray, metric: int) -> np.ndarray:
    """The per-row norm term the kernels expect for ``metric``."""
    if metric == IP or vectors.shape[0] == 0:
        return np.zeros(vectors.shape[0], dtype=np.float32)
    sq = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float32)
    if metric == L2:
        return sq.astype(np.float32)
    with np.errstate(divide="ignore"):
        return (1.0 / np.sqrt(sq)).astype(np.float32)


def query_norms(queries: np.ndarray, metric: int) -> np.ndarray:
    """Per-query norm term: squared norm (l2), inverse norm (cosine), unused (ip)."""
    if queries.shape[0] == 1:  # one query: plain float math, without the vectorised path's set-up cost
        row = queries[0].astype(np.float64)
        sq1 = float(np.dot(row, row))
        if metric == COSINE:
            sq1 = 1.0 / math.sqrt(sq1) if sq1 > 0 else 0.0
        return np.array([sq1], dtype=np.float32)
    sq = np.einsum("ij,ij->i", queries, queries, dtype=np.float64)
    if metric == COSINE:
        with np.errstate(divide="ignore"):
            return np.where(sq > 0, 1.0 / np.sqrt(sq), 0.0).astype(np.float32)
    return sq.astype(np.float32)


@njit(inline="always")
def prefetch_row_ahead(array, offsets, j):
    """Prefetch ``array[offsets[j + SCAN_PREFETCH_AHEAD]]`` whole unless that row ends a run of consecutive
    rows from ``offsets[j]`` (ascending offsets: the hardware prefetcher has it coming)."""
    ahead = j + SCAN_PREFETCH_AHEAD
    if ahead < offsets.shape[0] and offsets[ahead] != offsets[j] + SCAN_PREFETCH_AHEAD:
        prefetch_whole_row(array, offsets[ahead])


@njit(nogil=True, cache=True, fastmath=True)
def _scan_into_heap(vectors, norms, query, qnorm, offsets, keys, metric, hd, hk, ho):
    dim = vectors.shape[1]
    cap = hd.shape[0]
    size = 0
    m = offsets.shape[0]
    prefetch = dim * vectors.itemsize >= SCAN_PREFETCH_MIN_ROW_BYTES
    for j in range(m):
        row = offsets[j]
        if prefetch:
            prefetch_row_ahead(vectors, offsets, j)
        acc = np.float32(0.0)
        if metric == L2:
            for t in range(dim):
                diff = vectors[row, t] - query[t]
                acc += diff * diff
            d = acc
        else:
            for t in range(dim):
                acc += vectors[row, t] * query[t]
            if metric == IP:
                d = -acc
            else:
                d = np.float32(1.0) - acc * norms[row] * qnorm
        # most candidates lose to the current k-th best: reject them without touching the heap
        if size < cap or worse(hd[0], hk[0], d, keys[row]):
            size = heap_offer(hd, hk, ho, size, d, keys[row], row)
    return size


@njit(nogil=True, cache=True)
def topk_scan(vectors, norms, query, qnorm, offsets, keys, k, metric):
    """Exact top-k of one query over ``vectors[offsets]``."""
    hd, hk, ho = heap_arrays(min(k, offsets.shape[0]))
    size = _scan_into_heap(vectors, norms, query, np.float32(qnorm), offsets, keys, metric, hd, hk, ho)
    return drained(hd, hk, ho, size, k)


@njit(nogil=True, cache=True)
def query_sq(query):
    """The query's squared norm in float64 (as ``query_norms`` computes it): non-finite for a query
    holding NaN or inf, which the callers turn into an error."""
    sq = 0.0
    for t in range(query.shape[0]):
        sq += np.float64(query[t]) * np.float64(query[t])
    return sq


@njit(nogil=True, cache=True)
def _norm_term(sq, metric):
    if metric == IP:
        return np.float32(0.0)
    return np.float32(sq if metric == L2 else (1.0 / math.sqrt(sq) if sq > 0 else 0.0))


@njit(nogil=True, cache=True)
def _keys_row(found, keys, k):
    """[1, k] keys of the offsets ``found`` [k], -1 where they are padding."""
    out_keys = np.full((1, k), -1, dtype=np.int64)
    for i in range(k):
        if found[i] >= 0:
            out_keys[0, i] = keys[found[i]]
    return out_keys


@njit(nogil=True, cache=True)
def _one_row_result(found, distances, keys, k, source):
    """[1, k] rows of offsets, keys, distances and ``source``, padded -1 / -1 / +inf / -1."""
    out_keys = _keys_row(found, keys, k)
    out_source = np.where(out_keys >= 0, source, -1)
    return found.reshape(1, k), out_keys, distances.reshape(1, k), out_source


@njit(nogil=True, cache=True)
def topk_scan_one(vectors, norms, query, offsets, keys, k, metric, source):
    """``topk_scan`` as a whole single search in one call: the query's norm term is computed here (in
    float64, as ``query_norms`` does), and the result comes back as [1, k] rows of offsets, keys,
    distances and ``source`` (the caller's tag for this segment), padded -1 / -1 / +inf / -1."""
    qnorm = _norm_term(query_sq(query), metric)
    found, distances = topk_scan(vectors, norms, query, qnorm, offsets, keys, k, metric)
    return _one_row_result(found, distances, keys, k, source)


@njit(nogil=True, cache=True)
def bisect(values, bound, right):
    """``np.searchsorted(values, bound, "right" if right else "left")`` over ascending ``values``."""
    lo, hi = 0, values.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < bound or (right and values[mid] == bound):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(inline="always")
def window_span(values, low, low_open, has_low, high, high_open, has_high):
    """``[lo, hi)``: the rows of a segment sorted by ``values`` inside the window (``window_rows``)."""
    lo = bisect(values, low, low_open) if has_low else 0
    hi = bisect(values, high, not high_open) if has_high else values.shape[0]
    return lo, max(lo, hi)


@njit(inline="always")
def _nothing_scanned(k):
    """Keys and distances of a search that scanned nothing: padding [1, k]."""
    return np.full((1, k), -1, dtype=np.int64), np.full((1, k), np.inf, dtype=np.float32)


@njit(nogil=True, cache=True)
def window_rows(values, low, low_open, has_low, high, high_open, has_high, term_rows, by_term, live, max_rows):
    """The live rows of a window on a segment sorted by ``values``, ascending, and how many rows (live
    or not) the window holds; no rows when that count exceeds ``max_rows``.

    The window is ``low <(=) values <(=) high`` (a side is unbounded without ``has_low`` /
    ``has_high``; ``*_open`` excludes the bound itself). With ``by_term`` only the rows listed in
    ``term_rows`` count (ascending offsets: one term's rows from the payload index), so a window AND a
    term costs two more binary searches, not a pass over either. ``live`` is the segment's live mask,
    or empty when every row is live.
    """
    lo, hi = window_span(values, low, low_open, has_low, high, high_open, has_high)
    first, last = lo, hi
    if by_term:  # the term's rows inside [lo, hi): a run of its ascending list
        first = bisect(term_rows, lo, False)
        last = max(first, bisect(term_rows, hi, False))
    if last - first > max_rows:
        return last - first, np.empty(0, dtype=np.int64)
    offsets = np.empty(last - first, dtype=np.int64)
    count = 0
    every_row_live = live.shape[0] == 0
    for i in range(first, last):
        row = term_rows[i] if by_term else i
        if every_row_live or live[row]:
            offsets[count] = row
            count += 1
    return last - first, offsets[:count]


@njit(nogil=True, cache=True)
def window_topk_one(
    values, low, low_open, has_low, high, high_open, has_high, term_rows, by_term, live, max_rows,
    vectors, norms, query, keys, k, metric,
):  # fmt: skip
    """One query's exact top-k over ``window_rows``: returns ``(query_sq, rows, offsets, keys,
    distances)``, the last three [1, k] as ``topk_scan_one`` gives them (no source tag: every array
    handed back costs a boxing, and the caller knows its segment), with ``rows`` the live rows scanned.
    Nothing is scanned when the query is not finite (``query_sq``; ``rows`` = -1), or when the window
    holds more than ``max_rows`` rows: then keys and distances are padding [1, k], and for the caller to
    plan with, either ``rows`` = -1 and ``offsets`` [1, n] are the window's live rows (``window_rows``'
    answer), or, for a window of every row without a term, ``rows`` = -2 and ``offsets`` [1, 2] are
    its bounds ``[lo, hi)``: its rows are not listed."""
    sq = query_sq(query)
    finite = math.isfinite(sq)
    if finite and not by_term and live.shape[0] == 0:  # a run of rows: too long to scan is told by its bounds
        lo, hi = window_span(values, low, low_open, has_low, high, high_open, has_high)
        if hi - lo > max_rows:
            out_keys, out_distances = _nothing_scanned(k)
            bounds = np.empty((1, 2), dtype=np.int64)
            bounds[0, 0], bounds[0, 1] = lo, hi
            return sq, -2, bounds, out_keys, out_distances
    # the window's live rows whatever their count (it is at most the segment's): the scan's rows, or
    # the ones the caller plans with; none for a query that cannot be searched
    span, offsets = window_rows(values, low, low_open, has_low, high, high_open, has_high, term_rows, by_term, live,
                                values.shape[0] if finite else -1)  # fmt: skip
    if span > max_rows or not finite:
        out_keys, out_distances = _nothing_scanned(k)
        return sq, -1, offsets.reshape(1, offsets.shape[0]), out_keys, out_distances
    found, distances = topk_scan(vectors, norms, query, _norm_term(sq, metric), offsets, keys, k, metric)
    return sq, offsets.shape[0], found.reshape(1, k), _keys_row(found, keys, k), distances.reshape(1, k)


_NO_NORMS = np.zeros(0, dtype=np.float32)  # l2 scans read no norm term


@njit(nogil=True, cache=True)
def window_copy_topk_one(
    values, low, low_open, has_low, high, high_open, has_high, term_rows, live, max_rows, copy, query, keys, k,
):  # fmt: skip
    """``window_topk_one`` for a window AND one term in an l2 segment, reading the term's rows from
    ``copy``: its rows' vectors gathered in the order of ``term_rows`` (its term graph's, ascending
    segment offsets). The term's rows inside the window are then one run of ``copy``, read as the
    hardware prefetcher likes, where the segment holds them scattered: 243 rows of 784-d in a window of
    2,500 cost 343 ns a row from the segment and 108 from a run, out of cache. The copy holds the stored
    rows' very bits and the l2 loop is the scan's own, so distances and order equal ``window_topk_one``'s.
    Returns what it returns, offsets being segment offsets."""
    sq = query_sq(query)
    finite = math.isfinite(sq)
    lo, hi = window_span(values, low, low_open, has_low, high, high_open, has_high)
    first = bisect(term_rows, lo, False)
    last = max(first, bisect(term_rows, hi, False))
    if last - first > max_rows or not finite:  # as window_topk_one: the live rows to plan with, or nothing
        _, rows = window_rows(values, low, low_open, has_low, high, high_open, has_high, term_rows, True, live,
                              values.shape[0] if finite else -1)  # fmt: skip
        out_keys, out_distances = _nothing_scanned(k)
        return sq, -1, rows.reshape(1, rows.shape[0]), out_keys, out_distances
    every_row_live = live.shape[0] == 0
    positions = np.empty(last - first, dtype=np.int64)  # live rows, as positions in the run
    run_keys = np.empty(last - first, dtype=np.int64)
    count = 0
    for i in range(first, last):
        row = term_rows[i]
        run_keys[i - first] = keys[row]
        if every_row_live or live[row]:
            positions[count] = i - first
            count += 1
    found, distances = topk_scan(copy[first:last], _NO_NORMS, query, np.float32(sq), positions[:count], run_keys, k,
                                 L2)  # fmt: skip
    out_offsets = np.full((1, k), -1, dtype=np.int64)
    out_keys = np.full((1, k), -1, dtype=np.int64)
    for j in range(k):
        if found[j] >= 0:
            out_offsets[0, j] = term_rows[first + found[j]]
            out_keys[0, j] = run_keys[found[j]]
    return sq, count, out_offsets, out_keys, distances.reshape(1, k)


@njit(nogil=True, cache=True, parallel=True)
def topk_scan_chunked(vectors, norms, query, qnorm, offsets, keys, k, metric, n_chunks):
    """Exact top-k of one query, the rows split into chunks scanned in parallel, then merged."""
    m = offsets.shape[0]
    cap = min(k, m)
    hd = np.empty((n_chunks, cap), dtype=np.float32)
    hk = np.empty((n_chunks, cap), dtype=np.int64)
    ho = np.empty((n_chunks, cap), dtype=np.int64)
    sizes = np.zeros(n_chunks, dtype=np.int64)
    step = (m + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        part = offsets[c * step : min(m, (c + 1) * step)]
        sizes[c] = _scan_into_heap(vectors, norms, query, np.float32(qnorm), part, keys, metric, hd[c], hk[c], ho[c])
    md = np.empty(cap, dtype=np.float32)
    mk = np.empty(cap, dtype=np.int64)
    mo = np.empty(cap, dtype=np.int64)
    size = 0
    for c in range(n_chunks):
        for j in range(sizes[c]):
            size = heap_offer(md, mk, mo, size, hd[c, j], hk[c, j], ho[c, j])
    out_offsets = np.empty(k, dtype=np.int64)
    out_distances = np.empty(k, dtype=np.float32)
    heap_drain_sorted(md, mk, mo, size, out_offsets, out_distances)
    return out_offsets, out_distances


@njit(nogil=True, cache=True, parallel=True)
def topk_scan_batch(vectors, norms, queries, qnorms, offsets, keys, k, metric):
    """Exact top-k of each query (one query per thread) over ``vectors[offsets]``."""
    nq = queries.shape[0]
    cap = min(k, offsets.shape[0])
    out_offsets = np.empty((nq, k), dtype=np.int64)
    out_distances = np.empty((nq, k), dtype=np.float32)
    for i in prange(nq):
        hd = np.empty(cap, dtype=np.float32)
        hk = np.empty(cap, dtype=np.int64)
        ho = np.empty(cap, dtype=np.int64)
        size = _scan_into_heap(vectors, norms, queries[i], np.float32(qnorms[i]), offsets, keys, metric, hd, hk, ho)
        heap_drain_sorted(hd, hk, ho, size, out_offsets[i], out_distances[i])
    return out_offsets, out_distances


@njit(nogil=True, cache=True)
def topk_scan_serial(vectors, norms, queries, qnorms, offsets, keys, k, metric):
    """``topk_scan_batch`` on the calling thread: for a few queries over few rows, waking the thread
    pool costs more than the work (two queries over 20 rows: about 45 us a query against 15)."""
    nq = queries.shape[0]
    out_offsets = np.empty((nq, k), dtype=np.int64)
    out_distances = np.empty((nq, k), dtype=np.float32)
    for i in range(nq):
        o, d = topk_scan(vectors, norms, queries[i], np.float32(qnorms[i]), offsets, keys, k, metric)
        out_offsets[i] = o
        out_distances[i] = d
    return out_offsets, out_distances


@njit(nogil=True, cache=True, parallel=True, fastmath=True)
def _merge_scores(scores, block_offsets, block_norms, block_keys, qnorms, metric, hd, hk, ho, sizes):
    """Turn a [q, b] block of inner products into distances and offer them to each query's heap.

    ``block_norms`` / ``block_keys`` are the block's rows gathered contiguously; the heap's worst
    entry is kept in locals so the common case (a candidate that loses) is a compare and a branch.
    """
    nq, nb = scores.shape
    cap = hd.shape[1]
    for i in prange(nq):
        size = sizes[i]
        qn = np.float32(qnorms[i])
        hd_i, hk_i, ho_i = hd[i], hk[i], ho[i]
        top_d = hd_i[0] if size == cap else np.float32(np.inf)
        top_k = hk_i[0] if size == cap else np.int64(-1)
        for j in range(nb):
            s = scores[i, j]
            if metric == L2:
                d = max(block_norms[j] - np.float32(2.0) * s + qn, np.float32(0.0))
            elif metric == IP:
                d = -s
            else:
                d = np.float32(1.0) - s * block_norms[j] * qn
            if size < cap or d < top_d or (d == top_d and block_keys[j] < top_k):
                size = heap_offer(hd_i, hk_i, ho_i, size, d, block_keys[j], block_offsets[j])
                if size == cap:
                    top_d = hd_i[0]
                    top_k = hk_i[0]
        sizes[i] = size


@njit(nogil=True, cache=True, parallel=True)
def _drain_all(hd, hk, ho, sizes, out_offsets, out_distances):
    for i in prange(hd.shape[0]):
        heap_drain_sorted(hd[i], hk[i], ho[i], sizes[i], out_offsets[i], out_distances[i])


def topk_gemm_batch(
    vectors: np.ndarray,
    norms: np.ndarray,
    queries: np.ndarray,
    qnorms: np.ndarray,
    offsets: np.ndarray,
    keys: np.ndarray,
    k: int,
    metric: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k for a batch through blocked matrix products (BLAS) and parallel heap merges."""
    nq = queries.shape[0]
    cap = max(1, min(k, offsets.shape[0]))
    hd = np.empty((nq, cap), dtype=np.float32)
    hk = np.empty((nq, cap), dtype=np.int64)
    ho = np.empty((nq, cap), dtype=np.int64)
    sizes = np.zeros(nq, dtype=np.int64)
    contiguous = offsets.shape[0] > 0 and offsets[-1] - offsets[0] + 1 == offsets.shape[0]
    for start in range(0, offsets.shape[0], GEMM_BLOCK_ROWS):
        block_offsets = offsets[start : start + GEMM_BLOCK_ROWS]
        if contiguous:
            first = int(block_offsets[0])
            block = vectors[first : first + block_offsets.shape[0]]
        else:
            block = vectors[block_offsets]
        scores = queries @ block.T
        _merge_scores(
            scores, block_offsets, norms[block_offsets], keys[block_offsets], qnorms, metric, hd, hk, ho, sizes
        )
    out_offsets = np.empty((nq, k), dtype=np.int64)
    out_distances = np.empty((nq, k), dtype=np.float32)
    _drain_all(hd, hk, ho, sizes, out_offsets, out_distances)
    return out_offsets, out_distances


def exact_topk(
    vectors: np.ndarray,
    norms: np.ndarray,
    queries: np.ndarray,
    offsets: np.ndarray,
    keys: np.ndarray,
    k: int,
    metric: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k for ``queries`` [q, dim] over ``vectors[offsets]``: offsets and distances [q, k]."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    nq = queries.shape[0]
    qnorms = query_norms(queries, metric)
    if offsets.shape[0] == 0:
        return np.full((nq, k), -1, dtype=np.int64), np.full((nq, k), np.inf, dtype=np.float32)
    if nq == 1:
        threads = get_num_threads() if offsets.shape[0] >= PARALLEL_SCAN_MIN_ROWS else 1
        if threads > 1:
            o, d = topk_scan_chunked(vectors, norms, queries[0], qnorms[0], offsets, keys, k, metric, threads)
        else:
            o, d = topk_scan(vectors, norms, queries[0], qnorms[0], offsets, keys, k, metric)
        return o[None, :], d[None, :]
    if nq >= GEMM_MIN_QUERIES and offsets.shape[0] >= GEMM_MIN_ROWS:
        return topk_gemm_batch(vectors, norms, queries, qnorms, offsets, keys, k, metric)
    if nq * offsets.shape[0] < PARALLEL_SCAN_MIN_ROWS:
        return topk_scan_serial(vectors, norms, queries, qnorms, offsets, keys, k, metric)
    return topk_scan_batch(vectors, norms, queries, qnorms, offsets, keys, k, metric)
