"""A sealed segment as the collection holds it: the mapped Arrow data, its graph once built, and the
deleted-row mask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vecstore.engine.views import SegmentView, norms_for
from vecstore.index.hnsw import HnswIndex
from vecstore.index.payload import PayloadIndex
from vecstore.index.quantization import Quantizer
from vecstore.index.term_graphs import TermGraphs
from vecstore.index.window_tree import WindowTree
from vecstore.storage import SegmentData


@dataclass
class SealedSegment:
    segment_id: int
    entry: dict[str, Any]  # its manifest entry
    data: SegmentData
    metric: str
    deleted: np.ndarray  # bool [n]; replaced (never mutated) when rows die, so snapshots stay valid
    sorted_by: str | None
    graph: HnswIndex | None = None
    payload: PayloadIndex | None = None  # None only while it is being (re)built at open
    tree: WindowTree | None = None  # bucket graphs over the window order, built after the graph
    codes: Quantizer | None = None  # the collection's quantiser over this segment, once built
    terms: TermGraphs | None = None  # graphs over the rows of large terms, built after the graph
    _norms: np.ndarray | None = None
    _unit_norms: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return self.data.num_rows

    @property
    def live_rows(self) -> int:
        return self.data.num_rows - int(self.deleted.sum())

    @property
    def dead_fraction(self) -> float:
        n = self.data.num_rows
        return float(self.deleted.sum()) / n if n else 1.0

    def search_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The vectors searches read and their norm term.

        A cosine graph carries unit vectors; the exact path then scans those too (inverse norms of 1),
        so searching never pages in the stored vectors and only one copy stays resident. Norms are
        computed on first use, not at open, for the same reason.
        """
        if self.graph is not None and self.metric == "cosine":
            if self._unit_norms is None:
                self._unit_norms = np.ones(self.data.num_rows, dtype=np.float32)
            return self.graph.vectors, self._unit_norms
        if self._norms is None:
            self._norms = norms_for(self.data.vectors, self.metric)
        return self.data.vectors, self._norms

    def view(self) -> SegmentView:
        live = None if not self.deleted.any() else ~self.deleted
        vectors, norms = self.search_rows()
        return SegmentView(
            self.segment_id,
            self.data.ids,
            vectors,
            norms,
            self.data.table,
            live,
            self.sorted_by,
            self.graph,
            self.payload,
            self.tree,
            self.codes,
            self.terms,
        )

    def file_names(self) -> list[str]:
        return entry_files(self.entry)


def entry_files(entry: dict[str, Any]) -> list[str]:
    """The files a segment's manifest entry names: the segment, its payload index, and its graph,
    window tree, codes and term graphs once built."""
    derived = ("payload", "graph", "window_tree", "codes", "term_graphs")
    return [entry["file"]] + [entry[key]["file"] for key in derived if entry.get(key)]
