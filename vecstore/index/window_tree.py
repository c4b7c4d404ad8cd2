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

A window that straddles a boundary high up has only a large bucket holding it: a quarter of the rows
astride the middle of a segment (beta 4) is held by the root alone, where it is a quarter of the
rows. The top ``straddle_levels`` levels therefore also get **straddle buckets** of two shapes:

- a bucket and a half long, one every half bucket: a window no longer than one bucket of that level
  always lies inside one of them, at two thirds of its rows or more;
- two neighbouring buckets joined: a window of up to two buckets that crosses just one boundary lies
  inside one of them (it may be too long for the first shape).

The structure only says which buckets and row ranges to search; the engine runs and merges them.
Bucket graphs are built on slices of the segment's searched rows, so they add no copy of the vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecstore.core import tree_geometry
from vecstore.errors import DataCorruption, InvalidArgument
from vecstore.index.hnsw import HnswGraph, HnswIndex, build_prepared

DEFAULT_BETA = 4
DEFAULT_LEAF_ROWS = 2048
#: Levels (from the top) that also get straddle buckets: level 1 costs about 3.75 graphs of the
#: segment's size to build (beta 4: six straddles of 3/8 of it and three of half of it), and is where
#: windows of an eighth to a half of a segment, crossing a boundary, otherwise postfilter over all of it.
DEFAULT_STRADDLE_LEVELS = 1
MAX_STRADDLE_LEVELS = 16
FORMAT_VERSION = 2  # 2: straddle buckets of a bucket and a half as well as of two buckets


@dataclass(frozen=True)
class Bucket:
    level: int  # 0 is the whole segment
    number: int  # position within its level
    start: int
    stop: int
    index: HnswIndex | None  # None below leaf_rows (searched exactly); the segment graph at level 0
    straddle: bool = False  # the bucket numbered ``number`` and the next one at ``level``, joined

    @property
    def rows(self) -> int:
        return self.stop - self.start


def bucket_bounds(n: int, beta: int, level: int, number: int) -> tuple[int, int]:
    """Rows [start, stop) of a bucket. Children split their parent exactly: floor(i n / beta^level)."""
    return tree_geometry.bucket_span(n, beta, level, number)


def tree_depth(n: int, beta: int, leaf_rows: int) -> int:
    """The deepest level whose buckets all have at least ``leaf_rows`` rows (0: only the root)."""
    depth = 0
    while n // beta ** (depth + 1) >= leaf_rows:
        depth += 1
    return depth


def straddle_keys(beta: int, depth: int, straddle_levels: int) -> list[tuple[int, int]]:
    """(level, number) of the straddle buckets of each level 1 .. min(straddle_levels, depth): numbers
    below ``2 beta^level - 2`` start every half bucket and run a bucket and a half; the next
    ``beta^level - 1`` join bucket i and i + 1 (with beta 2 only across parents: two children of one
    parent would be the parent again)."""
    keys = []
    for level in range(1, min(straddle_levels, depth) + 1):
        parts = beta**level
        keys += [(level, number) for number in range(2 * parts - 2)]
        keys += [(level, 2 * parts - 2 + i) for i in range(parts - 1) if tree_geometry.joins_pair(beta, parts, i)]
    return keys


def straddle_bounds(n: int, beta: int, level: int, number: int) -> tuple[int, int]:
    """Rows [start, stop) of straddle bucket ``number`` of ``level`` (see ``straddle_keys``): half buckets
    number .. number + 2, or buckets i and i + 1 (bounds round as ``bucket_bounds`` splits a level)."""
    return tree_geometry.straddle_span(n, beta, level, number)


