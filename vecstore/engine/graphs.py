"""Segment graphs: built in the background after a seal, persisted beside the segment, mapped on open.

A seal or compaction publishes its segment without a graph, so writes never wait for one; until the
graph is published the planner scans that segment exactly. One builder thread per collection takes
the sealed segments that lack a graph, builds each (both cores, ``vecstore.index.hnsw``), writes it
as an array file (tmp + fsync + rename) and publishes it with one manifest transaction. A crash before
the publish leaves an orphan file that the next open removes; a graph file that fails its checksum is
derived data, so it is dropped and rebuilt rather than failing the collection.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vecstore.errors import DataCorruption, VecstoreError
from vecstore.index.hnsw import BuildCancelled, HnswGraph, HnswIndex
from vecstore.storage import open_array_file, verify_file, write_array_file

GRAPH_SUFFIX = ".hnsw"
#: segments smaller than this get no graph: an exact scan of them is about as fast and always exact
MIN_GRAPH_ROWS = 4096
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF = 64


@dataclass(frozen=True)
class GraphParams:
    metric: str
    m: int = DEFAULT_M
    ef_construction: int = DEFAULT_EF_CONSTRUCTION
    ef: int = DEFAULT_EF

    @staticmethod
    def from_schema(metric: str, hnsw: dict[str, Any]) -> GraphParams:
        return GraphParams(
            metric,
            int(hnsw.get("m", DEFAULT_M)),
            int(hnsw.get("ef_construction", DEFAULT_EF_CONSTRUCTION)),
            int(hnsw.get("ef", DEFAULT_EF)),
        )


def write_graph(directory: Path, segment_id: int, index: HnswIndex) -> dict[str, Any]:
    """Persist ``index`` for segment ``segment_id``; returns its manifest entry (file, bytes, sha256).

    Cosine and inner-product graphs carry the rows as they search them (unit / extended vectors), so
    reopening needs neither a rebuild nor a pass over the vectors.
    Each build gets a fresh file name, so a rebuild never overwrites the file the manifest names.
    """
    meta, arrays = index.graph.to_arrays()
    if index.prepared_vectors is not None:
        arrays = {**arrays, "search_vectors": index.prepared_vectors}
    name = f"seg-{segment_id:08d}-{uuid.uuid4().hex[:8]}{GRAPH_SUFFIX}"
    size, digest = write_array_file(directory / name, meta, arrays)
    return {"file": name, "bytes": size, "sha256": digest}


def open_graph(path: Path, entry: dict[str, Any], vectors: np.ndarray, *, verify: bool) -> HnswIndex:
    """The persisted graph of a segment, memory-mapped; DataCorruption if it is damaged or mismatched."""
    if verify:
        verify_file(path, entry["bytes"], entry["sha256"], "graph file")
    meta, arrays = open_array_file(path)
    try:
        graph = HnswGraph.from_arrays(meta, arrays)
    except (KeyError, TypeError) as exc:
        raise DataCorruption(f"graph file {path} lacks {exc}") from None
    if graph.n != vectors.shape[0]:
        raise DataCorruption(f"graph file {path} has {graph.n} nodes for a segment of {vectors.shape[0]} rows")
    try:
        return HnswIndex(graph, vectors, prepared=arrays.get("search_vectors"))
    except VecstoreError as exc:
        raise DataCorruption(f"graph file {path} does not fit its segment: {exc}") from None


@dataclass(frozen=True)
class BuildJob:
    segment_id: int
    vectors: np.ndarray


class GraphBuilder:
    """The background thread that gives sealed segments their graphs, one at a time.

    It shares the collection's lock: ``next_job`` and ``publish`` run under it, the build itself does
    not. ``stop`` cancels a build between kernel calls and joins the thread.
    """

    def __init__(
        self,
        name: str,
        lock: threading.RLock,
        directory: Path,
        params: GraphParams,
        next_job: Callable[[set[int]], BuildJob | None],
        publish: Callable[[int, dict[str, Any], HnswIndex], bool],
    ) -> None:
        self._name = name
        self._wake = threading.Condition(lock)
        self._directory = directory
        self._params = params
        self._next_job = next_job
        self._publish = publish
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.building: int | None = None
        self.failures: dict[int, str] = {}  # segment id -> error of its last attempt
        self.built = 0

    def notify(self) -> None:
        """Call with the lock held after segments change: wakes (or starts) the builder, retries failures."""
        if self._stopping.is_set():
            return
        self.failures.clear()
        if self._thread is None or not self._thread.is_alive():
            if self._next_job(set()) is None:
                return
            self._thread = threading.Thread(target=self._run, name=f"vecstore-graphs-{self._name}", daemon=True)
            self._thread.start()
        self._wake.notify_all()

    def idle(self) -> bool:
        """True when no graph is being built and none is waiting (lock held)."""
        return self.building is None and self._next_job(set(self.failures)) is None

    def wait(self, timeout: float | None) -> bool:
        """Block until idle or ``timeout`` seconds pass; True when idle with no failed build."""
        with self._wake:
            self._wake.wait_for(lambda: self._stopping.is_set() or self.idle(), timeout)
            return self.idle() and not self.failures

    def stop(self) -> None:
        """Cancel any build and wait for the thread; call without holding the lock."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                job = None
                while not self._stopping.is_set():
                    job = self._next_job(set(self.failures))
                    if job is not None:
                        break
                    self._wake.notify_all()  # idle: release waiters
                    self._wake.wait()
                if job is None:
                    return
                self.building = job.segment_id
            entry = None
            try:
                index = HnswIndex.build(
                    job.vectors,
                    self._params.metric,
                    self._params.m,
                    self._params.ef_construction,
                    seed=job.segment_id,
                    should_stop=self._stopping.is_set,
                )
                entry = write_graph(self._directory, job.segment_id, index)
                # serve from the file's mapping, as after a reopen: the built arrays are freed, and
                # the pages stay reclaimable by the kernel instead of pinned process memory
                index = open_graph(self._directory / entry["file"], entry, job.vectors, verify=False)
            except BuildCancelled:
                with self._wake:
                    self.building = None
                return
            except (OSError, MemoryError, VecstoreError) as exc:
                with self._wake:
                    self.failures[job.segment_id] = f"{type(exc).__name__}: {exc}"
                    self.building = None
                continue
            with self._wake:
                self.building = None
                if self._publish(job.segment_id, entry, index):
                    self.built += 1
                else:  # the segment went away (compacted, closed) while we built
                    (self._directory / entry["file"]).unlink(missing_ok=True)
                self._wake.notify_all()
