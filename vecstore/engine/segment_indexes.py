"""The derived files of a collection's sealed segments: graphs, window trees, payload indexes, codes
and term graphs. Opened (a damaged one dropped and rebuilt: they are derived data), built and merged
by background jobs the optimizer runs (``Optimizer`` asks ``_next_job``), published under the
collection's lock, and reported per segment by ``describe()``.

``SegmentIndexes`` is a part of ``Collection`` kept in its own module; it works on the collection's
state, which ``Collection.__init__`` sets up: ``_lock``, ``_closed``, ``_sealed``, ``_store``,
``_segments_dir``, ``_graph_params``, ``_quantization``, ``_optimizer``, ``_counters``, ``_views``,
``_last_housekeeping_error``, ``schema`` and ``max_segment_rows``, and ``_write_segment``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vecstore.engine.graphs import (
    MIN_GRAPH_ROWS,
    build_graph_file,
    build_terms_file,
    build_tree_file,
    open_graph,
    open_terms,
    open_tree,
)
from vecstore.engine.merging import choose_merge, died_since, merged_table
from vecstore.engine.optimizer import Job
from vecstore.engine.payloads import open_payload, write_payload
from vecstore.engine.quantizers import MIN_CODE_ROWS, build_codes_file, open_codes
from vecstore.engine.segments import SealedSegment, entry_files
from vecstore.errors import DataCorruption
from vecstore.index.hnsw import HnswIndex
from vecstore.index.payload import PayloadIndex
from vecstore.index.quantization import Quantizer
from vecstore.index.term_graphs import TermGraphs
from vecstore.index.window_tree import WindowTree
from vecstore.storage import open_segment


class SegmentIndexes:
    """Opening, building and reporting the derived files of sealed segments (see the module docstring)."""

    # -- opening ---------------------------------------------------------------------------------
    def _open_payload(self, sealed: SealedSegment, verify: bool) -> PayloadIndex:
        """The segment's payload index; a missing or damaged one is rebuilt from the columns and
        republished (it is derived data), and the rebuild is counted."""
        payload_entry = sealed.entry.get("payload")
        if payload_entry is not None:
            path = self._segments_dir / payload_entry["file"]
            try:
                return open_payload(path, payload_entry, sealed.num_rows, verify=verify)
            except DataCorruption as exc:
                self._last_housekeeping_error = f"{exc}; rebuilt it"
        new_entry = write_payload(self._segments_dir, sealed.segment_id, sealed.data.table, self.schema.attributes)
        entry = {**sealed.entry, "payload": new_entry}
        if not self._store.update_segment_entry(sealed.segment_id, entry):
            raise DataCorruption(f"segment {sealed.segment_id} left the manifest while it was being opened")
        if payload_entry is not None:
            self._remove_files([payload_entry["file"]])
        sealed.entry = entry
        self._counters["payload_indexes_rebuilt"] += 1
        return open_payload(self._segments_dir / new_entry["file"], new_entry, sealed.num_rows, verify=False)

    def _open_tree(self, sealed: SealedSegment, verify: bool) -> WindowTree | None:
        """The segment's persisted window tree (it needs the graph); a damaged one is rebuilt like a graph."""
        if sealed.entry.get("window_tree") is not None and sealed.graph is None:
            self._drop_derived(sealed, "window_tree")  # its graph was dropped: rebuilt after the graph
            return None
        return self._open_derived(sealed, "window_tree", "window_trees_rebuilt",
                                  lambda path, entry: open_tree(path, entry, sealed.graph, verify=verify))  # fmt: skip

    def _open_terms(self, sealed: SealedSegment, verify: bool) -> TermGraphs | None:
        """The segment's persisted term graphs (they hold their own rows, so they outlive a dropped segment
        graph)."""
        rows = sealed.num_rows
        return self._open_derived(sealed, "term_graphs", "term_graphs_rebuilt",
                                  lambda path, entry: open_terms(path, entry, rows, verify=verify))  # fmt: skip

    def _open_graph(self, sealed: SealedSegment, verify: bool) -> HnswIndex | None:
        """The segment's persisted graph."""
        vectors = sealed.data.vectors
        return self._open_derived(sealed, "graph", "graph_files_rebuilt",
                                  lambda path, entry: open_graph(path, entry, vectors, verify=verify))  # fmt: skip

    def _open_codes(self, sealed: SealedSegment, verify: bool) -> Quantizer | None:
        """The segment's persisted codes."""
        rows = sealed.num_rows
        return self._open_derived(sealed, "codes", "codes_rebuilt",
                                  lambda path, entry: open_codes(path, entry, rows, verify=verify))  # fmt: skip

    def _open_derived(self, sealed: SealedSegment, key: str, counter: str,
                      open_file: Callable[[Path, dict[str, Any]], Any]) -> Any:  # fmt: skip
        """The derived file the segment's manifest entry names under ``key`` (graph, window tree, codes,
        term graphs), opened by ``open_file(path, entry)``, or None when it has none. A damaged one is
        derived data: dropped, counted under ``counter`` and rebuilt by the optimizer."""
        entry = sealed.entry.get(key)
        if entry is None:
            return None
        try:
            return open_file(self._segments_dir / entry["file"], entry)
        except DataCorruption as exc:
            self._drop_derived(sealed, key, counter, exc)
            return None

    def _drop_derived(
        self, sealed: SealedSegment, key: str, counter: str | None = None, error: Exception | None = None
    ) -> None:
        """Forget a segment's damaged derived file (graph, window tree, codes, term graphs): removed,
        counted, reported; the optimizer builds it again. The manifest still names it until the rebuild is published."""
        if counter is not None:
            self._counters[counter] += 1
        if error is not None:
            self._last_housekeeping_error = f"{error}; rebuilding it"
        (self._segments_dir / sealed.entry[key]["file"]).unlink(missing_ok=True)
        sealed.entry = {name: value for name, value in sealed.entry.items() if name != key}

    # -- background optimizer: graphs and merges ----------------------------------------------
    def _merge_candidates(self) -> tuple[int, ...] | None:
        live = {sid: seg.live_rows for sid, seg in self._sealed.items()}
        return choose_merge(live, self.max_segment_rows)

    def _next_job(self, skip: set[tuple]) -> Job | None:
        """The optimizer's next job (lock held): merge small segments first, then build missing graphs."""
        if self._closed:
            return None
        merge = self._merge_candidates()
        if merge is not None and ("merge", *merge) not in skip:
            return self._merge_job(merge)
        for segment_id, sealed in sorted(self._sealed.items()):
            if self._wants_codes(sealed) and ("codes", segment_id) not in skip:
                return self._codes_job(sealed)  # first: codes take seconds, a graph minutes
        for segment_id, sealed in sorted(self._sealed.items()):
            if sealed.graph is None and ("graph", segment_id) not in skip and sealed.num_rows >= MIN_GRAPH_ROWS:
                return self._graph_job(sealed)
        for segment_id, sealed in sorted(self._sealed.items()):
            if self._wants_tree(sealed) and ("tree", segment_id) not in skip:
                return self._tree_job(sealed)
        for segment_id, sealed in sorted(self._sealed.items()):
            if self._wants_terms(sealed) and ("terms", segment_id) not in skip:
                return self._terms_job(sealed)
        return None

    def _wants_terms(self, sealed: SealedSegment) -> bool:
        return (
            bool(self._graph_params.term_fields)
            and sealed.terms is None
            and sealed.graph is not None
            and sealed.payload is not None
        )

    def _terms_job(self, sealed: SealedSegment) -> Job:
        root, payload = sealed.graph, sealed.payload
        assert root is not None and payload is not None

        def build(should_stop: Any) -> tuple[dict[str, Any], TermGraphs]:
            return build_terms_file(self._segments_dir, sealed.segment_id, root, payload, self._graph_params,
                                    should_stop)  # fmt: skip

        return self._derived_job("terms", sealed, "term_graphs", build, lambda current: current is sealed)

    def _derived_job(
        self,
        kind: str,
        sealed: SealedSegment,
        key: str,
        build: Callable[[Callable[[], bool]], tuple[dict[str, Any], Any]],
        still_applies: Callable[[SealedSegment], bool],
    ) -> Job:
        """A job building one derived file of a segment (codes, window tree, term graphs): ``build`` returns
        its manifest entry and the structure served from it; publishing records the entry under ``key``
        and attaches the structure, while the segment is still open and ``still_applies`` to it."""
        segment_id = sealed.segment_id
        attribute = {"codes": "codes", "window_tree": "tree", "term_graphs": "terms"}[key]
        counter = {"codes": "codes_built", "window_tree": "window_trees_built", "term_graphs": "term_graphs_built"}[key]

        def publish(result: tuple[dict[str, Any], Any]) -> bool:
            current = self._sealed.get(segment_id)
            if self._closed or current is None or not still_applies(current):
                return False
            entry = {**current.entry, key: result[0]}
            if not self._store.update_segment_entry(segment_id, entry):
                return False
            current.entry = entry
            setattr(current, attribute, result[1])
            self._views = None
            self._counters[counter] += 1
            return True

        def discard(result: tuple[dict[str, Any], Any]) -> None:
            self._remove_files([result[0]["file"]])

        return Job(kind, (segment_id,), build, publish, discard)

    def _wants_tree(self, sealed: SealedSegment) -> bool:
        return (
            sealed.tree is None
            and sealed.graph is not None
            and sealed.sorted_by is not None
            and self._graph_params.wants_tree(sealed.num_rows)
        )

    def _wants_codes(self, sealed: SealedSegment) -> bool:
        return self._quantization is not None and sealed.codes is None and sealed.num_rows >= MIN_CODE_ROWS

    def _codes_job(self, sealed: SealedSegment) -> Job:
        vectors, params = sealed.data.vectors, self._quantization
        assert params is not None

        def build(should_stop: Any) -> tuple[dict[str, Any], Quantizer]:
            return build_codes_file(self._segments_dir, sealed.segment_id, vectors, self.schema.metric, params,
                                    should_stop)  # fmt: skip

        return self._derived_job("codes", sealed, "codes", build, lambda current: current is sealed)

    def _tree_job(self, sealed: SealedSegment) -> Job:
        root = sealed.graph
        assert root is not None

        def build(should_stop: Any) -> tuple[dict[str, Any], WindowTree]:
            return build_tree_file(self._segments_dir, sealed.segment_id, root, self._graph_params, should_stop)

        # a tree is built over the segment's graph: it applies while that graph is the segment's
        return self._derived_job("tree", sealed, "window_tree", build, lambda current: current.graph is root)

    def _superseded(self, job: Job) -> bool:
        """A job whose segments are all about to be merged into a larger set is not worth finishing: a
        graph for one of them, or a merge of fewer of them (more segments sealed meanwhile)."""
        merge = self._merge_candidates()
        return merge is not None and set(job.segment_ids) < set(merge)

    def _graph_job(self, sealed: SealedSegment) -> Job:
        segment_id, vectors = sealed.segment_id, sealed.data.vectors

        def execute(should_stop: Any) -> tuple[dict[str, Any], HnswIndex]:
            return build_graph_file(self._segments_dir, segment_id, vectors, self._graph_params, should_stop)

        def publish(result: tuple[dict[str, Any], HnswIndex]) -> bool:
            return self._publish_graph(segment_id, *result)

        def discard(result: tuple[dict[str, Any], HnswIndex]) -> None:
            self._remove_files([result[0]["file"]])

        return Job("graph", (segment_id,), execute, publish, discard)

    def _publish_graph(self, segment_id: int, graph_entry: dict[str, Any], index: HnswIndex) -> bool:
        """Record a built graph in the manifest and attach it to its segment (lock held)."""
        sealed = self._sealed.get(segment_id)
        if self._closed or sealed is None:
            return False
        entry = {**sealed.entry, "graph": graph_entry}
        if not self._store.update_segment_entry(segment_id, entry):
            return False
        sealed.entry = entry
        sealed.graph = index
        self._views = None
        self._counters["graphs_built"] += 1
        return True

    def _merge_job(self, segment_ids: tuple[int, ...]) -> Job:
        """Merge ``segment_ids`` (their live rows as of now) into one segment with its graph."""
        inputs = [self._sealed[sid] for sid in segment_ids]
        before = [seg.deleted for seg in inputs]  # replaced, never mutated, when rows die

        def execute(should_stop: Any) -> dict[str, Any]:
            table = merged_table([seg.data.table for seg in inputs], [~d for d in before], self.schema.window)
            if table.num_rows == 0:
                return {"segment_id": None}
            new_id = self._store.allocate_segment_id()
            entry = self._write_segment(new_id, table)
            result = {"segment_id": new_id, "entry": entry, "index": None}
            try:
                data = open_segment(self._segments_dir / entry["file"], self.schema.dim)
                result["data"] = data
                result["payload"] = open_payload(
                    self._segments_dir / entry["payload"]["file"], entry["payload"], data.num_rows, verify=False
                )
                if data.num_rows >= MIN_GRAPH_ROWS:
                    graph_entry, result["index"] = build_graph_file(
                        self._segments_dir, new_id, data.vectors, self._graph_params, should_stop
                    )
                    entry["graph"] = graph_entry
            except BaseException:
                discard(result)
                raise
            return result

        def publish(result: dict[str, Any]) -> bool:
            if self._closed or any(self._sealed.get(seg.segment_id) is not seg for seg in inputs):
                return False  # an input was compacted or the collection closed meanwhile
            # rows that died in the inputs after the snapshot (deleted, or replaced elsewhere)
            died = died_since([seg.data.ids for seg in inputs], before, [seg.deleted for seg in inputs])
            new_id = result["segment_id"]
            if new_id is None:
                self._store.commit_replace_segments(segment_ids, None, None, np.empty(0, dtype=np.int64))
            else:
                data = result["data"]
                dead = np.isin(data.ids, died)
                self._store.commit_replace_segments(segment_ids, new_id, result["entry"], data.ids, dead)
                merged = SealedSegment(new_id, result["entry"], data, self.schema.metric, dead, self.schema.window)
                merged.graph = result["index"]
                merged.payload = result["payload"]
                self._sealed[new_id] = merged
            for seg in inputs:
                del self._sealed[seg.segment_id]
                self._remove_files(seg.file_names())
            self._views = None
            self._counters["merges"] += 1
            return True

        def discard(result: dict[str, Any]) -> None:
            if result.get("entry") is not None:
                self._remove_files(entry_files(result["entry"]))

        return Job("merge", segment_ids, execute, publish, discard)

    def _remove_files(self, names: list[str]) -> None:
        """Delete replaced or unpublished segment files; a crash before this leaves orphans, removed on open."""
        for name in names:
            (self._segments_dir / name).unlink(missing_ok=True)

    # -- what describe() reports of them --------------------------------------------------------
    def _codes_status(self, segment_id: int) -> str:
        """ready (kind) | building | queued | none | too_small | failed: <error>."""
        params = self._quantization
        return self._derived_status(
            segment_id,
            "codes",
            params is not None,
            lambda sealed: None if sealed.codes is None else f"ready ({params.kind})",
            lambda sealed: "too_small" if sealed.num_rows < MIN_CODE_ROWS else "queued",
        )

    def _tree_status(self, segment_id: int) -> str:
        """ready (levels, beta, leaf rows[, straddle buckets]) | building | queued | none | failed: <error>."""

        def ready(sealed: SealedSegment) -> str | None:
            tree = sealed.tree
            if tree is None:
                return None
            straddles = f", {len(tree.straddles)} straddle buckets" if tree.straddles else ""
            return f"ready ({tree.depth} levels, beta {tree.beta}, leaf_rows {tree.leaf_rows}{straddles})"

        def idle(sealed: SealedSegment) -> str:
            wanted = sealed.sorted_by is not None and self._graph_params.wants_tree(sealed.num_rows)
            return "queued" if wanted else "none"

        return self._derived_status(segment_id, "tree", True, ready, idle)

    def _terms_status(self, segment_id: int) -> str:
        """ready (graphs, fields) | building | queued | none | failed: <error>."""
        fields = ", ".join(self._graph_params.term_fields)
        return self._derived_status(
            segment_id,
            "terms",
            bool(fields),
            lambda sealed: None if sealed.terms is None else f"ready ({len(sealed.terms)} graphs over {fields})",
            lambda sealed: "none" if sealed.num_rows < MIN_GRAPH_ROWS else "queued",
        )

    def _derived_status(
        self,
        segment_id: int,
        kind: str,
        applies: bool,
        ready: Callable[[SealedSegment], str | None],
        idle: Callable[[SealedSegment], str],
    ) -> str:
        """A derived file's status: "none" when the segment is gone or the collection builds no such
        file (not ``applies``); else ``ready``'s text once built, the job's state while one runs or
        failed, and ``idle``'s text otherwise."""
        with self._lock:
            sealed = self._sealed.get(segment_id)
            if sealed is None or not applies:
                return "none"
            built = ready(sealed)
            if built is not None:
                return built
            busy = self._job_status(kind, segment_id)
            return busy if busy is not None else idle(sealed)

    def _job_status(self, kind: str, segment_id: int) -> str | None:
        """building | failed: <error> for the segment's job of ``kind``, or None (lock held)."""
        running = self._optimizer.running
        if running is not None and running.kind == kind and segment_id in running.segment_ids:
            return "building"
        error = self._optimizer.failures.get((kind, segment_id))
        return None if error is None else f"failed: {error}"

    def _graph_status(self, segment_id: int) -> str:
        """ready | building | merging | queued | too_small | failed: <error>."""
        with self._lock:
            sealed = self._sealed.get(segment_id)
            if sealed is not None and sealed.graph is not None:
                return "ready"
            running = self._optimizer.running
            if running is not None and running.kind in ("graph", "merge") and segment_id in running.segment_ids:
                return "merging" if running.kind == "merge" else "building"
            for key, error in self._optimizer.failures.items():
                if key[0] in ("graph", "merge") and segment_id in key[1:]:
                    return f"failed: {error}"
            if sealed is not None and sealed.data.num_rows < MIN_GRAPH_ROWS:
                return "too_small"
            return "queued"
