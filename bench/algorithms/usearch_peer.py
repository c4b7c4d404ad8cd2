"""usearch (C++ HNSW). Its Python API has no predicate filter (the C++ one does), so filtered
queries post-filter: ask for ``k / fraction`` (times a margin) results and keep the allowed ones."""

from __future__ import annotations

import math

import numpy as np

from bench.algorithms.base import EF_GRID, Algorithm, pad, require

POSTFILTER_MARGIN = 1.5


class Usearch(Algorithm):
    name = "usearch"

    def __init__(self, threads: int = 1, m: int = 16, ef_construction: int = 200) -> None:
        super().__init__(threads)
        self.usearch = require("usearch.index", "usearch")
        self.build_args = {"m": m, "ef_construction": ef_construction}

    def fit(self, dataset) -> None:
        metric = {"l2": "l2sq", "cosine": "cos", "ip": "ip"}[dataset.metric]
        self.n = len(dataset.train)
        self.index = self.usearch.Index(
            ndim=dataset.train.shape[1], metric=metric, dtype="f32",
            connectivity=self.build_args["m"], expansion_add=self.build_args["ef_construction"],
        )  # fmt: skip
        self.index.add(np.arange(self.n), dataset.train, threads=2)

    def query_argument_grid(self, preset):
        return [{"ef": ef} for ef in EF_GRID[preset]]

    def set_query_arguments(self, ef: int) -> None:
        self.index.expansion_search = ef

    def query(self, q, k):
        return self.index.search(q, k, threads=1).keys

    def batch_query(self, queries, k):
        return self.index.search(queries, k, threads=self.threads).keys.astype(np.int64)

    def filtered_query(self, q, k, predicate, mask):
        allowed = int(mask.sum())
        if allowed == 0:
            return np.full(k, -1)
        count = min(self.n, math.ceil(k * POSTFILTER_MARGIN * self.n / allowed))
        keys = np.asarray(self.index.search(q, count, threads=1).keys, dtype=np.int64)
        return pad(keys[mask[keys]], k)

    def index_bytes(self):
        return int(self.index.memory_usage)
