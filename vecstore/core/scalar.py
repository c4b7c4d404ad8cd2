"""Scalar quantisation kernels: one signed byte a dimension, each dimension with its own range.

A row decodes to ``offset + step * code`` (float32 [dim] each, code int8 [dim]). Codes are four times
smaller than float rows and cheaper to compare: at 784-d a distance to a random row costs about 100 ns
against 240 ns for the float row, which no longer fits the cache.

A query is prepared once as float32 [2, dim] so that a distance needs no per-row constant:
- ``L2``: row 0 is the query less the offset, row 1 the step; the squared distance to the decoded row
  is ``sum((step * code - row0)**2)``;
- ``IP``: row 0 is the query times the step; ``-sum(row0 * code)`` is the negative inner product with
  the decoded row less ``query . offset``, a constant of the query that changes no ranking.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vecstore.core.exact import SCAN_PREFETCH_MIN_ROW_BYTES, prefetch_row_ahead
from vecstore.core.topk import drained, heap_arrays, offer_if_kept

L2, IP = 0, 1
CODE_MIN, CODE_MAX = -128, 127
#: Each dimension's range is read between these quantiles of the sample, so one outlying value does
#: not stretch the step of every other row; values outside are clipped to the end codes.
RANGE_QUANTILE = 0.0005
#: Rows whose estimates a scan computes before offering them to its top-k heap.
ESTIMATE_BLOCK_ROWS = 256


def fit_range(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, step)`` float32 [dim] that spread each dimension of ``sample`` over the 256 codes."""
    low = np.quantile(sample, RANGE_QUANTILE, axis=0).astype(np.float64)
    high = np.quantile(sample, 1.0 - RANGE_QUANTILE, axis=0).astype(np.float64)
    span = high - low
    # a constant dimension still needs a positive step; its rows all get CODE_MIN, which decodes exactly
    step = np.where(span > 0, span / (CODE_MAX - CODE_MIN), 1.0)
    offset = low - CODE_MIN * step
    return offset.astype(np.float32), step.astype(np.float32)


def encode(rows: np.ndarray, offset: np.ndarray, step: np.ndarray) -> np.ndarray:
    """int8 codes [n, dim] of float rows: the nearest code of each value, clipped to the range."""
    scaled = (np.asarray(rows, dtype=np.float32) - offset) / step
    return np.clip(np.rint(scaled), CODE_MIN, CODE_MAX).astype(np.int8)


