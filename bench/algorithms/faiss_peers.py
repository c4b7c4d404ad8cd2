"""FAISS HNSW-Flat and IVF-PQ (with exact refinement), filtered with ``IDSelectorBitmap``."""

from __future__ import annotations

import numpy as np

from bench.algorithms.base import EF_GRID, Algorithm, normalized, pad, require

#: steps of 2 in the quick sweep too, for the reason ``EF_GRID`` gives
IVF_NPROBE_GRID = {"quick": [1, 2, 4, 8, 16, 32, 64, 128, 256], "full": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]}


class _Faiss(Algorithm):
    def __init__(self, threads: int = 1) -> None:
        super().__init__(threads)
        self.faiss = require("faiss", "faiss-cpu")

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return normalized(x) if self.metric == "cosine" else np.ascontiguousarray(x, dtype=np.float32)

    def _metric(self, dataset):
        self.metric = dataset.metric
        return self.faiss.METRIC_L2 if dataset.metric == "l2" else self.faiss.METRIC_INNER_PRODUCT

    def set_threads(self, threads: int) -> None:
        # per-query calls run on a Python thread pool in batch mode; one OpenMP thread each
        self.threads = threads
        self.faiss.omp_set_num_threads(1)

    def _selector(self, mask: np.ndarray):
        bits = np.packbits(mask, bitorder="little")
        selector = self.faiss.IDSelectorBitmap(len(mask), self.faiss.swig_ptr(bits))
        selector.bits_ref = bits  # the selector reads the buffer; keep it alive
        return selector

    def query(self, q, k):
        return self.index.search(self._prepare(q[None, :]), k, params=self._params(None))[1][0]

    def batch_query(self, queries, k):
        self.faiss.omp_set_num_threads(self.threads)
        try:
            return self.index.search(self._prepare(queries), k, params=self._params(None))[1].astype(np.int64)
        finally:
            self.faiss.omp_set_num_threads(1)

    def index_bytes(self):
        return int(self.faiss.serialize_index(self.index).nbytes)

    def filtered_query(self, q, k, predicate, mask):
        return pad(self.index.search(self._prepare(q[None, :]), k, params=self._params(self._selector(mask)))[1][0], k)


class FaissHNSW(_Faiss):
    name = "faiss-hnsw"

    def __init__(self, threads: int = 1, m: int = 16, ef_construction: int = 200) -> None:
        super().__init__(threads)
        self.build_args = {"m": m, "ef_construction": ef_construction}

    def fit(self, dataset) -> None:
        metric = self._metric(dataset)
        self.index = self.faiss.IndexHNSWFlat(dataset.train.shape[1], self.build_args["m"], metric)
        self.index.hnsw.efConstruction = self.build_args["ef_construction"]
        self.faiss.omp_set_num_threads(2)
        self.index.add(self._prepare(dataset.train))
        self.faiss.omp_set_num_threads(1)
        self.ef = 16

    def query_argument_grid(self, preset):
        return [{"ef": ef} for ef in EF_GRID[preset]]

    def set_query_arguments(self, ef: int) -> None:
        self.ef = ef

    def _params(self, selector):
        return self.faiss.SearchParametersHNSW(efSearch=self.ef, sel=selector)


class FaissIVFPQ(_Faiss):
    """IVF-PQ with 1 byte per 8 dimensions, refined on the exact vectors (``IndexRefineFlat``)."""

    name = "faiss-ivfpq"

    def __init__(self, threads: int = 1, refine: int = 4) -> None:
        super().__init__(threads)
        self.refine = refine

    def fit(self, dataset) -> None:
        metric = self._metric(dataset)
        n, d = dataset.train.shape
        nlist = int(min(4096, max(16, 4 * np.sqrt(n))))
        pq_m = d // 8
        self.build_args = {"nlist": nlist, "pq_m": pq_m, "nbits": 8, "refine": self.refine}
        quantizer = self.faiss.IndexFlat(d, metric)
        base = self.faiss.IndexIVFPQ(quantizer, d, nlist, pq_m, 8, metric)
        x = self._prepare(dataset.train)
        sample = x[np.random.default_rng(0).permutation(n)[: min(n, 64 * nlist)]]
        self.faiss.omp_set_num_threads(2)
        base.train(sample)
        self.index = self.faiss.IndexRefineFlat(base)
        self.index.add(x)
        self.faiss.omp_set_num_threads(1)
        self.base, self.nprobe = base, 1

    def query_argument_grid(self, preset):
        return [{"nprobe": p} for p in IVF_NPROBE_GRID[preset] if p <= self.build_args["nlist"]]

    def set_query_arguments(self, nprobe: int) -> None:
        self.nprobe = nprobe

    def _params(self, selector):
        base = self.faiss.SearchParametersIVF(nprobe=self.nprobe, sel=selector)
        params = self.faiss.IndexRefineSearchParameters(k_factor=self.refine, base_index_params=base)
        params.base_ref = base  # SWIG does not keep the nested parameters alive
        return params
