"""Recall as ann-benchmarks computes it: by distance threshold, so ties are not misses.

A returned row counts when its true distance to the query is within ``epsilon`` of the k-th true
neighbour's distance. Distances of returned rows are recomputed from the data (the algorithm's own
distance units never matter); -1 padding and repeated ids count nothing. When fewer than k rows match
the filter, recall is over the rows that exist.
"""

from __future__ import annotations

import numpy as np

from bench.groundtruth import distances_to

EPSILON = 1e-3


def query_recall(
    train: np.ndarray, query: np.ndarray, metric: str, found: np.ndarray, true_distances: np.ndarray, k: int
) -> float:
    true_count = int(np.isfinite(true_distances[:k]).sum())
    if true_count == 0:
        return 1.0
    threshold = true_distances[true_count - 1] + EPSILON
    ids = np.unique(found[:k][found[:k] >= 0])
    if len(ids) == 0:
        return 0.0
    hits = int((distances_to(train[ids], query, metric) <= threshold).sum())
    return min(hits, true_count) / true_count


def mean_recall(
    train: np.ndarray, queries: np.ndarray, metric: str, found: np.ndarray, true_distances: np.ndarray, k: int
) -> float:
    """Mean per-query recall@k of ``found`` [q, >=k] against ``true_distances`` [q, >=k]."""
    values = [query_recall(train, queries[i], metric, found[i], true_distances[i], k) for i in range(len(found))]
    return float(np.mean(values)) if values else float("nan")


def violations(found: np.ndarray, masks: list[np.ndarray | None]) -> int:
    """Returned rows that fail their query's filter (must be 0 for every correct system)."""
    bad = 0
    for ids, mask in zip(found, masks, strict=True):
        ids = ids[ids >= 0]
        if mask is not None and len(ids):
            bad += int((~mask[ids]).sum())
    return bad
