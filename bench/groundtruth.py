"""Exact ground truth for bench queries, from vecstore's exact kernels, checked against numpy.

Candidates come from the project's exact path (float32) with a margin of extra rows; their distances
are then recomputed in float64 with numpy and re-sorted, so float32 rounding in the kernel cannot
reorder near-ties in the stored answer. ``check_against_numpy`` compares a sample with a plain float64
numpy scan and raises if any stored distance disagrees.
"""

from __future__ import annotations

import numpy as np

from vecstore.core import exact

METRIC_CODES = {"l2": exact.L2, "ip": exact.IP, "cosine": exact.COSINE}
#: ann-benchmarks' names for the ``distance`` attribute of the HDF5 file
ANN_BENCHMARKS_DISTANCE = {"l2": "euclidean", "cosine": "angular", "ip": "inner_product"}
CANDIDATE_MARGIN = 16


def distances_to(vectors: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """float64 distances from ``query`` to each row (euclidean, 1 - cosine, or -dot), as ann-benchmarks reports."""
    x = np.asarray(vectors, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if metric == "l2":
        return np.sqrt(np.maximum(((x - q) ** 2).sum(axis=1), 0.0))
    dots = x @ q
    if metric == "ip":
        return -dots
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(q)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - np.where(norms > 0, dots / norms, 0.0)


class Searcher:
    """Exact top-k over a fixed train matrix, optionally restricted to allowed rows."""

    def __init__(self, train: np.ndarray, metric: str) -> None:
        self.train = np.ascontiguousarray(train, dtype=np.float32)
        self.metric = metric
        self.code = METRIC_CODES[metric]
        self.norms = exact.row_norms(self.train, self.code)
        self.keys = np.arange(len(self.train), dtype=np.int64)
        self.all_rows = self.keys

    def topk(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """ids int64 [q, k] padded -1, float64 distances padded +inf, sorted by (distance, id)."""
        rows = self.all_rows if allowed is None else np.flatnonzero(allowed)
        wide = min(len(rows), k + CANDIDATE_MARGIN)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        dists = np.full((len(queries), k), np.inf)
        if wide == 0:
            return ids, dists
        candidates, _ = exact.exact_topk(self.train, self.norms, queries, rows, self.keys, wide, self.code)
        for i, row in enumerate(candidates):
            row = row[row >= 0]
            d = distances_to(self.train[row], queries[i], self.metric)
            order = np.lexsort((row, d))[:k]
            ids[i, : len(order)] = row[order]
            dists[i, : len(order)] = d[order]
        return ids, dists


def check_against_numpy(
    train: np.ndarray,
    queries: np.ndarray,
    metric: str,
    ids: np.ndarray,
    distances: np.ndarray,
    allowed: list[np.ndarray | None] | None = None,
    sample: int = 16,
    seed: int = 0,
) -> None:
    """Raise ``AssertionError`` if stored answers differ from a float64 numpy scan on a sample."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(queries), size=min(sample, len(queries)), replace=False)
    for i in picks:
        mask = None if allowed is None else allowed[i]
        rows = np.arange(len(train)) if mask is None else np.flatnonzero(mask)
        d = distances_to(train[rows], queries[i], metric)
        k_true = min(ids.shape[1], len(rows))
        expected = np.sort(d)[:k_true]
        got = distances[i, :k_true]
        if not np.allclose(got, expected, rtol=1e-9, atol=1e-9):
            raise AssertionError(f"ground truth of query {i} disagrees with numpy: {got[:3]} vs {expected[:3]}")
        if mask is not None and not mask[ids[i, :k_true]].all():
            raise AssertionError(f"ground truth of query {i} holds a row outside its filter")