def check_parameters(beta: Any, leaf_rows: Any, straddle_levels: Any = DEFAULT_STRADDLE_LEVELS) -> tuple[int, int, int]:
    if isinstance(beta, bool) or not isinstance(beta, int) or not 2 <= beta <= 64:
        raise InvalidArgument(f"window tree beta must be an integer between 2 and 64, got {beta!r}")
    if isinstance(leaf_rows, bool) or not isinstance(leaf_rows, int) or not 64 <= leaf_rows <= 1 << 24:
        raise InvalidArgument(f"window tree leaf_rows must be an integer between 64 and 16777216, got {leaf_rows!r}")
    levels = straddle_levels
    if isinstance(levels, bool) or not isinstance(levels, int) or not 0 <= levels <= MAX_STRADDLE_LEVELS:
        raise InvalidArgument(
            f"window tree straddle_levels must be an integer between 0 and {MAX_STRADDLE_LEVELS}, got {levels!r}"
        )
    return beta, leaf_rows, straddle_levels


class WindowTree:
    """Bucket graphs of one sorted segment, levels 1..depth, and the root (the segment's graph); and
    the straddle buckets' graphs of the top ``straddle_levels`` levels."""

    def __init__(
        self,
        root: HnswIndex,
        beta: int,
        leaf_rows: int,
        graphs: dict[tuple[int, int], HnswIndex],
        straddle_levels: int = 0,
        straddles: dict[tuple[int, int], HnswIndex] | None = None,
    ) -> None:
        self.root = root
        self.n = root.graph.n
        self.beta = beta
        self.leaf_rows = leaf_rows
        self.depth = tree_depth(self.n, beta, leaf_rows)
        self.graphs = graphs
        self.straddle_levels = min(straddle_levels, self.depth)
        self.straddles = straddles or {}
        deepest = [bucket_bounds(self.n, beta, self.depth, i) for i in range(beta**self.depth)]
        #: rows of the smallest bucket with a graph (the deepest level's; sizes differ by rounding only)
        self.smallest_graph_rows = min(stop - start for start, stop in deepest)
        expected = {(lv, i) for lv in range(1, self.depth + 1) for i in range(beta**lv)}
        if set(graphs) != expected:
            raise InvalidArgument(
                f"window tree over {self.n} rows needs {len(expected)} bucket graphs, got {len(graphs)}"
            )
        wanted = straddle_keys(beta, self.depth, straddle_levels)
        if set(self.straddles) != set(wanted):
            raise InvalidArgument(
                f"window tree over {self.n} rows needs {len(wanted)} straddle graphs, got {len(self.straddles)}"
            )

    # -- building and persistence ------------------------------------------------------------------
    @staticmethod
    def build(
        root: HnswIndex,
        beta: int = DEFAULT_BETA,
        leaf_rows: int = DEFAULT_LEAF_ROWS,
        seed: int = 0,
        should_stop: Callable[[], bool] | None = None,
        straddle_levels: int = DEFAULT_STRADDLE_LEVELS,
    ) -> WindowTree:
        """Build every bucket and straddle graph on slices of the root's searched rows (same m and
        ef_construction)."""
        beta, leaf_rows, straddle_levels = check_parameters(beta, leaf_rows, straddle_levels)
        g = root.graph
        depth = tree_depth(g.n, beta, leaf_rows)

        def graph_over(start: int, stop: int, seed_offset: int) -> HnswIndex:
            rows = root.vectors[start:stop]
            graph = build_prepared(rows, g.metric, g.m, g.ef_construction, seed + seed_offset, should_stop=should_stop)
            return HnswIndex(graph, root.source[start:stop], prepared=rows)

        graphs = {
            (level, number): graph_over(*bucket_bounds(g.n, beta, level, number), level * 7919 + number)
            for level in range(1, depth + 1)
            for number in range(beta**level)
        }
        straddles = {
            (level, number): graph_over(*straddle_bounds(g.n, beta, level, number), level * 104729 + number + 1)
            for level, number in straddle_keys(beta, depth, straddle_levels)
        }
        return WindowTree(root, beta, leaf_rows, graphs, straddle_levels, straddles)

    @property
    def nbytes(self) -> int:
        """Bytes of the bucket and straddle graphs (their rows are views of the segment's, not copies)."""
        return sum(index.graph.nbytes for index in (*self.graphs.values(), *self.straddles.values()))

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {"version": FORMAT_VERSION, "beta": self.beta, "leaf_rows": self.leaf_rows,
                                "rows": self.n, "straddle_levels": self.straddle_levels, "buckets": []}  # fmt: skip
        arrays: dict[str, np.ndarray] = {}
        every = [(key, False, index) for key, index in sorted(self.graphs.items())]
        every += [(key, True, index) for key, index in sorted(self.straddles.items())]
        for j, ((level, number), straddle, index) in enumerate(every):
            graph_meta, graph_arrays = index.graph.to_arrays()
            meta["buckets"].append({"level": level, "number": number, "straddle": straddle, "graph": graph_meta})
            arrays.update({f"{j}.{name}": array for name, array in graph_arrays.items()})
        return meta, arrays

    @staticmethod
    def from_arrays(root: HnswIndex, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> WindowTree:
        """The tree from ``to_arrays``' output over the segment's ``root`` index; DataCorruption if torn."""
        try:
            if meta["version"] != FORMAT_VERSION:
                raise ValueError(f"written in layout version {meta['version']}, this build reads {FORMAT_VERSION}")
            if meta["rows"] != root.graph.n:
                raise ValueError(f"it spans {meta['rows']} rows, its segment {root.graph.n}")
            beta, leaf_rows = int(meta["beta"]), int(meta["leaf_rows"])
            straddle_levels = int(meta["straddle_levels"])
            graphs, straddles = {}, {}
            for j, bucket in enumerate(meta["buckets"]):
                level, number, straddle = int(bucket["level"]), int(bucket["number"]), bool(bucket.get("straddle"))
                prefix = f"{j}."
                graph_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
                graph = HnswGraph.from_arrays(bucket["graph"], graph_arrays)
                bounds = straddle_bounds if straddle else bucket_bounds
                start, stop = bounds(root.graph.n, beta, level, number)
                index = HnswIndex(graph, root.source[start:stop], prepared=root.vectors[start:stop])
                (straddles if straddle else graphs)[(level, number)] = index
            return WindowTree(root, beta, leaf_rows, graphs, straddle_levels, straddles)
        except (KeyError, TypeError, ValueError, InvalidArgument) as exc:
            raise DataCorruption(f"window tree is damaged: {exc}") from None

    # -- planning a window -------------------------------------------------------------------------
    def bucket(self, level: int, number: int) -> Bucket:
        start, stop = bucket_bounds(self.n, self.beta, level, number)
        index = self.root if level == 0 else self.graphs.get((level, number))
        return Bucket(level, number, start, stop, index)

    def holder(self, lo: int, hi: int) -> tuple[int, int]:
        """(level, number) of the deepest graph bucket that holds rows [lo, hi) entirely (0, 0: the root)."""
        return tree_geometry.holder(self.n, self.beta, self.depth, lo, hi)

    def smallest_holding(self, lo: int, hi: int) -> Bucket:
        """The deepest graph bucket that holds rows [lo, hi) entirely (the root when none deeper does)."""
        return self.bucket(*self.holder(lo, hi))

    def straddle(self, level: int, number: int) -> Bucket:
        start, stop = straddle_bounds(self.n, self.beta, level, number)
        return Bucket(level, number, start, stop, self.straddles[(level, number)], straddle=True)

    def postfilter_holder(self, lo: int, hi: int) -> tuple[int, int, bool, int]:
        """(level, number, straddle, rows) of the fewest-row graph, bucket or straddle bucket, that holds
        rows [lo, hi) entirely: where a postfilter of them searches the fewest other rows."""
        return self.holders(lo, hi)[2:]

    def holders(self, lo: int, hi: int) -> tuple[int, int, int, int, bool, int]:
        """``holder(lo, hi)`` followed by ``postfilter_holder(lo, hi)``, in one compiled call (the planner
        asks both for every window query)."""
        return tree_geometry.holders(self.n, self.beta, self.depth, self.straddle_levels, lo, hi)

    def postfilter_bucket(self, lo: int, hi: int) -> Bucket:
        """The bucket ``postfilter_holder`` names."""
        level, number, straddle, _ = self.postfilter_holder(lo, hi)
        return self.straddle(level, number) if straddle else self.bucket(level, number)

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
