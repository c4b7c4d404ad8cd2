"""vecstore itself: embedded (in-process) and through the gRPC client against a server process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import ClassVar

import numpy as np

from bench.algorithms.base import EF_GRID, Algorithm
from bench.workloads import RANGE_COLUMNS

LOAD_BATCH_ROWS = 20_000


def _seal_and_index(col) -> None:
    """Seal the appendable rows and wait until every segment has its graph (or say why not)."""
    col.seal()
    if not col.wait_for_indexes():
        raise RuntimeError(f"graph build failed: {col.describe()['segments']}")


class VecstoreEmbedded(Algorithm):
    name = "vecstore"
    releases_gil = True

    def __init__(self, threads: int = 1, m: int = 16, ef_construction: int = 200) -> None:
        super().__init__(threads)
        import vecstore  # imported before fit so its import is not counted as index memory

        self.vecstore = vecstore
        self.build_args = {"m": m, "ef_construction": ef_construction}
        self.search_args: dict = {}
        self.plan: str | None = None

    quantization: ClassVar[dict | None] = None  # the collection's codes (None: floats only)

    def _open(self, folder: str):
        return self.vecstore.connect(folder)

    def fit(self, dataset) -> None:
        self.folder = tempfile.mkdtemp(prefix="bench-vecstore-")
        self.db = self._open(self.folder)
        self.columns = dataset.columns
        # every category and tag column gets graphs for its large terms, and every numeric column the
        # bench filters by ranges gets range graphs, as a user filtering on them would configure (the
        # rows' vectors are copied per term and per ranged column: the memory column shows the cost)
        ranged = RANGE_COLUMNS.get(dataset.name, ())
        terms = [name for name, kind in dataset.schema.items() if kind in ("string", "list<string>") or name in ranged]
        self.build_args = {**self.build_args, "term_graphs": terms}
        col = self.db.create_collection(
            "bench", dim=dataset.train.shape[1], metric=dataset.metric, attributes=dataset.schema,
            window=dataset.window, hnsw=self.build_args, quantization=self.quantization,
        )  # fmt: skip
        arrays = {name: c.to_arrow() for name, c in dataset.columns.items()}
        n = len(dataset.train)
        for start in range(0, n, LOAD_BATCH_ROWS):
            stop = min(n, start + LOAD_BATCH_ROWS)
            col.upsert(np.arange(start, stop), dataset.train[start:stop],
                       {name: a.slice(start, stop - start) for name, a in arrays.items()})  # fmt: skip
        self.col = col
        self._seal()

    def _seal(self) -> None:
        """Seal, and wait for the segment graphs: their build is part of the build time."""
        _seal_and_index(self.col)

    def set_threads(self, threads: int) -> None:
        import numba

        self.threads = threads
        numba.set_num_threads(threads)

    def query_argument_grid(self, preset):
        """The graph at each ef (the planner still scans where that is cheaper), then the exact path.

        The exact path comes last: the runner stops a sweep once recall saturates, and the first
        configuration must not be the one that always saturates."""
        return [{"ef": ef} for ef in EF_GRID[preset]] + [{"exact": True}]

    def set_query_arguments(self, **args) -> None:
        self.search_args = args

    def _run(self, queries, k, filters) -> np.ndarray:
        result = self.col.search(queries, k=k, filter=filters, **self.search_args)
        self.plan = result.strategy
        return result.ids

    def query(self, q, k):
        return self._run(q, k, None)[0]

    def batch_query(self, queries, k):
        return self._run(queries, k, None)

    def prepare_filters(self, predicates) -> None:
        self.filters = {id(p): p.to_vecstore(self.columns) for p in predicates if p is not None}

    def _filter(self, predicate):
        prepared = getattr(self, "filters", {}).get(id(predicate))
        return prepared if prepared is not None else predicate.to_vecstore(self.columns)

    def filtered_query(self, q, k, predicate, mask):
        return self._run(q, k, self._filter(predicate))[0]

    def filtered_batch_query(self, queries, k, predicates, masks):
        return self._run(queries, k, [self._filter(p) for p in predicates])

    def last_plan(self):
        return self.plan

    def index_bytes(self):
        memory = self.col.describe()["memory"]
        return int(memory["vector_bytes"] + memory["graph_bytes"] + memory["code_bytes"] + memory["term_graph_bytes"])

    def index_parts(self):
        described = self.col.describe()
        return {**described["memory"], "build_seconds": described.get("build_seconds", {})}

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)


class VecstoreSq8(VecstoreEmbedded):
    """vecstore embedded, its collection with sq8 codes: graphs walked over one byte a dimension where
    the planner prices that cheaper (128 dimensions up), every result rescored on the float rows."""

    name = "vecstore-sq8"
    quantization: ClassVar[dict | None] = {"kind": "sq8"}


class VecstoreGrpc(VecstoreEmbedded):
    """The same calls through ``vecstore.Client`` against ``vecstore serve`` on loopback.

    The server runs with as many Numba threads as the mode allows (restarted when the mode changes),
    so the single-thread mode stays single-threaded on the server side too.
    """

    name = "vecstore-grpc"
    index_in_process = False

    def _start_server(self, threads: int) -> None:
        self._stop_server()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NUMBA_NUM_THREADS": str(threads)}
        self.server = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--data", self.folder, "--port", "0",
             "--log-level", "warning"],
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        line = self.server.stdout.readline()
        if "serving on" not in line:
            self._stop_server()
            raise RuntimeError(f"vecstore server did not start: {line!r}")
        self.client = self.vecstore.Client(line.split("serving on ")[1].split()[0])
        self.server_threads = threads

    def _stop_server(self) -> None:
        client, server = getattr(self, "client", None), getattr(self, "server", None)
        if client is not None:
            client.close()
            self.client = None
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
            self.server = None

    def _open(self, folder: str):
        self._start_server(2)
        return self.client

    def _seal(self) -> None:
        """The client API has no seal (the server seals by size), so seal embedded while the server is down:
        both vecstore runs then search the same sealed layout."""
        self._stop_server()
        with self.vecstore.connect(self.folder) as db:
            _seal_and_index(db.collection("bench"))
        self._start_server(2)
        self.col = self.client.collection("bench")

    def set_threads(self, threads: int) -> None:
        self.threads = threads
        if hasattr(self, "col") and self.server_threads != threads:
            self._start_server(threads)
            self.col = self.client.collection("bench")

    def index_bytes(self):
        return None

    def index_parts(self):
        return None  # built in this process before the server opened it: the embedded rows say it

    def close(self) -> None:
        self._stop_server()
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)
