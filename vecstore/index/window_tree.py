"""The window search tree of a segment sorted by its window attribute (after Engels et al., ICML 2024).

The segment's rows, in window order, are split into ``beta`` buckets of equal row count, each bucket
again into ``beta``, and so on; every bucket of at least ``leaf_rows`` rows gets its own HNSW graph
over its contiguous rows (the root bucket is the whole segment, whose graph the segment already has).
A window, a contiguous run of rows, can then be searched:

- ``cover``: through the few largest buckets lying wholly inside it, each searched without a filter,
  plus an exact scan of the rows at its ends that no graph bucket covers;
- ``postfilter``: through the smallest bucket that holds all of it, with the window as the mask; the
  bucket is at most about ``beta`` times the window (unless the window straddles a boundary high up);
- ``three_split``: below the smallest bucket holding it, the window spans several children: the whole
  children in the middle are searched unfiltered, the partial first and last child with their part
  as the mask.

The structure only says which buckets and row ranges to search; the engine runs and merges them.
Bucket graphs are built on slices of the segment's searched rows, so they add no copy of the vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecstore.errors import DataCorruption, InvalidArgument
from vecstore.index.hnsw import HnswGraph, HnswIndex, build_prepared

DEFAULT_BETA = 4
DEFAULT_LEAF_ROWS = 2048
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Bucket:
    level: int  # 0 is the whole segment
    number: int  # position within its level
    start: int
    stop: int
    index: HnswIndex | None  # None below leaf_rows (searched exactly); the segment graph at level 0

    @property
    def rows(self) -> int:
        return self.stop - self.start


def bucket_bounds(n: int, beta: int, level: int, number: int) -> tuple[int, int]:
    """Rows [start, stop) of a bucket. Children split their parent exactly: floor(i n / beta^level)."""
    width = beta**level
    return number * n // width, (number + 1) * n // width


def tree_depth(n: int, beta: int, leaf_rows: int) -> int:
    """The deepest level whose buckets all have at least ``leaf_rows`` rows (0: only the root)."""
    depth = 0
    while n // beta ** (depth + 1) >= leaf_rows:
        depth += 1
    return depth


def check_parameters(beta: Any, leaf_rows: Any) -> tuple[int, int]:
    if isinstance(beta, bool) or not isinstance(beta, int) or not 2 <= beta <= 64:
        raise InvalidArgument(f"window tree beta must be an integer between 2 and 64, got {beta!r}")
    if isinstance(leaf_rows, bool) or not isinstance(leaf_rows, int) or not 64 <= leaf_rows <= 1 << 24:
        raise InvalidArgument(f"window tree leaf_rows must be an integer between 64 and 16777216, got {leaf_rows!r}")
    return beta, leaf_rows


class WindowTree:
    """Bucket graphs of one sorted segment, levels 1..depth, and the root (the segment's graph)."""

    def __init__(self, root: HnswIndex, beta: int, leaf_rows: int, graphs: dict[tuple[int, int], HnswIndex]) -> None:
        self.root = root
        self.n = root.graph.n
        self.beta = beta
        self.leaf_rows = leaf_rows
        self.depth = tree_depth(self.n, beta, leaf_rows)
        self.graphs = graphs
        deepest = [bucket_bounds(self.n, beta, self.depth, i) for i in range(beta**self.depth)]
        #: rows of the smallest bucket with a graph (the deepest level's; sizes differ by rounding only)
        self.smallest_graph_rows = min(stop - start for start, stop in deepest)
        expected = {(lv, i) for lv in range(1, self.depth + 1) for i in range(beta**lv)}
        if set(graphs) != expected:
            raise InvalidArgument(
                f"window tree over {self.n} rows needs {len(expected)} bucket graphs, got {len(graphs)}"
            )

    # -- building and persistence ------------------------------------------------------------------
    @staticmethod
    def build(
        root: HnswIndex,
        beta: int = DEFAULT_BETA,
        leaf_rows: int = DEFAULT_LEAF_ROWS,
        seed: int = 0,
        should_stop: Callable[[], bool] | None = None,
    ) -> WindowTree:
        """Build every bucket graph on slices of the root's searched rows (same m and ef_construction)."""
        beta, leaf_rows = check_parameters(beta, leaf_rows)
        g = root.graph
        graphs: dict[tuple[int, int], HnswIndex] = {}
        for level in range(1, tree_depth(g.n, beta, leaf_rows) + 1):
            for number in range(beta**level):
                start, stop = bucket_bounds(g.n, beta, level, number)
                rows = root.vectors[start:stop]
                graph = build_prepared(rows, g.metric, g.m, g.ef_construction, seed + level * 7919 + number,
                                       should_stop=should_stop)  # fmt: skip
                graphs[(level, number)] = HnswIndex(graph, root.source[start:stop], prepared=rows)
        return WindowTree(root, beta, leaf_rows, graphs)

    @property
    def nbytes(self) -> int:
        """Bytes of the bucket graphs (their rows are views of the segment's, not copies)."""
        return sum(index.graph.nbytes for index in self.graphs.values())

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {"version": FORMAT_VERSION, "beta": self.beta, "leaf_rows": self.leaf_rows,
                                "rows": self.n, "buckets": []}  # fmt: skip
        arrays: dict[str, np.ndarray] = {}
        for j, ((level, number), index) in enumerate(sorted(self.graphs.items())):
            graph_meta, graph_arrays = index.graph.to_arrays()
            meta["buckets"].append({"level": level, "number": number, "graph": graph_meta})
            arrays.update({f"{j}.{name}": array for name, array in graph_arrays.items()})
        return meta, arrays

    @staticmethod
    def from_arrays(root: HnswIndex, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> WindowTree:
        """The tree from ``to_arrays``' output over the segment's ``root`` index; DataCorruption if torn."""
        try:
            if meta["version"] != FORMAT_VERSION or meta["rows"] != root.graph.n:
                raise ValueError(f"version {meta['version']} over {meta['rows']} rows, expected {root.graph.n}")
            beta, leaf_rows = int(meta["beta"]), int(meta["leaf_rows"])
            graphs = {}
            for j, bucket in enumerate(meta["buckets"]):
                level, number = int(bucket["level"]), int(bucket["number"])
                prefix = f"{j}."
                graph_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
                graph = HnswGraph.from_arrays(bucket["graph"], graph_arrays)
                start, stop = bucket_bounds(root.graph.n, beta, level, number)
                graphs[(level, number)] = HnswIndex(graph, root.source[start:stop], prepared=root.vectors[start:stop])
            return WindowTree(root, beta, leaf_rows, graphs)
        except (KeyError, TypeError, ValueError, InvalidArgument) as exc:
            raise DataCorruption(f"window tree is damaged: {exc}") from None

    # -- planning a window -------------------------------------------------------------------------
    def bucket(self, level: int, number: int) -> Bucket:
        start, stop = bucket_bounds(self.n, self.beta, level, number)
        index = self.root if level == 0 else self.graphs.get((level, number))
        return Bucket(level, number, start, stop, index)

    def holder(self, lo: int, hi: int) -> tuple[int, int]:
        """(level, number) of the deepest graph bucket that holds rows [lo, hi) entirely (0, 0: the root)."""
        n, beta = self.n, self.beta
        found = (0, 0)
        for level in range(1, self.depth + 1):
            width = beta**level
            number = lo * width // n  # the bucket holding row lo, up to rounding
            while (number + 1) * n // width <= lo:
                number += 1
            while number * n // width > lo:
                number -= 1
            if hi > (number + 1) * n // width:
                break
            found = (level, number)
        return found

    def smallest_holding(self, lo: int, hi: int) -> Bucket:
        """The deepest graph bucket that holds rows [lo, hi) entirely (the root when none deeper does)."""
        return self.bucket(*self.holder(lo, hi))

    def children(self, bucket: Bucket) -> Iterator[Bucket]:
        """The buckets one level down; below the deepest level, none (their rows are scanned exactly)."""
        if bucket.level >= self.depth:
            return
        for number in range(bucket.number * self.beta, (bucket.number + 1) * self.beta):
            yield self.bucket(bucket.level + 1, number)

    def _cover(self, lo: int, hi: int, collect: bool) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
        """(level, number) of the graph buckets inside [lo, hi), the row ranges left, and their row count;
        with ``collect`` False only the count and the number of buckets are kept (for pricing)."""
        n, beta, depth = self.n, self.beta, self.depth
        buckets: list[tuple[int, int]] = []
        ranges: list[tuple[int, int]] = []
        ragged = 0
        stack = [self.holder(lo, hi)]
        while stack:
            level, number = stack.pop()
            width = beta**level
            start, stop = number * n // width, (number + 1) * n // width
            first, last = max(lo, start), min(hi, stop)
            if first >= last:
                continue
            if first == start and last == stop:
                buckets.append((level, number))
            elif level >= depth:
                ragged += last - first
                if collect:
                    ranges.append((first, last))
            else:
                stack.extend((level + 1, child) for child in range(number * beta, (number + 1) * beta))
        return buckets, ranges, ragged

    def cover(self, lo: int, hi: int) -> tuple[list[Bucket], list[tuple[int, int]]]:
        """Graph buckets lying wholly inside [lo, hi), and the row ranges left to scan."""
        buckets, ranges, _ = self._cover(lo, hi, True)
        return [self.bucket(level, number) for level, number in buckets], _joined(ranges)

    def cover_size(self, lo: int, hi: int) -> tuple[int, int, int]:
        """(graph buckets, row ranges, rows in them) of ``cover(lo, hi)``, without building it."""
        buckets, ranges, ragged = self._cover(lo, hi, True)
        return len(buckets), len(_joined(ranges)), ragged

    def three_split(self, lo: int, hi: int) -> tuple[list[Bucket], list[tuple[Bucket, int, int]]]:
        """Below the smallest bucket holding [lo, hi): its children wholly inside the window, and the
        (child, start, stop) parts of the at most two children it cuts. Empty when that bucket is a
        deepest-level one (no children to split into)."""
        holder = self.smallest_holding(lo, hi)
        whole: list[Bucket] = []
        parts: list[tuple[Bucket, int, int]] = []
        for child in self.children(holder):
            start, stop = max(lo, child.start), min(hi, child.stop)
            if start >= stop:
                continue
            if start == child.start and stop == child.stop:
                whole.append(child)
            else:
                parts.append((child, start, stop))
        return whole, parts


def _joined(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, stop in sorted(ranges):
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], stop)
        else:
            out.append((start, stop))
    return out
