"""vecstore's HNSW index on its own (``vecstore.index.hnsw``), outside the engine.

Measures the Numba graph kernels against the C++ peers at the same M and ef_construction until the
engine searches sealed segments through the graph; filters arrive as the same row masks the peers get.
"""

from __future__ import annotations

import numpy as np

from bench.algorithms.base import EF_GRID, Algorithm


class VecstoreHnswIndex(Algorithm):
    name = "vecstore-hnsw-index"

    def __init__(self, threads: int = 1, m: int = 16, ef_construction: int = 200) -> None:
        super().__init__(threads)
        from vecstore.index.hnsw import HnswIndex  # imported before fit: not counted as index memory

        self.HnswIndex = HnswIndex
        self.build_args = {"m": m, "ef_construction": ef_construction}
        self.ef = 16

    def fit(self, dataset) -> None:
        self.index = self.HnswIndex.build(dataset.train, dataset.metric, **self.build_args)

    def set_threads(self, threads: int) -> None:
        import numba

        self.threads = threads
        numba.set_num_threads(threads)

    def query_argument_grid(self, preset):
        return [{"ef": ef} for ef in EF_GRID[preset]]

    def set_query_arguments(self, ef: int) -> None:
        self.ef = ef

    def query(self, q, k):
        return self.index.search(q, k, self.ef)[0][0]

    def batch_query(self, queries, k):
        return self.index.search(queries, k, self.ef, threads=self.threads)[0]

    def filtered_query(self, q, k, predicate, mask):
        return self.index.search(q, k, self.ef, mask=mask)[0][0]

    def filtered_batch_query(self, queries, k, predicates, masks):
        return self.index.search(queries, k, self.ef, mask=np.stack(masks), threads=self.threads)[0]

    def index_bytes(self):
        return int(self.index.graph.nbytes + self.index.vectors.nbytes)
