"""Range graphs: HNSW graphs over runs of a numeric attribute's value order, for ranges on attributes
other than the collection's window.

A segment is sorted by its window attribute only, so a range on another number (a rating, a vote
count) allows rows scattered over the whole segment: its graph walk keeps a quarter of the rows for a
quarter of the values and pays for the three quarters it passes. Here the non-null rows of such an
attribute, in value order, are split into ``RANGE_BUCKETS`` runs of equal row count, and every two
neighbouring runs are joined into a straddle run (as the window tree's straddle buckets); each run
gets its own graph. A range lying inside a run is then walked there, masked to its rows: a quarter of
the values inside a run of a quarter or a half of the rows, not of all of them.

The rows' searched vectors are copied once per attribute in value order, and every run's graph is
built on a slice of that copy (a run is contiguous in value order), so an attribute costs one copy of
the vectors and about 2.5 graphs over the segment's rows. The engine prices and runs them with the
term graphs (``vecstore.engine.term_search``); this module builds, persists and looks them up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecstore.index.hnsw import HnswGraph, HnswIndex, build_prepared, stored_dim
from vecstore.index.payload import NumericIndex

#: runs of one attribute's value order, each a quarter of its non-null rows; with the straddles over
#: neighbouring pairs a range of up to a quarter of the values lies in a run of at most half the rows
RANGE_BUCKETS = 4


def run_bounds(n: int, buckets: int = RANGE_BUCKETS) -> list[tuple[int, int, bool]]:
    """(start, stop, straddle) in value order of every run over ``n`` rows: the equal-count runs, then
    each two neighbouring ones joined."""
    cuts = [i * n // buckets for i in range(buckets + 1)]
    runs = [(cuts[i], cuts[i + 1], False) for i in range(buckets)]
    return runs + [(cuts[i], cuts[i + 2], True) for i in range(buckets - 1)]


@dataclass(frozen=True)
class RangeRun:
    """The graph over positions ``[start, stop)`` of one attribute's value order; node i is segment row
    ``rows[i]`` (the rows in value order, so not ascending)."""

    field: str
    start: int
    stop: int
    straddle: bool
    rows: np.ndarray  # int64 [stop - start]
    index: HnswIndex

    @property
    def num_rows(self) -> int:
        return self.stop - self.start

    def describe(self) -> str:
        return f"{'straddle ' if self.straddle else ''}range graph of {self.field} over {self.num_rows} rows"


class FieldRanges:
    """The range graphs of one numeric attribute of a segment."""

    def __init__(self, field: str, order: np.ndarray, searched: np.ndarray, graphs: list[HnswGraph],
                 dim: int) -> None:  # fmt: skip
        self.field = field
        self.order = order  # int64 [non-null rows]: segment offsets in value order
        self.searched = searched  # the searched rows of ``order``, in that order
        bounds = run_bounds(order.shape[0])
        if len(graphs) != len(bounds):
            raise ValueError(f"range graphs of {field!r} need {len(bounds)} graphs, got {len(graphs)}")
        self.runs: list[RangeRun] = []
        for (start, stop, straddle), graph in zip(bounds, graphs, strict=True):
            if graph.n != stop - start:
                raise ValueError(f"range graph of {field!r} over rows {start}..{stop} has {graph.n} nodes")
            rows = searched[start:stop]
            self.runs.append(RangeRun(field, start, stop, straddle, order[start:stop],
                                      HnswIndex(graph, rows[:, :dim], prepared=rows)))  # fmt: skip

    def holder(self, start: int, stop: int) -> RangeRun | None:
        """The fewest-row run holding value-order positions ``[start, stop)`` (a non-empty span), or None
        when only the whole segment does."""
        holding = [run for run in self.runs if run.start <= start and stop <= run.stop]
        return min(holding, key=lambda run: run.num_rows, default=None)

    @property
    def nbytes(self) -> int:
        """The graphs, the value order and its copy of the vectors."""
        return int(sum(run.index.graph.nbytes for run in self.runs) + self.order.nbytes + self.searched.nbytes)

    @staticmethod
    def build(
        root: HnswIndex,
        field: str,
        index: NumericIndex,
        min_rows: int,
        seed: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> FieldRanges | None:
        """The runs' graphs (the root's m and ef_construction) over a value-ordered copy of the root's
        searched rows; None when a run would have fewer than ``min_rows`` rows."""
        order = np.ascontiguousarray(index.rows, dtype=np.int64)
        if order.shape[0] // RANGE_BUCKETS < min_rows:
            return None
        g = root.graph
        searched = np.ascontiguousarray(root.vectors[order])
        graphs = []
        for j, (start, stop, _) in enumerate(run_bounds(order.shape[0])):
            run_seed = seed + 7919 * j + start
            graphs.append(
                build_prepared(
                    searched[start:stop], g.metric, g.m, g.ef_construction, run_seed, should_stop=should_stop
                )
            )
        return FieldRanges(field, order, searched, graphs, stored_dim(searched, g.metric))

    def to_arrays(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"{prefix}order": self.order, f"{prefix}vectors": self.searched}
        graphs = []
        for j, run in enumerate(self.runs):
            graph_meta, graph_arrays = run.index.graph.to_arrays()
            graphs.append(graph_meta)
            arrays.update({f"{prefix}{j}.{name}": array for name, array in graph_arrays.items()})
        return {"field": self.field, "graphs": graphs}, arrays

    @staticmethod
    def from_arrays(meta: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str, num_rows: int) -> FieldRanges:
        """The graphs from ``to_arrays``' output; ValueError or KeyError when torn."""
        order, searched = arrays[f"{prefix}order"], arrays[f"{prefix}vectors"]
        if order.shape[0] != searched.shape[0]:
            raise ValueError(f"range graphs of {meta['field']!r}: {searched.shape[0]} vectors, {order.shape[0]} rows")
        if order.shape[0] and (order.min() < 0 or order.max() >= num_rows):
            raise ValueError(f"range graphs of {meta['field']!r} name rows outside the segment's {num_rows}")
        graphs = []
        for j, graph_meta in enumerate(meta["graphs"]):
            own = f"{prefix}{j}."
            graph_arrays = {k[len(own) :]: v for k, v in arrays.items() if k.startswith(own)}
            graphs.append(HnswGraph.from_arrays(graph_meta, graph_arrays))
        metric = graphs[0].metric if graphs else "l2"
        return FieldRanges(str(meta["field"]), order, searched, graphs, stored_dim(searched, metric))
