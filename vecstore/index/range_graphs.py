"""Range graphs: HNSW graphs over runs of a numeric attribute's value order, for ranges on attributes
other than the collection's window.

A segment is sorted by its window attribute only, so a range on another number (a rating, a vote
count) allows rows scattered over the whole segment: its graph walk keeps a quarter of the rows for a
quarter of the values and pays for the three quarters it passes. Here the non-null rows of such an
attribute, in value order, are cut into ``RANGE_CELLS`` cells of equal row count, and runs of one, two
and three neighbouring cells (and halves) each get their own graph. A range lying inside a run is then
walked there, masked to its rows: a range of an eighth of the rows inside a run of a quarter, one of a
quarter inside a run of three eighths, not of all of them.

The rows' searched vectors are copied once per attribute in value order, and every run's graph is
built on a slice of that copy (a run is contiguous in value order), so an attribute costs one copy of
the vectors and graphs over about 6.5 times the segment's rows. The engine prices and runs them with
the term graphs (``vecstore.engine.term_search``); this module builds, persists and looks them up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecstore.index.hnsw import HnswGraph, HnswIndex, build_prepared, stored_dim
from vecstore.index.payload import NumericIndex

#: an attribute's non-null rows in value order are cut into this many cells of equal row count
RANGE_CELLS = 8
#: the runs over those cells, as (cells wide, cells apart): every cell, every two and every three
#: neighbouring cells, and halves at quarter offsets. A span of up to w - 1 cells lies inside a run
#: of w cells wherever it starts, so a range of an eighth of the rows is walked in a run of a quarter
#: and one of a quarter in a run of three eighths; the halves take wider ranges that fit one.
RUN_SHAPES: tuple[tuple[int, int], ...] = ((1, 1), (2, 1), (3, 1), (4, 2))
#: the layout of fields whose eighths would be too small for a graph (and of files written before
#: the runs were recorded): quarters and their neighbouring pairs
COARSE_CELLS, COARSE_SHAPES = 4, ((1, 1), (2, 1))


def run_bounds(
    n: int, cells: int = RANGE_CELLS, shapes: tuple[tuple[int, int], ...] = RUN_SHAPES
) -> list[tuple[int, int, bool]]:
    """(start, stop, straddle) in value order of every run over ``n`` rows cut into ``cells`` equal-count
    cells: for each (width, step) of ``shapes``, the runs ``width`` cells wide starting every ``step``
    cells. A straddle run spans more than one cell."""
    cuts = [i * n // cells for i in range(cells + 1)]
    return [(cuts[i], cuts[i + w], w > 1) for w, step in shapes for i in range(0, cells - w + 1, step)]


def layout_for(n: int, min_rows: int) -> list[tuple[int, int, bool]] | None:
    """The runs over ``n`` rows whose cells hold at least ``min_rows`` rows: eighths when they do,
    else quarters, else None."""
    if n // RANGE_CELLS >= min_rows:
        return run_bounds(n)
    if n // COARSE_CELLS >= min_rows:
        return run_bounds(n, COARSE_CELLS, COARSE_SHAPES)
    return None


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

    def __init__(self, field: str, order: np.ndarray, searched: np.ndarray, graphs: list[HnswGraph], dim: int,
                 bounds: list[tuple[int, int, bool]]) -> None:  # fmt: skip
        self.field = field
        self.order = order  # int64 [non-null rows]: segment offsets in value order
        self.searched = searched  # the searched rows of ``order``, in that order
        if len(graphs) != len(bounds):
            raise ValueError(f"range graphs of {field!r} need {len(bounds)} graphs, got {len(graphs)}")
        self.runs: list[RangeRun] = []
        for (start, stop, straddle), graph in zip(bounds, graphs, strict=True):
            if not 0 <= start < stop <= order.shape[0]:
                raise ValueError(f"range graph of {field!r} over rows {start}..{stop} of {order.shape[0]}")
            if graph.n != stop - start:
                raise ValueError(f"range graph of {field!r} over rows {start}..{stop} has {graph.n} nodes")
            rows = searched[start:stop]
            self.runs.append(RangeRun(field, start, stop, straddle, order[start:stop],
                                      HnswIndex(graph, rows[:, :dim], prepared=rows)))  # fmt: skip
        # asked once per planned range query: the first holding run in this order is the fewest-row one
        self._by_rows = sorted(self.runs, key=lambda run: run.num_rows)

    def holder(self, start: int, stop: int) -> RangeRun | None:
        """The fewest-row run holding value-order positions ``[start, stop)`` (a non-empty span), or None
        when only the whole segment does."""
        return next((run for run in self._by_rows if run.start <= start and stop <= run.stop), None)

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
        searched rows, laid out by ``layout_for``; None when even a quarter would have fewer than
        ``min_rows`` rows."""
        order = np.ascontiguousarray(index.rows, dtype=np.int64)
        bounds = layout_for(order.shape[0], min_rows)
        if bounds is None:
            return None
        g = root.graph
        searched = np.ascontiguousarray(root.vectors[order])
        graphs = []
        for j, (start, stop, _) in enumerate(bounds):
            run_seed = seed + 7919 * j + start
            graphs.append(
                build_prepared(
                    searched[start:stop], g.metric, g.m, g.ef_construction, run_seed, should_stop=should_stop
                )
            )
        return FieldRanges(field, order, searched, graphs, stored_dim(searched, g.metric), bounds)

    def to_arrays(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"{prefix}order": self.order, f"{prefix}vectors": self.searched}
        graphs = []
        for j, run in enumerate(self.runs):
            graph_meta, graph_arrays = run.index.graph.to_arrays()
            graphs.append(graph_meta)
            arrays.update({f"{prefix}{j}.{name}": array for name, array in graph_arrays.items()})
        runs = [[run.start, run.stop, run.straddle] for run in self.runs]
        return {"field": self.field, "graphs": graphs, "runs": runs}, arrays

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
        # files written before the runs were recorded hold the quarters' layout
        recorded = meta.get("runs")
        if recorded is None:
            bounds = run_bounds(order.shape[0], COARSE_CELLS, COARSE_SHAPES)
        else:
            bounds = [(int(start), int(stop), bool(straddle)) for start, stop, straddle in recorded]
        return FieldRanges(str(meta["field"]), order, searched, graphs, stored_dim(searched, metric), bounds)