def decode(codes: np.ndarray, offset: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The float32 rows codes stand for."""
    return (offset + step * codes.astype(np.float32)).astype(np.float32)


@njit(inline="always")
def prepare_query(query, offset, step, metric):
    """One float32 query [dim] as the kernels compare it with codes: float32 [2, dim] (module docstring)."""
    out = np.empty((2, query.shape[0]), dtype=np.float32)
    for j in range(query.shape[0]):
        out[0, j] = query[j] - offset[j] if metric == L2 else query[j] * step[j]
        out[1, j] = step[j]
    return out


@njit(nogil=True, cache=True)
def prepare_one(query, offset, step, metric, unit):
    """``prepare_query``, the query first brought to unit length when ``unit`` (a cosine collection's
    codes are built on unit rows); its length is summed in float64, and a zero query is left as is."""
    if not unit:
        return prepare_query(query, offset, step, metric)
    total = 0.0
    for j in range(query.shape[0]):
        total += np.float64(query[j]) * np.float64(query[j])
    norm = np.sqrt(total) if total > 0.0 else 1.0
    scaled = np.empty(query.shape[0], dtype=np.float32)
    for j in range(query.shape[0]):
        scaled[j] = np.float32(np.float64(query[j]) / norm)
    return prepare_query(scaled, offset, step, metric)


@njit(nogil=True, cache=True)
def _prepare_rows(queries, offset, step, metric, unit):
    out = np.empty((queries.shape[0], 2, queries.shape[1]), dtype=np.float32)
    for i in range(queries.shape[0]):
        out[i] = prepare_one(queries[i], offset, step, metric, unit)
    return out


def prepare_queries(
    queries: np.ndarray, offset: np.ndarray, step: np.ndarray, metric: int, unit: bool = False
) -> np.ndarray:
    """Queries [q, dim] as the kernels compare them with codes: float32 [q, 2, dim] (``prepare_one``:
    each at unit length first when ``unit``)."""
    return _prepare_rows(np.ascontiguousarray(queries, dtype=np.float32), offset, step, metric, unit)


@njit(nogil=True, cache=True, fastmath=True)
def code_distance(row, query, metric):
    """The distance from one code row int8 [dim] to a prepared query [2, dim] (module docstring)."""
    target = query[0]
    acc = np.float32(0.0)
    if metric == L2:
        step = query[1]
        for j in range(target.shape[0]):
            diff = np.float32(row[j]) * step[j] - target[j]
            acc += diff * diff
        return acc
    for j in range(target.shape[0]):
        acc += np.float32(row[j]) * target[j]
    return -acc


@njit(nogil=True, cache=True, fastmath=True)
def code_distance4(ra, rb, rc, rd, query, metric):
    """``code_distance`` of four code rows at once (their loads overlap), as a tuple of four."""
    target = query[0]
    sa = sb = sc = sd = np.float32(0.0)
    if metric == L2:
        step = query[1]
        for j in range(target.shape[0]):
            s, t = step[j], target[j]
            da = np.float32(ra[j]) * s - t
            db = np.float32(rb[j]) * s - t
            dc = np.float32(rc[j]) * s - t
            dd = np.float32(rd[j]) * s - t
            sa += da * da
            sb += db * db
            sc += dc * dc
            sd += dd * dd
        return sa, sb, sc, sd
    for j in range(target.shape[0]):
        t = target[j]
        sa += np.float32(ra[j]) * t
        sb += np.float32(rb[j]) * t
        sc += np.float32(rc[j]) * t
        sd += np.float32(rd[j]) * t
    return -sa, -sb, -sc, -sd


@njit(nogil=True, cache=True)
def estimate_topk(codes, query, metric, offsets, keys, count):
    """The ``count`` rows of ``offsets`` nearest a prepared query by their codes: offsets int64 [count]
    and estimates float32 [count], ascending (ties to the smaller key), -1 / +inf padded."""
    hd, hk, ho = heap_arrays(min(count, offsets.shape[0]))
    cap = hd.shape[0]
    size = 0
    m = offsets.shape[0]
    # scattered rows (a term's inside a window) miss the cache: ask for a row two ahead while this one
    # is scored, as the float scan does
    prefetch = codes.shape[1] >= SCAN_PREFETCH_MIN_ROW_BYTES
    # a block's estimates first, then offered: the scoring loop stays free of the heap's branches and of
    # reading a loser's key (800 rows of 1536-d: 10-20% less time)
    block = np.empty(ESTIMATE_BLOCK_ROWS, dtype=np.float32)
    for start in range(0, m, ESTIMATE_BLOCK_ROWS):
        stop = min(m, start + ESTIMATE_BLOCK_ROWS)
        for j in range(start, stop):
            if prefetch:
                prefetch_row_ahead(codes, offsets, j)
            block[j - start] = code_distance(codes[offsets[j]], query, metric)
        for j in range(start, stop):
            d = block[j - start]
            if size < cap or d <= hd[0]:  # a tie may still win on the smaller key
                row = offsets[j]
                size = offer_if_kept(hd, hk, ho, size, d, keys[row], row)
    return drained(hd, hk, ho, size, count)


@njit(nogil=True, cache=True, parallel=True)
def estimate_topk_batch(codes, queries, metric, offsets, keys, count):
    """``estimate_topk`` for each prepared query [q, 2, dim] (one query per thread): [q, count] each."""
    nq = queries.shape[0]
    out_offsets = np.empty((nq, count), dtype=np.int64)
    out_estimates = np.empty((nq, count), dtype=np.float32)
    for i in prange(nq):
        o, e = estimate_topk(codes, queries[i], metric, offsets, keys, count)
        out_offsets[i] = o
        out_estimates[i] = e
    return out_offsets, out_estimates
