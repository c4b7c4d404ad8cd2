"""The baseline: exact search in numpy (boolean-mask prefilter, matrix product, argpartition)."""

from __future__ import annotations

import numpy as np

from bench.algorithms.base import Algorithm, normalized


def top_by_score(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest scores per row, best first (argpartition, then sort those)."""
    kk = min(k, scores.shape[1])
    if kk == 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


class NumpyExact(Algorithm):
    name = "numpy-exact"

    def fit(self, dataset) -> None:
        self.metric = dataset.metric
        self.train = normalized(dataset.train) if self.metric == "cosine" else np.ascontiguousarray(dataset.train)
        self.sq_norms = np.einsum("ij,ij->i", self.train, self.train) if self.metric == "l2" else None

    def _scores(self, rows: np.ndarray | None, queries: np.ndarray) -> np.ndarray:
        """Larger is closer: inner product, or -(|x|^2 - 2 x.q) for l2 (|q|^2 is the same for every row)."""
        x = self.train if rows is None else self.train[rows]
        q = normalized(queries) if self.metric == "cosine" else queries
        scores = q @ x.T
        if self.sq_norms is not None:
            scores = 2 * scores - (self.sq_norms if rows is None else self.sq_norms[rows])
        return scores

    def query(self, q, k):
        return top_by_score(self._scores(None, q[None, :]), k)[0]

    def batch_query(self, queries, k):
        return top_by_score(self._scores(None, queries), k)

    def filtered_query(self, q, k, predicate, mask):
        rows = np.flatnonzero(mask)
        return rows[top_by_score(self._scores(rows, q[None, :]), k)[0]]
