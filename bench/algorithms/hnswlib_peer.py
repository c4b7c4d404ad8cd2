"""hnswlib (C++ HNSW), filtered through its per-label callback."""

from __future__ import annotations

import numpy as np

from bench.algorithms.base import EF_GRID, Algorithm, pad, require


class Hnswlib(Algorithm):
    name = "hnswlib"
    releases_gil = False  # the Python filter callback takes the GIL for every visited node

    def __init__(self, threads: int = 1, m: int = 16, ef_construction: int = 200) -> None:
        super().__init__(threads)
        self.hnswlib = require("hnswlib", "hnswlib")
        self.build_args = {"m": m, "ef_construction": ef_construction}

    def fit(self, dataset) -> None:
        space = {"l2": "l2", "cosine": "cosine", "ip": "ip"}[dataset.metric]
        self.index = self.hnswlib.Index(space=space, dim=dataset.train.shape[1])
        self.index.init_index(max_elements=len(dataset.train), M=self.build_args["m"],
                              ef_construction=self.build_args["ef_construction"], random_seed=1)  # fmt: skip
        self.index.add_items(dataset.train, np.arange(len(dataset.train)), num_threads=2)

    def query_argument_grid(self, preset):
        return [{"ef": ef} for ef in EF_GRID[preset]]

    def set_query_arguments(self, ef: int) -> None:
        self.index.set_ef(ef)

    def query(self, q, k):
        return self.index.knn_query(q, k=k, num_threads=1)[0][0]

    def batch_query(self, queries, k):
        return self.index.knn_query(queries, k=k, num_threads=self.threads)[0].astype(np.int64)

    def filtered_query(self, q, k, predicate, mask):
        allowed = int(mask.sum())
        kk = min(k, allowed)
        if kk == 0:
            return np.full(k, -1)
        try:
            labels, _ = self.index.knn_query(q, k=kk, num_threads=1, filter=lambda label: mask[label])
        except RuntimeError:  # fewer than kk allowed rows reached: hnswlib refuses to return a short answer
            return np.full(k, -1)
        return pad(labels[0], k)

    def index_bytes(self):
        return int(self.index.index_file_size())
