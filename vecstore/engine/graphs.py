"""Segment graphs on disk: written beside their segment as array files, memory-mapped on open.

A seal or compaction publishes its segment without a graph, so writes never wait for one; the
collection's optimizer (``vecstore.engine.optimizer``) builds it in the background and until then the
planner scans that segment exactly. A graph file that fails its checksum is derived data, so it is
dropped and rebuilt rather than failing the collection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vecstore.errors import DataCorruption, VecstoreError
from vecstore.index.hnsw import HnswGraph, HnswIndex
from vecstore.index.payload import PayloadIndex
from vecstore.index.term_graphs import DEFAULT_MIN_ROWS as DEFAULT_TERM_MIN_ROWS
from vecstore.index.term_graphs import TermGraphs
from vecstore.index.window_tree import (
    DEFAULT_BETA,
    DEFAULT_LEAF_ROWS,
    DEFAULT_STRADDLE_LEVELS,
    WindowTree,
    tree_depth,
)
from vecstore.storage import open_array_file, verify_file, write_array_file

GRAPH_SUFFIX = ".hnsw"
TREE_SUFFIX = ".wtree"
TERMS_SUFFIX = ".tgraphs"
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
    tree_beta: int = DEFAULT_BETA  # 0: no window tree
    tree_leaf_rows: int = DEFAULT_LEAF_ROWS
    tree_straddle_levels: int = DEFAULT_STRADDLE_LEVELS
    term_fields: tuple[str, ...] = ()  # string / list<string> attributes whose large terms get graphs
    term_min_rows: int = DEFAULT_TERM_MIN_ROWS

    @staticmethod
    def from_schema(metric: str, hnsw: dict[str, Any]) -> GraphParams:
        return GraphParams(
            metric,
            int(hnsw.get("m", DEFAULT_M)),
            int(hnsw.get("ef_construction", DEFAULT_EF_CONSTRUCTION)),
            int(hnsw.get("ef", DEFAULT_EF)),
            int(hnsw.get("window_tree_beta", DEFAULT_BETA)),
            int(hnsw.get("window_tree_leaf_rows", DEFAULT_LEAF_ROWS)),
            int(hnsw.get("window_tree_straddle_levels", DEFAULT_STRADDLE_LEVELS)),
            tuple(hnsw.get("term_graphs", ())),
            int(hnsw.get("term_graph_min_rows", DEFAULT_TERM_MIN_ROWS)),
        )

    def wants_tree(self, rows: int) -> bool:
        """Whether a sorted segment of ``rows`` rows gets a window tree (at least one level of buckets)."""
        return self.tree_beta > 0 and tree_depth(rows, self.tree_beta, self.tree_leaf_rows) > 0


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
    try:  # HnswIndex checks that the graph, its prepared rows and the segment agree in size
        return HnswIndex(graph, vectors, prepared=arrays.get("search_vectors"))
    except VecstoreError as exc:
        raise DataCorruption(f"graph file {path} does not fit its segment: {exc}") from None


def build_graph_file(
    directory: Path, segment_id: int, vectors: np.ndarray, params: GraphParams, should_stop: Callable[[], bool]
) -> tuple[dict[str, Any], HnswIndex]:
    """Build a segment's graph, write it, and return (manifest entry, index served from the file).

    The index is reopened from the file's mapping, as after a restart: the built arrays are freed and
    the pages stay reclaimable by the kernel instead of pinned process memory.
    """
    index = HnswIndex.build(vectors, params.metric, params.m, params.ef_construction, seed=segment_id,
                            should_stop=should_stop)  # fmt: skip
    entry = write_graph(directory, segment_id, index)
    return entry, open_graph(directory / entry["file"], entry, vectors, verify=False)


def build_tree_file(
    directory: Path, segment_id: int, root: HnswIndex, params: GraphParams, should_stop: Callable[[], bool]
) -> tuple[dict[str, Any], WindowTree]:
    """Build a sorted segment's window tree over its graph, write it, and serve it from the file."""
    tree = WindowTree.build(root, params.tree_beta, params.tree_leaf_rows, seed=segment_id, should_stop=should_stop,
                            straddle_levels=params.tree_straddle_levels)  # fmt: skip
    meta, arrays = tree.to_arrays()
    name = f"seg-{segment_id:08d}-{uuid.uuid4().hex[:8]}{TREE_SUFFIX}"
    size, digest = write_array_file(directory / name, meta, arrays)
    entry = {"file": name, "bytes": size, "sha256": digest}
    return entry, open_tree(directory / name, entry, root, verify=False)


def open_tree(path: Path, entry: dict[str, Any], root: HnswIndex, *, verify: bool) -> WindowTree:
    """A segment's persisted window tree over its ``root`` graph, memory-mapped; DataCorruption if damaged."""
    if verify:
        verify_file(path, entry["bytes"], entry["sha256"], "window tree file")
    return WindowTree.from_arrays(root, *open_array_file(path))


def build_terms_file(
    directory: Path,
    segment_id: int,
    root: HnswIndex,
    payload: PayloadIndex,
    params: GraphParams,
    should_stop: Callable[[], bool],
) -> tuple[dict[str, Any], TermGraphs]:
    """Build a segment's term graphs (one per large term of ``params.term_fields``), write them, and
    serve them from the file."""
    terms = TermGraphs.build(root, payload, params.term_fields, params.term_min_rows, seed=segment_id,
                             should_stop=should_stop)  # fmt: skip
    meta, arrays = terms.to_arrays()
    name = f"seg-{segment_id:08d}-{uuid.uuid4().hex[:8]}{TERMS_SUFFIX}"
    size, digest = write_array_file(directory / name, meta, arrays)
    entry = {"file": name, "bytes": size, "sha256": digest}
    return entry, open_terms(directory / name, entry, root.graph.n, verify=False)


def open_terms(path: Path, entry: dict[str, Any], num_rows: int, *, verify: bool) -> TermGraphs:
    """A segment's persisted term graphs, memory-mapped; DataCorruption if damaged."""
    if verify:
        verify_file(path, entry["bytes"], entry["sha256"], "term graphs file")
    meta, arrays = open_array_file(path)
    return TermGraphs.from_arrays(meta, arrays, num_rows)
