"""The adapter interface every algorithm implements, as in ann-benchmarks / big-ann-benchmarks.

``fit`` builds the index over the train vectors and attributes; ``set_query_arguments`` applies one
point of the algorithm's sweep; ``query`` answers one query (one call per query, the single-thread
mode); ``batch_query`` answers all queries in one call (the multi-core mode). The filtered variants
receive each query's predicate in every form (``bench.predicates``): a boolean mask over train rows
for peers whose API takes a bitmap, id list or callback, and the predicate itself for systems that
evaluate filters themselves. Returned ids are train row numbers, padded with -1.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import numpy as np

from bench.annfile import BenchDataset
from bench.predicates import Predicate

#: the ``ef`` sweep of every HNSW peer, so graphs are compared at the same search settings. The quick
#: sweep steps by about sqrt(2) up to 80, where recall@10 crosses 0.95 for most filters: with steps of 2
#: an algorithm whose points fell at 0.94 and 0.99 was scored by its ef-doubled point, the one just
#: past 0.95 by a point at its threshold, a comparison of where the grid fell rather than of the walks.
EF_GRID = {
    "quick": [10, 14, 20, 28, 40, 56, 80, 160, 320],
    "full": [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 800],
}


class LibraryMissing(RuntimeError):
    """A peer's library is not installed."""


class Algorithm:
    #: the name in results and plots
    name = "algorithm"
    #: the build parameters reported with every result
    build_args: ClassVar[dict] = {}
    #: the library releases the GIL while it searches, so per-query calls may run on a thread pool
    releases_gil = True
    #: the index lives in this process (False for a client of a server process: RSS growth says nothing)
    index_in_process = True

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def fit(self, dataset: BenchDataset) -> None:
        raise NotImplementedError

    def set_threads(self, threads: int) -> None:
        self.threads = threads

    def set_query_arguments(self, **args) -> None:
        pass

    def query_argument_grid(self, preset: str) -> list[dict]:
        """The sweep of query arguments (one dict per point)."""
        return [{}]

    def prepare_filters(self, predicates: list[Predicate | None]) -> None:
        """Untimed, before a workload: turn predicates into the system's own filter form (peers get
        masks ready-made, so systems that take a filter expression get theirs ready-made too)."""

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def batch_query(self, queries: np.ndarray, k: int) -> np.ndarray:
        return self._map(lambda i: self.query(queries[i], k), len(queries), k)

    def filtered_batch_query(
        self, queries: np.ndarray, k: int, predicates: list[Predicate], masks: list[np.ndarray]
    ) -> np.ndarray:
        """Per-query filters differ, so by default each query runs on its own, spread over the threads."""
        return self._map(lambda i: self.filtered_query(queries[i], k, predicates[i], masks[i]), len(queries), k)

    def _map(self, one, n: int, k: int) -> np.ndarray:
        out = np.full((n, k), -1, dtype=np.int64)
        if self.threads <= 1 or not self.releases_gil:
            for i in range(n):
                out[i] = pad(one(i), k)
            return out
        with ThreadPoolExecutor(self.threads) as pool:
            for i, ids in enumerate(pool.map(one, range(n))):
                out[i] = pad(ids, k)
        return out

    def last_plan(self) -> str | None:
        """The strategy the system chose for the last call, if it reports one."""
        return None

    def index_bytes(self) -> int | None:
        """The index size the library itself reports, if it does."""
        return None

    def index_parts(self) -> dict | None:
        """The bytes and build seconds of each part of the index, where the system reports them."""
        return None

    def close(self) -> None:
        pass


def pad(ids: np.ndarray, k: int) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64).ravel()[:k]
    if len(ids) < k:
        ids = np.concatenate([ids, np.full(k - len(ids), -1, dtype=np.int64)])
    return ids


def normalized(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1), dtype=np.float32)


def require(module: str, package: str):
    """Import a peer's library or raise ``LibraryMissing`` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise LibraryMissing(f"{package} is not installed; run `make bench-install` (pip install '.[bench]')") from exc
