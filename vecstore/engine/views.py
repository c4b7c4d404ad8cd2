"""Immutable read views over sealed segments and the appendable segment.

A search takes one snapshot (a tuple of views) and never sees a half-applied write: views are
replaced, never mutated, when a write changes which rows are live.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from vecstore.core.exact import row_norms
from vecstore.index.hnsw import HnswIndex
from vecstore.index.payload import PayloadIndex
from vecstore.index.quantization import Quantizer
from vecstore.index.term_graphs import TermGraphs
from vecstore.index.window_tree import WindowTree
from vecstore.types import METRIC_CODES

APPENDABLE = -1  # segment id of the appendable (in-memory, WAL-backed) segment


@dataclass(frozen=True, eq=False)
class SegmentView:
    """Rows of one segment as flat arrays: what the planner and kernels work on."""

    segment_id: int
    ids: np.ndarray  # int64 [n]
    vectors: np.ndarray  # float32 [n, dim]
    norms: np.ndarray  # float32 [n], the metric's norm term
    table: pa.Table  # id, vector and attribute columns
    live: np.ndarray | None  # bool [n]; None when every row is live
    sorted_by: str | None = None
    graph: HnswIndex | None = None  # the segment's HNSW graph, once built
    payload: PayloadIndex | None = None  # the sealed segment's attribute indexes (None: evaluate the columns)
    tree: WindowTree | None = None  # bucket graphs over the window order (sorted segments, once built)
    codes: Quantizer | None = None  # binary, sq8 or PQ codes of the rows (quantised collections, once built)
    terms: TermGraphs | None = None  # graphs over the rows of large terms (collections that ask, once built)

    @property
    def name(self) -> str:
        return "appendable" if self.segment_id == APPENDABLE else f"seg-{self.segment_id}"

    @property
    def num_rows(self) -> int:
        return int(self.ids.shape[0])

    @cached_property
    def filter_results(self) -> FilterResultCache:
        """Rows of recent filters in this view, bounded in proportion to its size."""
        return FilterResultCache(filter_cache_budget(self.num_rows))

    @cached_property
    def unfiltered_plans(self) -> dict:
        """The planner's answers for searches of every live row, and its scan limits, by search
        settings: they depend on nothing a query brings, and a view's rows never change (the
        single-query lane fills it)."""
        return {}

    @cached_property
    def filter_plans(self) -> dict:
        """The planner's answers for recent filters, by filter and search settings: a plan depends only
        on the view and the filter's rows, which a view never changes (the single-query lane fills it)."""
        return {}

    @cached_property
    def live_count(self) -> int:
        return self.num_rows if self.live is None else int(self.live.sum())

    @cached_property
    def live_offsets(self) -> np.ndarray:
        if self.live is None:
            return np.arange(self.num_rows, dtype=np.int64)
        return np.flatnonzero(self.live).astype(np.int64)

    @cached_property
    def sorted_values(self) -> np.ndarray | None:
        """The non-null prefix of the sort column (nulls sort last), for slicing windows; None for strings."""
        if self.sorted_by is None:
            return None
        column = self.table.column(self.sorted_by)
        if not (
            pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_timestamp(column.type)
        ):
            return None
        valid = column.slice(0, self.num_rows - column.null_count)
        return valid.to_numpy()

    def columns(self) -> dict[str, pa.ChunkedArray]:
        return {name: self.table.column(name) for name in self.table.column_names if name != "vector"}


#: Bytes of filter results (offsets and masks) one view keeps for repeated filters: room for about four
#: results that allow every row (9 bytes a row: an offset and a mask byte), between 1 and 32 MiB.
FILTER_CACHE_BYTES = 32 << 20


def filter_cache_budget(num_rows: int) -> int:
    return min(FILTER_CACHE_BYTES, (1 << 20) + 4 * 9 * num_rows)


class FilterResultCache:
    """The rows recent filters allowed in one view, most recently used last.

    A view never changes (a write makes a new one), so an entry is valid for the view's whole life and
    needs no invalidation. Repeated filters (a tenant, a category, a date range a dashboard reuses) then
    skip the index lookup and mask building. Bounded in bytes; safe across search threads.
    """

    def __init__(self, max_bytes: int = FILTER_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Any, value: Any, nbytes: int) -> None:
        if nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped


def norms_for(vectors: np.ndarray, metric: str) -> np.ndarray:
    return row_norms(vectors, METRIC_CODES[metric])


class Memtable:
    """The appendable segment: rows replayed from / appended to the WAL, searched exactly.

    Buffers grow by doubling; rows before ``size`` never change, only their liveness, so a view can
    share the buffers and copy just the live mask.
    """

    def __init__(self, dim: int, metric: str, schema: pa.Schema) -> None:
        self.dim = dim
        self.metric = metric
        self.schema = schema
        self.size = 0
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, dim), dtype=np.float32)
        self._norms = np.empty(0, dtype=np.float32)
        self._live = np.empty(0, dtype=bool)
        self._chunks: list[pa.Table] = []
        self._row_of: dict[int, int] = {}
        self._view: SegmentView | None = None

    @property
    def live_count(self) -> int:
        return len(self._row_of)

    def __contains__(self, external_id: int) -> bool:
        return external_id in self._row_of

    def _reserve(self, extra: int) -> None:
        need = self.size + extra
        if need <= self._ids.shape[0]:
            return
        cap = max(need, 2 * self._ids.shape[0], 1024)
        for name in ("_ids", "_norms", "_live"):
            old = getattr(self, name)
            new = np.empty(cap, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)
        vectors = np.empty((cap, self.dim), dtype=np.float32)
        vectors[: self.size] = self._vectors[: self.size]
        self._vectors = vectors

    def apply_upsert(self, table: pa.Table, vectors: np.ndarray) -> None:
        """Append a validated batch; an id already here is replaced (its old row dies)."""
        n = table.num_rows
        ids = table.column("id").to_numpy()
        self._reserve(n)
        start = self.size
        for i, external_id in enumerate(ids.tolist()):
            old = self._row_of.get(external_id)
            if old is not None:
                self._live[old] = False
            self._row_of[external_id] = start + i
        self._ids[start : start + n] = ids
        self._vectors[start : start + n] = vectors
        self._norms[start : start + n] = norms_for(vectors, self.metric)
        self._live[start : start + n] = True
        self._chunks.append(table)
        self.size += n
        self._view = None

    def apply_delete(self, ids: np.ndarray) -> int:
        """Kill the rows of ``ids`` held here; returns how many there were."""
        removed = 0
        for external_id in ids.tolist():
            row = self._row_of.pop(external_id, None)
            if row is not None:
                self._live[row] = False
                removed += 1
        if removed:
            self._view = None
        return removed

    def row_of(self, external_id: int) -> int | None:
        return self._row_of.get(external_id)

    def view(self) -> SegmentView:
        if self._view is None:
            n = self.size
            table = pa.concat_tables(self._chunks) if self._chunks else self.schema.empty_table()
            live = self._live[:n].copy()
            self._view = SegmentView(
                APPENDABLE,
                self._ids[:n],
                self._vectors[:n],
                self._norms[:n],
                table,
                None if live.all() else live,
            )
        return self._view
