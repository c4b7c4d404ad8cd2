"""Seeded synthetic datasets: clustered Gaussians, and the adversarial window set.

The adversarial set follows the construction of Engels et al. (ICML 2024, window search): points
come in well-separated clusters and a point's label is its cluster id plus uniform noise, so sorting
by label groups the clusters. Each query sits in one cluster and asks for a window inside another
cluster's label range: every unfiltered near neighbour fails the filter, which is what breaks
post-filtering and graph search that only follows allowed nodes.
"""

from __future__ import annotations

import numpy as np


def clustered(n: int, dim: int, n_clusters: int, seed: int, spread: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 points around ``n_clusters`` random centres, and each point's cluster id."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    cluster = rng.integers(0, n_clusters, size=n)
    points = centres[cluster] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return points.astype(np.float32), cluster


def adversarial_windows(
    n: int, n_queries: int, dim: int, n_clusters: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train, train label, train cluster, test, test cluster).

    Labels are ``cluster + U[0, 1)`` so each cluster owns one unit of the label axis. Clusters are
    far apart relative to their spread, so a query's true unfiltered neighbours all lie in its own
    cluster.
    """
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.standard_normal((n_clusters, dim)).astype(np.float32)
    cluster = np.sort(rng.integers(0, n_clusters, size=n))
    train = centres[cluster] + rng.standard_normal((n, dim)).astype(np.float32)
    label = cluster + rng.random(n)
    query_cluster = rng.integers(0, n_clusters, size=n_queries)
    test = centres[query_cluster] + rng.standard_normal((n_queries, dim)).astype(np.float32)
    return train.astype(np.float32), label, cluster, test.astype(np.float32), query_cluster
