"""A collection: durable writes through the WAL, sealed Arrow segments with HNSW graphs, filtered search.

Writes hold the collection's lock and are acknowledged only after their LMDB transaction commits
(synced). Reads take a snapshot of immutable segment views and run without the lock. Graphs are built
and small segments merged by a background thread (``optimizer.Optimizer``), published when ready;
the segments' derived files and their jobs are ``segment_indexes.SegmentIndexes``, a part of this class.
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vecstore.engine.allowed import count_matching
from vecstore.engine.graphs import GraphParams
from vecstore.engine.ingest import to_ids, to_queries, to_table
from vecstore.engine.merging import DEFAULT_MAX_SEGMENT_ROWS
from vecstore.engine.optimizer import Optimizer
from vecstore.engine.payloads import write_payload
from vecstore.engine.quantizers import QuantizationParams
from vecstore.engine.search import merge_query_groups, search_views
from vecstore.engine.segment_indexes import SegmentIndexes
from vecstore.engine.segments import SealedSegment, entry_files
from vecstore.engine.single import search_one
from vecstore.engine.views import Memtable, SegmentView
from vecstore.errors import DataCorruption, FailedPrecondition, InvalidArgument, ResourceExhausted, VecstoreError
from vecstore.filters import Node, to_filter
from vecstore.storage import (
    WAL_DELETE,
    WAL_UPSERT,
    CollectionStore,
    open_segment,
    verify_segment,
    write_segment,
)
from vecstore.types import CollectionSchema, SearchResult, check_oversampling, wait_timeout

MAX_K = 16_384
MAX_QUERIES = 65_536
DEFAULT_SEAL_ROWS = 100_000
DEFAULT_COMPACT_DEAD_FRACTION = 0.25
SEGMENTS_DIR = "segments"


def _check_flag(value: Any, name: str) -> None:
    if not isinstance(value, bool | np.bool_):
        raise InvalidArgument(f"{name} must be True or False, got {value!r}")


@lru_cache(maxsize=1024)
def _parsed_filter(spec: str | Node, attributes: frozenset[tuple[str, str]]) -> Node | None:
    return to_filter(spec, dict(attributes))  # a bad filter raises, and nothing is cached


def _graph_bytes(view: SegmentView) -> int:
    """A segment graph's bytes beyond ``vector_bytes``: its links, and its copy of the rows unless that
    copy is what every search reads (cosine's unit rows, counted as the segment's vectors)."""
    if view.graph is None:
        return 0
    shared = view.graph.prepared_vectors is not None and view.graph.vectors is view.vectors
    return view.graph.nbytes - (int(view.vectors.nbytes) if shared else 0)


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _ipc_table(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()


def _vectors_of(table: pa.Table, dim: int) -> np.ndarray:
    column = table.column("vector").combine_chunks()
    return np.ascontiguousarray(column.flatten().to_numpy().reshape(-1, dim), dtype=np.float32)


class Collection(SegmentIndexes):
    """Vectors with typed attributes, searched with filters. Obtain one from ``Database``."""

    def __init__(self, name: str, path: Path, *, verify_checksums: bool = True) -> None:
        self.name = name
        self.path = path
        self._lock = threading.RLock()
        self._closed = False
        self._counters: Counter = Counter()
        self._last_housekeeping_error: str | None = None
        self._store = CollectionStore(path / "manifest")
        try:
            config = self._store.config()
            self.schema = CollectionSchema.from_json(config["schema"])
            # the filter cache's key: a frozenset keeps its hash, where a tuple rehashes every pair per search
            self._attribute_items = frozenset(self.schema.attributes.items())
            options = config.get("options", {})
            self.seal_rows = int(options.get("seal_rows", DEFAULT_SEAL_ROWS))
            self.compact_dead_fraction = float(options.get("compact_dead_fraction", DEFAULT_COMPACT_DEAD_FRACTION))
            self.max_segment_rows = int(options.get("max_segment_rows", DEFAULT_MAX_SEGMENT_ROWS))
            self._arrow_schema = self.schema.arrow_schema()
            self._segments_dir = path / SEGMENTS_DIR
            self._sealed: dict[int, SealedSegment] = {}
            self._graph_params = GraphParams.from_schema(self.schema.metric, dict(self.schema.hnsw))
            self._quantization = QuantizationParams.from_schema(self.schema.dim, self.schema.quantization)
            self._open_segments(verify_checksums)
            self._memtable = Memtable(self.schema.dim, self.schema.metric, self._arrow_schema)
            self._last_seq = 0
            self._replay_wal()
        except BaseException:
            self._store.close()
            raise
        self._views: tuple[SegmentView, ...] | None = None
        self._optimizer = Optimizer(name, self._lock, self._next_job, self._superseded)
        with self._lock:
            self._optimizer.notify()

    # -- opening ---------------------------------------------------------------------------
    def _open_segments(self, verify: bool) -> None:
        entries = self._store.segments()
        known = {name for entry in entries.values() for name in entry_files(entry)}
        for child in self._segments_dir.iterdir():
            if child.name not in known:
                child.unlink()  # orphan: a seal or compaction that crashed before publishing
        broken: list[str] = []
        for segment_id, entry in sorted(entries.items()):
            file_path = self._segments_dir / entry["file"]
            try:
                if verify:
                    verify_segment(file_path, entry["bytes"], entry["sha256"])
                data = open_segment(file_path, self.schema.dim)
                if data.num_rows != entry["rows"]:
                    raise DataCorruption(f"segment file {file_path} has {data.num_rows} rows, expected {entry['rows']}")
            except DataCorruption as exc:
                broken.append(str(exc))
                continue
            deleted = self._store.deleted_mask(segment_id, data.num_rows)
            sealed = SealedSegment(segment_id, entry, data, self.schema.metric, deleted, entry.get("sorted_by"))
            sealed.graph = self._open_graph(sealed, verify)
            sealed.tree = self._open_tree(sealed, verify)
            sealed.payload = self._open_payload(sealed, verify)
            sealed.codes = self._open_codes(sealed, verify)
            sealed.terms = self._open_terms(sealed, verify)
            self._sealed[segment_id] = sealed
        if broken:
            raise DataCorruption(
                f"collection {self.name!r}: " + "; ".join(broken) + ". Restore the file(s) from a backup, or call "
                f"db.repair({self.name!r}) to set them aside and drop their rows; other collections are unaffected"
            )

    def wait_for_indexes(self, timeout: float | None = None) -> bool:
        """Block until every sealed segment that should have a graph has one (or ``timeout`` seconds pass).

        Returns True when nothing is left to build or merge, False on timeout or when a build failed
        (``describe()`` says why). Until then searches scan unindexed segments exactly.
        """
        self._check_open()
        return self._optimizer.wait(wait_timeout(timeout))

    def _replay_wal(self) -> None:
        for record in self._store.wal_records():
            if record.kind == WAL_UPSERT:
                table = _ipc_table(record.payload)
                self._memtable.apply_upsert(table, _vectors_of(table, self.schema.dim))
            elif record.kind == WAL_DELETE:
                self._memtable.apply_delete(np.frombuffer(record.payload, dtype=np.int64))
            else:
                raise DataCorruption(f"write-ahead log of {self.name!r} has a record of unknown kind {record.kind!r}")
            self._last_seq = record.seq

    # -- state -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition(f"collection {self.name!r} is closed; get it again with db.collection(name)")

    def _snapshot(self) -> tuple[SegmentView, ...]:
        with self._lock:
            self._check_open()
            if self._views is None:
                views = [s.view() for _, s in sorted(self._sealed.items())]
                if self._memtable.size:
                    views.append(self._memtable.view())
                self._views = tuple(views)
            return self._views

    def _segment_rows(self) -> dict[int, int]:
        return {sid: s.data.num_rows for sid, s in self._sealed.items()}

    def _apply_dead(self, dead: Mapping[int, np.ndarray]) -> None:
        for segment_id, offsets in dead.items():
            sealed = self._sealed[segment_id]
            deleted = sealed.deleted.copy()  # copy: snapshots in flight keep the old mask
            deleted[offsets] = True
            sealed.deleted = deleted

    # -- writes ----------------------------------------------------------------------------
    def upsert(self, ids: Any, vectors: Any = None, attributes: Mapping[str, Any] | None = None) -> int:
        """Insert or replace rows; returns the number written once they are durable.

        ``upsert(ids, vectors, attributes)`` with arrays (attributes: dict name -> array), or
        ``upsert(table)`` with a pyarrow Table / pandas DataFrame holding ``id`` and ``vector``.
        Attributes left out are stored as null.
        """
        table = to_table(self.schema, ids, vectors, attributes)
        if table.num_rows == 0:
            return 0
        batch_ids = table.column("id").to_numpy()
        batch_vectors = _vectors_of(table, self.schema.dim)
        payload = _ipc_bytes(table)
        with self._lock:
            self._check_open()
            seq, dead = self._store.commit_write(WAL_UPSERT, payload, batch_ids, self._segment_rows())
            self._last_seq = seq
            self._apply_dead(dead)
            self._memtable.apply_upsert(table, batch_vectors)
            self._views = None
            self._housekeeping(dead.keys(), seal=True)
        return table.num_rows

    def delete(self, ids: Any) -> int:
        """Delete rows by id; returns how many existed. Unknown ids are ignored."""
        id_array = np.unique(to_ids(ids))
        if id_array.size == 0:
            return 0
        with self._lock:
            self._check_open()
            seq, dead = self._store.commit_write(WAL_DELETE, id_array.tobytes(), id_array, self._segment_rows())
            self._last_seq = seq
            self._apply_dead(dead)
            removed = self._memtable.apply_delete(id_array) + sum(len(o) for o in dead.values())
            self._views = None
            self._housekeeping(dead.keys(), seal=False)
        return removed

    def _housekeeping(self, touched_segments: Any, *, seal: bool) -> None:
        """Seal / compact after a write that is already durable.

        A failure here (a full disk, say) must not turn an acknowledged write into an error: the rows
        stay in the WAL-backed appendable segment, the failure is counted, and the next write retries.
        """
        try:
            if seal and self._memtable.size >= self.seal_rows:
                self._seal_locked()
            self._maybe_compact(touched_segments)
        except (OSError, VecstoreError) as exc:
            self._counters["housekeeping_failures"] += 1
            self._last_housekeeping_error = f"{type(exc).__name__}: {exc}"

    def seal(self) -> None:
        """Write the appendable segment out as a sealed, memory-mapped Arrow segment now."""
        with self._lock:
            self._check_open()
            if self._memtable.size:
                self._seal_locked()

    def _seal_locked(self) -> None:
        view = self._memtable.view()
        table = view.table if view.live is None else view.table.filter(pa.array(view.live))
        window = self.schema.window
        if window is not None:
            table = table.sort_by([(window, "ascending"), ("id", "ascending")])
        segment_id = self._store.allocate_segment_id()
        entry = self._write_segment(segment_id, table) if table.num_rows else None
        ids = table.column("id").to_numpy() if table.num_rows else np.empty(0, dtype=np.int64)
        self._store.commit_seal(segment_id, entry, ids, self._last_seq)
        if entry is not None:
            self._load_sealed(segment_id, entry)
        self._memtable = Memtable(self.schema.dim, self.schema.metric, self._arrow_schema)
        self._views = None
        self._counters["seals"] += 1
        self._optimizer.notify()

    def _write_segment(self, segment_id: int, table: pa.Table) -> dict[str, Any]:
        """Write a segment file and its payload index; returns the manifest entry naming both."""
        file_name, size, digest = write_segment(self._segments_dir, segment_id, table)
        entry = {
            "file": file_name,
            "rows": table.num_rows,
            "bytes": size,
            "sha256": digest,
            "sorted_by": self.schema.window,
        }
        try:
            entry["payload"] = write_payload(self._segments_dir, segment_id, table, self.schema.attributes)
        except BaseException:
            self._remove_files([file_name])
            raise
        return entry

    def _load_sealed(self, segment_id: int, entry: dict[str, Any]) -> None:
        data = open_segment(self._segments_dir / entry["file"], self.schema.dim)
        deleted = np.zeros(data.num_rows, dtype=bool)
        sealed = SealedSegment(segment_id, entry, data, self.schema.metric, deleted, entry.get("sorted_by"))
        sealed.payload = self._open_payload(sealed, verify=False)
        self._sealed[segment_id] = sealed

    def _maybe_compact(self, segment_ids: Any) -> None:
        for segment_id in list(segment_ids):
            sealed = self._sealed.get(segment_id)
            if sealed is not None and sealed.dead_fraction >= self.compact_dead_fraction:
                self._compact_segment(sealed)

    def compact(self) -> int:
        """Rewrite every sealed segment that has deleted rows; returns how many were rewritten."""
        with self._lock:
            self._check_open()
            targets = [s for s in self._sealed.values() if s.deleted.any()]
            for sealed in targets:
                self._compact_segment(sealed)
            return len(targets)

    def _compact_segment(self, sealed: SealedSegment) -> None:
        live = ~sealed.deleted
        table = sealed.data.table.filter(pa.array(live))
        if table.num_rows == 0:
            self._store.commit_replace_segments((sealed.segment_id,), None, None, np.empty(0, dtype=np.int64))
        else:
            new_id = self._store.allocate_segment_id()
            entry = self._write_segment(new_id, table)
            entry["sorted_by"] = sealed.sorted_by
            self._store.commit_replace_segments((sealed.segment_id,), new_id, entry, table.column("id").to_numpy())
            self._load_sealed(new_id, entry)
        del self._sealed[sealed.segment_id]
        self._remove_files(sealed.file_names())
        self._views = None
        self._counters["compactions"] += 1
        self._optimizer.notify()

    # -- reads -----------------------------------------------------------------------------
    def count(self, filter: Any = None) -> int:
        """Number of live rows, or of live rows matching ``filter``."""
        node = to_filter(filter, self.schema.attributes)
        return count_matching(self._snapshot(), node)

    def get(self, ids: Any) -> pa.Table:
        """Rows for ``ids`` (id, vector, attributes) in the order asked; ids not present are left out."""
        wanted = to_ids(ids)
        with self._lock:
            views = self._snapshot()
            located = self._store.locate(np.unique(wanted))
            memtable_rows = {int(i): self._memtable.row_of(int(i)) for i in np.unique(wanted).tolist()}
        index_of = {v.segment_id: n for n, v in enumerate(views)}
        memtable_index = len(views) - 1 if self._memtable.size else -1
        src, offs = [], []
        for external_id in wanted.tolist():
            row = memtable_rows.get(external_id)
            if row is not None:
                src.append(memtable_index)
                offs.append(row)
            elif external_id in located:
                segment_id, offset = located[external_id]
                src.append(index_of[segment_id])
                offs.append(offset)
        if not src:
            return self._arrow_schema.empty_table()
        src_array = np.asarray(src, dtype=np.int64)
        off_array = np.asarray(offs, dtype=np.int64)
        pieces, positions = [], []
        for view_index in np.unique(src_array):
            where = np.flatnonzero(src_array == view_index)
            pieces.append(views[int(view_index)].table.take(pa.array(off_array[where])))
            positions.append(where)
        table = pa.concat_tables(pieces)
        inverse = np.empty(len(src), dtype=np.int64)
        inverse[np.concatenate(positions)] = np.arange(len(src))
        return table.take(pa.array(inverse)).combine_chunks()

    def search(
        self,
        queries: Any,
        k: int = 10,
        filter: Any = None,
        *,
        ef: int | None = None,
        exact: bool = False,
        select: Sequence[str] | None = None,
        explain: bool = False,
        oversampling: float | None = None,
        rescore: bool = True,
    ) -> SearchResult:
        """k nearest live rows to each query among the rows matching ``filter``.

        ``queries`` is one vector [dim] or a batch [q, dim]. ``filter`` is one filter for every query,
        or a list with one filter (or None) per query. Results are ``[q, k]`` ids and distances padded
        with -1 / +inf; ties are broken by the smaller id. ``select`` names the attributes
        ``to_arrow()`` includes; ``explain=True`` fills ``plan`` per query.

        Segments with a graph are searched through it when the planner estimates it cheaper (results
        are then approximate; ``ef``, default the collection's ``hnsw["ef"]``, trades speed for
        recall). ``exact=True`` scans every allowed row.

        In a quantised collection the planner may also scan a segment's codes: ``k x oversampling``
        candidates (default: the collection's ``oversampling``), rescored exactly on the vectors.
        ``rescore=False`` (PQ only) returns the best k by the codes' estimated distances instead: faster,
        approximate, and reported as such in the plan.
        """
        # the single-query lane serves searches without options beyond k, filter, ef and exact
        lane_applies = (
            select is None and not explain and oversampling is None and rescore is True and type(exact) is bool
        )
        if (
            lane_applies
            and type(queries) is np.ndarray
            and queries.shape in ((self.schema.dim,), (1, self.schema.dim))  # one query, as a vector or a row
            and queries.dtype == np.float32
            and queries.flags.c_contiguous
            and type(k) is int
            and 0 < k <= MAX_K
            and (ef is None or (type(ef) is int and 0 < ef <= MAX_K))
            and not isinstance(filter, list | tuple)
        ):
            result = search_one(
                self._snapshot(),
                queries.reshape(self.schema.dim),
                k,
                self._bound_filter(filter),
                metric=self.schema.metric,
                ef=self._graph_params.ef if ef is None else ef,
                m=self._graph_params.m,
                exact=bool(exact),
                counters=self._counters,
                oversampling=self._default_oversampling,
            )
            if result is not None:
                self._counters["queries"] += 1
                return result
        query_array = to_queries(queries, self.schema.dim, self.schema.metric, MAX_QUERIES)
        k = self._check_k(k)
        if ef is not None and (isinstance(ef, bool) or not isinstance(ef, int | np.integer) or ef < 1):
            raise InvalidArgument(f"ef must be a positive integer or None, got {ef!r}")
        if ef is not None and ef > MAX_K:
            raise ResourceExhausted(f"ef={ef} is larger than the maximum {MAX_K}")
        _check_flag(exact, "exact")
        select = self._check_select(select)
        oversampling = self._check_quantized_search(oversampling, rescore)
        views = self._snapshot()
        run = partial(
            search_views,
            views,
            k=k,
            metric=self.schema.metric,
            exact=exact,
            ef=self._graph_params.ef if ef is None else int(ef),
            m=self._graph_params.m,
            select=select,
            explain=explain,
            counters=self._counters,
            oversampling=oversampling,
            rescore=rescore,
        )
        if isinstance(filter, list | tuple):
            if len(filter) != query_array.shape[0]:
                raise InvalidArgument(
                    f"got {len(filter)} filters for {query_array.shape[0]} queries; pass one filter per query"
                )
            nodes = [self._bound_filter(f) for f in filter]
            lane = None
            if lane_applies:  # a query alone with its filter: the single lane
                lane = partial(search_one, views, k=k, metric=self.schema.metric,
                               ef=self._graph_params.ef if ef is None else int(ef), m=self._graph_params.m,
                               exact=bool(exact), counters=self._counters,
                               oversampling=self._default_oversampling)  # fmt: skip
            result = merge_query_groups(query_array, nodes, run, lane)
        else:
            result = run(query_array, node=self._bound_filter(filter))
        self._counters["queries"] += query_array.shape[0]
        return result

    def _bound_filter(self, spec: Any) -> Node | None:
        """``to_filter``, with recent filters (strings or nodes) parsed and bound once: that costs more
        than a selective search."""
        if isinstance(spec, str | Node):
            return _parsed_filter(spec, self._attribute_items)
        return to_filter(spec, self.schema.attributes)

    @property
    def _default_oversampling(self) -> float:
        """The oversampling a search without its own uses (1.0 where there are no codes)."""
        return 1.0 if self._quantization is None else self._quantization.oversampling

    def _check_quantized_search(self, oversampling: Any, rescore: Any) -> float:
        """The oversampling a search uses (its own, else the collection's); errors for settings that
        cannot apply."""
        _check_flag(rescore, "rescore")
        params = self._quantization
        if params is None:
            if oversampling is not None or not rescore:
                raise InvalidArgument(
                    f"oversampling and rescore apply to quantized collections; {self.name!r} was created without "
                    "quantization (create one with quantization={'kind': 'sq8'}, {'kind': 'binary'} or {'kind': 'pq'})"
                )
            return 1.0
        if not rescore and params.kind == "binary":
            raise InvalidArgument(
                "rescore=False needs PQ codes: binary codes rank rows by a score (the query's values summed over "
                "each row's sign bits) that is not a distance in the collection's metric; keep rescore=True"
            )
        if not rescore and params.kind == "sq8":
            raise InvalidArgument(
                "rescore=False needs PQ codes: sq8 searches always rescore, as rescoring the rows their codes "
                "found costs a small part of finding them; keep rescore=True"
            )
        return params.oversampling if oversampling is None else check_oversampling(oversampling, "oversampling")

    @staticmethod
    def _check_k(k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise InvalidArgument(f"k must be an integer, got {k!r}")
        if k <= 0:
            raise InvalidArgument(f"k must be at least 1, got {k}")
        if k > MAX_K:
            raise ResourceExhausted(f"k={k} is larger than the maximum {MAX_K}; page through results with filters")
        return int(k)

    def _check_select(self, select: Sequence[str] | None) -> list[str]:
        if select is None:
            return []
        if isinstance(select, str):
            select = [select]
        names = list(select)
        allowed = [*self.schema.attributes, "vector"]
        for name in names:
            if name not in allowed:
                raise InvalidArgument(f"cannot select {name!r}; choose from {allowed}")
        return names

    # -- introspection ---------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.schema.dim

    @property
    def metric(self) -> str:
        return self.schema.metric

    def stats(self) -> dict[str, int]:
        """Counters: queries served, plan strategies per query and segment, seals, compactions."""
        return dict(self._counters)

    def describe(self) -> dict[str, Any]:
        """Schema, row counts, per-segment storage figures, and ``build_seconds``: the seconds this
        process's background work has spent on the collection since it was opened, per kind (``graph``,
        ``tree``, ``codes``, ``terms``, ``merge``; published results only)."""
        views = self._snapshot()
        segments = []
        for view in views:
            entry: dict[str, Any] = {
                "segment": view.name,
                "rows": view.num_rows,
                "live_rows": view.live_count,
                "vector_bytes": int(view.vectors.nbytes),
            }
            if view.segment_id in self._sealed:
                entry["file_bytes"] = self._sealed[view.segment_id].entry["bytes"]
                entry["sorted_by"] = view.sorted_by
                entry["graph"] = self._graph_status(view.segment_id)
                entry["graph_bytes"] = _graph_bytes(view)
                entry["payload_bytes"] = 0 if view.payload is None else view.payload.nbytes
                entry["window_tree"] = self._tree_status(view.segment_id)
                entry["window_tree_bytes"] = 0 if view.tree is None else view.tree.nbytes
                entry["codes"] = self._codes_status(view.segment_id)
                entry["code_bytes"] = 0 if view.codes is None else view.codes.code_bytes
                entry["term_graphs"] = self._terms_status(view.segment_id)
                entry["term_graph_bytes"] = 0 if view.terms is None else view.terms.nbytes
            segments.append(entry)
        return {
            "name": self.name,
            **self.schema.to_json(),
            "seal_rows": self.seal_rows,
            "max_segment_rows": self.max_segment_rows,
            "rows": sum(v.live_count for v in views),
            "segments": segments,
            "memory": {
                "vector_bytes": sum(s["vector_bytes"] for s in segments),
                "graph_bytes": sum(s.get("graph_bytes", 0) for s in segments),
                "payload_bytes": sum(s.get("payload_bytes", 0) for s in segments),
                "window_tree_bytes": sum(s.get("window_tree_bytes", 0) for s in segments),
                "code_bytes": sum(s.get("code_bytes", 0) for s in segments),
                "term_graph_bytes": sum(s.get("term_graph_bytes", 0) for s in segments),
            },
            "build_seconds": self._build_seconds(),
            "last_housekeeping_error": self._last_housekeeping_error,
        }

    def _build_seconds(self) -> dict[str, float]:
        with self._lock:  # the optimizer adds to it under this lock
            return {kind: round(seconds, 3) for kind, seconds in sorted(self._optimizer.seconds.items())}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._views = None
        self._optimizer.stop()  # outside the lock: a finishing build needs it to see that we closed
        with self._lock:
            self._store.close()

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, dim={self.schema.dim}, metric={self.schema.metric!r})"
