"""One query's search over scalar codes, rescored on the float rows, in one compiled call.

The single-query lane's counterparts of ``hnsw.search_single_keyed`` for a segment with sq8 codes:
each checks the query and prepares it for the codes (``vecstore.core.scalar.prepare_one``, as
``ScalarQuantizer.traversal_queries`` does), finds candidates by code distance (a graph walk, or a
scan of the allowed rows), then ranks them exactly as ``exact.topk_scan_one`` ranks any rows, so the
answer equals the general path's search-then-rescore.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vecstore.core.exact import COSINE, query_sq, topk_scan_one
from vecstore.core.hnsw import next_epoch, search_one
from vecstore.core.scalar import estimate_topk, prepare_one


@njit(inline="always")
def _not_searched(sq, k):
    return sq, np.full((1, k), -1, np.int64), np.full((1, k), -1, np.int64), np.full((1, k), np.inf, np.float32)


@njit(inline="always")
def _rescored(vectors, norms, query, metric, keys, k, found, node_rows):
    """The exact top-k among the candidates ``found`` (-1 ends them), as offsets, keys and distances;
    candidate i is row ``node_rows[found[i]]`` of ``vectors`` when ``node_rows`` is not empty."""
    reached = 0
    while reached < found.shape[0] and found[reached] >= 0:
        reached += 1
    rows = found[:reached].astype(np.int64)
    if node_rows.shape[0]:
        rows = node_rows[rows]
    offsets, hit_keys, distances, _ = topk_scan_one(vectors, norms, query, rows, keys, k, metric, 0)
    return offsets, hit_keys, distances


@njit(nogil=True, cache=True)
def walk_rescored_keyed(codes, offset, step, code_metric, vectors, norms, keys, node_rows, query, metric, k, count,
                        ef, entry, max_level, links0, counts0, links_up, counts_up, upper_offset, mask, use_mask,
                        visited, epoch_box, cand_d, cand_n, res_d, res_n):  # fmt: skip
    """The k nearest allowed rows to ``query`` (metric code of ``vecstore.core.exact``): the ``count``
    nearest by code distance found by a walk at ``ef`` (``use_mask`` as ``hnsw.search_one``), ranked
    on ``vectors`` / ``norms``. A graph over some of a segment's rows (a term or range graph) has codes
    of its own nodes, and node i is row ``node_rows[i]`` of ``vectors``, ``norms`` and ``keys`` (empty:
    row i). Returns the query's squared norm (not finite for a query holding NaN or inf, and then
    nothing is searched), offsets [1, k] of ``vectors``, their ``keys`` [1, k] and distances [1, k],
    padded -1 / -1 / +inf."""
    sq = query_sq(query)
    if not np.isfinite(sq):
        return _not_searched(sq, k)
    prepared = prepare_one(query, offset, step, code_metric, metric == COSINE)
    epoch = next_epoch(visited, epoch_box)
    found = np.empty(count, np.int32)
    found_d = np.empty(count, np.float32)
    search_one(codes, prepared, code_metric, count, max(ef, count), entry, max_level, links0, counts0, links_up,
               counts_up, upper_offset, visited, epoch, mask, use_mask, cand_d, cand_n, res_d, res_n, found,
               found_d)  # fmt: skip
    offsets, hit_keys, distances = _rescored(vectors, norms, query, metric, keys, k, found, node_rows)
    return sq, offsets, hit_keys, distances


_SEGMENT_ROWS = np.zeros(0, dtype=np.int64)


@njit(nogil=True, cache=True)
def scan_rescored_keyed(codes, offset, step, code_metric, vectors, norms, keys, query, metric, rows, k, count):
    """The k nearest of ``rows`` (ascending segment offsets) to ``query`` (metric code of
    ``vecstore.core.exact``): the ``count`` nearest by code distance (``scalar.estimate_topk``), ranked
    on ``vectors`` / ``norms``. Returns what ``walk_rescored_keyed`` returns."""
    sq = query_sq(query)
    if not np.isfinite(sq):
        return _not_searched(sq, k)
    prepared = prepare_one(query, offset, step, code_metric, metric == COSINE)
    found, _ = estimate_topk(codes, prepared, code_metric, rows, keys, count)
    offsets, hit_keys, distances = _rescored(vectors, norms, query, metric, keys, k, found, _SEGMENT_ROWS)
    return sq, offsets, hit_keys, distances
