"""Per-segment search results ([q, k] ids, offsets, distances and source view) and their merge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vecstore.core.exact import PARALLEL_SCAN_MIN_ROWS, exact_topk, topk_scan_one
from vecstore.core.topk import label_found
from vecstore.engine.views import SegmentView
from vecstore.index.quantization import rescore as rescore_candidates


@dataclass
class Hits:
    view_index: np.ndarray  # [q, k] index of the view each hit came from, -1 for padding
    ids: np.ndarray  # [q, k]
    offsets: np.ndarray  # [q, k]
    distances: np.ndarray  # [q, k]


def merge_hits(hits: list[Hits], nq: int, k: int) -> Hits:
    """Best k per query by (distance, id) across segments (or pieces of one); padding (-1 / inf) sorts last."""
    if not hits:
        padding = np.full((nq, k), -1, dtype=np.int64)
        return Hits(padding, padding.copy(), padding.copy(), np.full((nq, k), np.inf, dtype=np.float32))
    if len(hits) == 1:  # one segment searched: already ordered
        h = hits[0]
        return Hits(h.view_index[:, :k], h.ids[:, :k], h.offsets[:, :k], h.distances[:, :k])
    ids = np.concatenate([h.ids for h in hits], axis=1)
    dist = np.concatenate([h.distances for h in hits], axis=1)
    offs = np.concatenate([h.offsets for h in hits], axis=1)
    src = np.concatenate([h.view_index for h in hits], axis=1)
    # one sort for all queries: by query, then padding last, then distance, then id
    width = ids.shape[1]
    query_of = np.repeat(np.arange(nq), width)
    flat = np.lexsort((ids.ravel(), dist.ravel(), (ids < 0).ravel(), query_of)).reshape(nq, width)
    ids, dist, offs, src = (a.ravel()[flat] for a in (ids, dist, offs, src))
    return Hits(src[:, :k], ids[:, :k], offs[:, :k], dist[:, :k])  # padding sorted last, marked -1 in every array


def scan_rows(view: SegmentView, index: int, offsets: np.ndarray, queries: np.ndarray, k: int, metric: int) -> Hits:
    """Exact top-k of ``queries`` over the rows ``offsets`` of one view."""
    if queries.shape[0] == 1 and offsets.shape[0] < PARALLEL_SCAN_MIN_ROWS:
        # one kernel call does the whole job: a selective single search is mostly call overhead
        found, ids, distances, source = topk_scan_one(
            view.vectors, view.norms, queries[0], offsets, view.ids, k, metric, index
        )
        return Hits(source, ids, found, distances)
    found, distances = exact_topk(view.vectors, view.norms, queries, offsets, view.ids, k, metric)
    return found_hits(view, index, found, distances)


def found_hits(view: SegmentView, index: int, found: np.ndarray, distances: np.ndarray) -> Hits:
    """Hits from segment offsets (-1 padded): ids looked up, padding marked in every array."""
    ids, source = label_found(found, view.ids, index)
    return Hits(source, ids, found, distances)


def rescored(view: SegmentView, index: int, queries: np.ndarray, candidates: np.ndarray, k: int, metric: int) -> Hits:
    """Exact top-k of each query among its candidate rows [q, c] (-1 entries are padding)."""
    if queries.shape[0] == 1:  # one kernel call, as for any single scan
        return scan_rows(view, index, candidates[0][candidates[0] >= 0], queries, k, metric)
    found, distances = rescore_candidates(view.vectors, view.norms, queries, candidates, view.ids, k, metric)
    return found_hits(view, index, found, distances)
