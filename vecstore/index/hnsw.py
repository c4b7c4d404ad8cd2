"""An HNSW graph over one segment's vectors: build, search (optionally masked), persist.

The graph is flat arrays (see ``vecstore.core.hnsw``); ``to_arrays`` hands them to the storage layer
(which writes files; this layer knows no paths) and ``from_arrays`` takes them back, memory-mapped
read-only arrays included, so opening a persisted graph costs no rebuild. Offsets are segment row
numbers; the caller maps them to ids.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from vecstore.core import code_walk, hnsw, hnsw_build
from vecstore.errors import InvalidArgument

#: the kernel metric each user metric's graph is built and searched with (see ``search_vectors``)
METRICS = {"l2": hnsw.L2, "ip": hnsw.L2, "cosine": hnsw.IP}
ARRAYS = ("links0", "counts0", "levels", "upper_offset", "links_up", "counts_up")


class BuildCancelled(Exception):
    """A build stopped early because its ``should_stop`` callback said so (e.g. the collection closed)."""


def cancellation_check(should_stop: Callable[[], bool] | None) -> Callable[[], None]:
    """A function raising BuildCancelled once ``should_stop()`` says so (builds call it between chunks)."""

    def check() -> None:
        if should_stop is not None and should_stop():
            raise BuildCancelled

    return check


def search_vectors(vectors: np.ndarray, metric: str) -> np.ndarray:
    """The rows a graph is built and searched on: l2 uses the vectors as stored; cosine, unit vectors
    under inner product.

    Inner product is searched in l2 on rows extended by one coordinate, sqrt(M - |x|^2) with M the
    largest squared norm (queries get a 0 there): then |q' - x'|^2 = |q|^2 + M - 2 q.x, so the nearest
    row in l2 has the largest inner product. Raw inner product is not a metric and its pruned graph
    connects poorly: on clustered data recall@10 at ef=64 was 0.75 raw and 0.94 extended.
    """
    if metric == "l2":
        return np.ascontiguousarray(vectors, dtype=np.float32)
    wide = np.asarray(vectors, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(wide, axis=1, keepdims=True)
        return np.ascontiguousarray(wide / np.where(norms > 0, norms, 1), dtype=np.float32)
    squared = np.einsum("ij,ij->i", wide, wide)
    top = squared.max() if squared.size else 0.0
    return np.ascontiguousarray(np.hstack([wide, np.sqrt(top - squared)[:, None]]), dtype=np.float32)


def stored_dim(searched: np.ndarray, metric: str) -> int:
    """The stored vectors' width within rows in ``search_vectors``' form (inner product adds one
    coordinate after the vector; l2 and cosine rows begin with, or are, the vector)."""
    return searched.shape[1] - (1 if metric == "ip" else 0)


@dataclass
class HnswGraph:
    metric: str
    m: int
    ef_construction: int
    entry: int
    max_level: int
    links0: np.ndarray
    counts0: np.ndarray
    levels: np.ndarray
    upper_offset: np.ndarray
    links_up: np.ndarray
    counts_up: np.ndarray

    @property
    def n(self) -> int:
        return int(self.counts0.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the graph arrays (not the vectors)."""
        return int(sum(getattr(self, name).nbytes for name in ARRAYS))

    def link_lift(self, sample: np.ndarray, member: np.ndarray, share: float) -> float:
        """How many times more often the layer-0 links of the ``sample`` rows lead to rows where
        ``member`` (bool [n]) is set than links to random rows would, ``share`` being the set rows'
        fraction of the graph (1.0 when the sample has no links)."""
        links, inside = hnsw.link_counts(self.links0, self.counts0, sample, member)
        if links == 0 or share <= 0.0:
            return 1.0
        return inside / links / share

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able parameters, named arrays) for the storage layer to persist."""
        meta = {"metric": self.metric, "m": self.m, "ef_construction": self.ef_construction,
                "entry": self.entry, "max_level": self.max_level}  # fmt: skip
        return meta, {name: getattr(self, name) for name in ARRAYS}

    @staticmethod
    def from_arrays(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> HnswGraph:
        """The graph over persisted arrays (read-only memory maps work as they are)."""
        return HnswGraph(**meta, **{name: arrays[name] for name in ARRAYS})


def _positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InvalidArgument(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def _finite_rows(array: object, name: str, dim: int | None = None) -> np.ndarray:
    """``array`` as float32 [n, dim] (a single row may come as [dim]); NaN, inf and a wrong width refused.

    The kernels index rows without bounds checks, so a wrong width would read past a row, not fail.
    """
    try:
        out = np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{name} must be numbers, got {type(array).__name__}: {exc}") from exc
    if out.ndim == 1 and dim is not None:
        out = out[None, :]
    if out.ndim != 2 or (dim is not None and out.shape[1] != dim):
        want = f"[n, {dim}]" if dim is not None else "[n, dim]"
        raise InvalidArgument(f"{name} must have shape {want}, got {out.shape}")
    if not np.isfinite(out).all():
        raise InvalidArgument(f"{name} hold NaN or infinite values; pass finite numbers")
    return out


def sample_levels(n: int, m: int, seed: int) -> np.ndarray:
    """Each node's top layer: floor(-ln U * mL) with mL = 1 / ln m, as in the paper."""
    rng = np.random.default_rng(seed)
    uniform = 1.0 - rng.random(n)  # (0, 1]
    # at most 53 levels (uniform >= 2^-53, m >= 2): int8 holds every level
    return np.floor(-np.log(uniform) / np.log(max(m, 2))).astype(np.int8)


def _link_orphans(links0: np.ndarray, counts0: np.ndarray, entry: int) -> None:
    """Give every layer-0 node without an inbound link one, from its closest out-neighbour with room.

    Pruning by the heuristic can leave nodes that no list points to (it happens under inner product:
    small-norm rows are never kept). Such a row could never be returned, not even when a filter allows
    only it, so the build repairs them.
    """
    n, cap = links0.shape
    for _ in range(4):  # a replacement can orphan another node; a few rounds reach a fixpoint
        valid = np.arange(cap)[None, :] < counts0[:, None]
        inbound = np.bincount(links0[valid], minlength=n)
        inbound[entry] = 1
        orphans = np.flatnonzero(inbound == 0)
        if len(orphans) == 0:
            return
        for v in orphans:
            host = _nearby_node_with_room(links0, counts0, int(v))
            if host >= 0:
                links0[host, counts0[host]] = v
                counts0[host] += 1
            elif counts0[v]:
                links0[links0[v, 0], cap - 1] = v  # every list nearby is full: take a last slot


def _nearby_node_with_room(links0: np.ndarray, counts0: np.ndarray, start: int, max_hops: int = 3) -> int:
    """A node within ``max_hops`` out-links of ``start`` whose list has a free slot, or -1."""
    cap = links0.shape[1]
    frontier, seen = [start], {start}
    for _ in range(max_hops):
        nxt = []
        for node in frontier:
            for u in links0[node, : counts0[node]]:
                u = int(u)
                if u in seen:
                    continue
                if counts0[u] < cap:
                    return u
                seen.add(u)
                nxt.append(u)
        frontier = nxt
    return -1


#: nodes inserted one by one before batches start (a young graph changes too fast to batch)
SEQUENTIAL_PREFIX = 2048
#: nodes per parallel batch: larger batches keep cores busier; smaller ones see more of the graph
BATCH_NODES = 256
#: nodes per sequential kernel call, so that a build can be stopped between calls
SEQUENTIAL_CHUNK = 4096


#: a build inserts rows spread out, not in stored order, when rows stored side by side are this much closer
#: (mean squared distance) than random pairs: a segment sorted by a window attribute the vectors follow
CLUSTERED_ORDER_RATIO = 0.5
#: neighbouring and random pairs sampled to decide it
ORDER_SAMPLE_PAIRS = 1024


def spread_order(n: int) -> np.ndarray:
    """0..n-1 in bit-reversed order: every prefix samples the whole range evenly, then fills in between."""
    bits = max(1, (n - 1).bit_length())
    forward = np.arange(1 << bits, dtype=np.int64)
    reversed_ = np.zeros_like(forward)
    for b in range(bits):
        reversed_ |= ((forward >> b) & 1) << (bits - 1 - b)
    return reversed_[reversed_ < n].astype(np.int32)


def insertion_order(data: np.ndarray, seed: int = 0) -> np.ndarray:
    """The order a build inserts ``data``'s rows in (int32 [n]): stored order, or ``spread_order`` when
    rows stored side by side are clustered.

    Inserting clustered rows in sequence builds the graph one cluster at a time: the young graph holds
    only the first clusters, so few links cross between them, and queries need about twice the ef for
    the same recall (seen on a segment sorted by a window its clusters follow). Bit-reversed order sees
    the whole segment early, as a random order would, and always the same way. Rows whose stored order
    says nothing about their vectors keep it: there the order changes nothing but the draw.
    """
    n = data.shape[0]
    if n < 4:
        return np.arange(n, dtype=np.int32)
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n - 1, ORDER_SAMPLE_PAIRS)
    anywhere = rng.integers(0, n, ORDER_SAMPLE_PAIRS)
    rows = data[first].astype(np.float64)
    beside = float(np.mean(np.sum((rows - data[first + 1]) ** 2, axis=1)))
    apart = float(np.mean(np.sum((rows - data[anywhere]) ** 2, axis=1)))
    if beside < CLUSTERED_ORDER_RATIO * apart:
        return spread_order(n)
    return np.arange(n, dtype=np.int32)


def build(
    vectors: np.ndarray,
    metric: str,
    m: int = 16,
    ef_construction: int = 200,
    seed: int = 0,
    threads: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> HnswGraph:
    """Insert every row of ``vectors`` [n, dim], in ``insertion_order``; with more than one thread, after a
    sequential prefix, in batches whose candidate searches run in parallel (``vecstore.core.hnsw_build``).

    ``should_stop`` is polled between kernel calls; when it returns True the build raises
    ``BuildCancelled``.
    """
    if metric not in METRICS:
        raise InvalidArgument(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    vectors = _finite_rows(vectors, "vectors")
    return build_prepared(search_vectors(vectors, metric), metric, m, ef_construction, seed, threads, should_stop)


def build_prepared(
    data: np.ndarray,
    metric: str,
    m: int = 16,
    ef_construction: int = 200,
    seed: int = 0,
    threads: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> HnswGraph:
    """``build`` on rows already in their searched form (``search_vectors``' output, or a contiguous
    slice of it: the window tree builds its buckets' graphs on slices of the segment's rows)."""
    m = _positive_int(m, "m", minimum=2)
    ef_construction = _positive_int(ef_construction, "ef_construction")
    n = data.shape[0]
    levels = sample_levels(n, m, seed)
    # int32 offsets and int8 levels: 7 bytes a node less than int64/int32, which codes + links need to stay
    # within 1/8 of 384-d float vectors (graphs saved with the wider types still load and search)
    upper_offset = np.zeros(n, dtype=np.int32)
    upper_offset[1:] = np.cumsum(levels)[:-1]
    rows = int(levels.sum())
    links0 = np.full((n, 2 * m), -1, dtype=np.int32)
    counts0 = np.zeros(n, dtype=np.int32)
    links_up = np.full((max(rows, 1), m), -1, dtype=np.int32)
    counts_up = np.zeros(max(rows, 1), dtype=np.int32)
    state = np.array([-1, -1, 0], dtype=np.int64)
    visited = np.zeros(n, dtype=np.uint32)
    code = METRICS[metric]
    threads = threads or numba.get_num_threads()
    order = insertion_order(data, seed)
    prefix = n if threads <= 1 else min(n, SEQUENTIAL_PREFIX)
    check = cancellation_check(should_stop)
    for start in range(0, prefix, SEQUENTIAL_CHUNK):
        check()
        hnsw.insert_range(data, code, m, ef_construction, levels, upper_offset, links0, counts0, links_up,
                          counts_up, state, order, start, min(prefix, start + SEQUENTIAL_CHUNK), visited)  # fmt: skip
    if 0 < prefix < n:
        top = int(levels.max())
        visited_t = np.zeros((threads, n), dtype=np.uint32)
        epochs = np.zeros(threads, dtype=np.int64)
        out_n = np.empty((BATCH_NODES, top + 1, ef_construction), dtype=np.int32)
        out_d = np.empty((BATCH_NODES, top + 1, ef_construction), dtype=np.float32)
        out_count = np.zeros((BATCH_NODES, top + 1), dtype=np.int64)
        for start in range(prefix, n, BATCH_NODES):
            check()
            stop = min(n, start + BATCH_NODES)
            entry, max_level = int(state[0]), int(state[1])
            hnsw_build.batch_candidates(data, code, ef_construction, levels, upper_offset, links0, counts0, links_up,
                                        counts_up, entry, max_level, order, start, stop, visited_t, epochs, out_n,
                                        out_d, out_count)  # fmt: skip
            hnsw_build.batch_link(data, code, m, levels, upper_offset, links0, counts0, links_up, counts_up, state,
                                  order, start, stop, max_level, out_n, out_d, out_count, threads)  # fmt: skip
    if n:
        _link_orphans(links0, counts0, int(state[0]))
    return HnswGraph(metric, m, ef_construction, int(state[0]), int(state[1]), links0, counts0, levels,
                     upper_offset, links_up, counts_up)  # fmt: skip


#: ``search_one_keyed``'s node-to-row map when node i is row i + base
_NO_ROWS = np.zeros(0, dtype=np.int64)


class HnswIndex:
    """A graph with the vectors it was built on, ready to answer queries."""

    def __init__(self, graph: HnswGraph, vectors: np.ndarray, *, prepared: np.ndarray | None = None) -> None:
        """``vectors`` are the rows the graph was built on. ``prepared`` are their ``search_vectors``
        when the caller has them (persisted with the graph), so no copy is computed."""
        if vectors.shape[0] != graph.n:
            raise InvalidArgument(f"graph has {graph.n} nodes but {vectors.shape[0]} vectors were given")
        self.graph = graph
        self.source = vectors
        self.vectors = search_vectors(vectors, graph.metric) if prepared is None else prepared
        if self.vectors.shape[0] != graph.n:
            raise InvalidArgument(f"graph has {graph.n} nodes but {self.vectors.shape[0]} prepared rows")
        self.code = METRICS[graph.metric]
        self._scratch = threading.local()  # per-thread visited tags and heaps for single queries
        self._no_mask = np.zeros(1, dtype=np.bool_)
        # read once: a single search's wrapper would look each of these up every call
        self._walk_args = (graph.entry, graph.max_level, graph.links0, graph.counts0, graph.links_up, graph.counts_up,
                           graph.upper_offset)  # fmt: skip
        self._is_ip, self._is_cosine = graph.metric == "ip", graph.metric == "cosine"

    @property
    def nbytes(self) -> int:
        """Bytes the index holds beyond the segment's vectors: the graph, and any prepared copy of the rows."""
        prepared = self.prepared_vectors
        return self.graph.nbytes + (0 if prepared is None else int(prepared.nbytes))

    @property
    def prepared_vectors(self) -> np.ndarray | None:
        """The rows as searched when they differ from the stored vectors (cosine, ip), to persist."""
        return None if self.graph.metric == "l2" else self.vectors

    def _scratch_for(self, ef: int):
        s = self._scratch
        if getattr(s, "visited", None) is None:
            n = self.graph.n
            s.visited = np.zeros(n, dtype=np.uint32)
            s.epoch = np.zeros(1, dtype=np.uint32)
            s.cand_d = np.empty(n + 1, dtype=np.float32)
            s.cand_n = np.empty(n + 1, dtype=np.int32)
            s.res_d = np.empty(0, dtype=np.float32)
        if s.res_d.shape[0] < ef + 1:
            s.res_d = np.empty(ef + 1, dtype=np.float32)
            s.res_n = np.empty(ef + 1, dtype=np.int32)
        return s

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        metric: str,
        m: int = 16,
        ef_construction: int = 200,
        seed: int = 0,
        threads: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> HnswIndex:
        """Build the graph over ``vectors`` (see ``build``) and wrap it for searching."""
        return cls(build(vectors, metric, m, ef_construction, seed, threads, should_stop), vectors)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        ef: int,
        mask: np.ndarray | None = None,
        threads: int | None = None,
        two_hop: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offsets int64 [q, k] (-1 padded) and distances float32 [q, k] (+inf padded).

        ``mask`` bool [n] for all queries or [q, n] one per query: only rows whose mask is set are
        returned. By default every row is still traversed; with ``two_hop`` the layer-0 search walks
        only allowed rows, reaching past rejected neighbours to theirs (for masks allowing few rows).
        Distances: squared l2, -dot, or 1 - cosine.
        """
        g = self.graph
        k = _positive_int(k, "k")
        ef = _positive_int(ef, "ef")
        queries = _finite_rows(queries, "queries", self.source.shape[1])
        if mask is not None:
            mask = np.asarray(mask, dtype=np.bool_)
            if mask.shape not in ((g.n,), (queries.shape[0], g.n)):
                raise InvalidArgument(f"mask must have shape ({g.n},) or ({queries.shape[0]}, {g.n}), got {mask.shape}")
        return self.search_validated(queries, k, ef, mask, threads, two_hop)

    def search_validated(
        self,
        queries: np.ndarray,
        k: int,
        ef: int,
        mask: np.ndarray | None = None,
        threads: int | None = None,
        two_hop: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``search`` for callers that have checked their input already (the engine does): queries finite
        float32 [q, dim], k and ef positive ints, mask None or bool [n] / [q, n]. Nothing is re-checked,
        and the kernels do not bounds-check, so wrong input here gives wrong answers, not errors."""
        g = self.graph
        single = queries.shape[0] == 1
        use_mask = 0 if mask is None else 2 if two_hop else 1
        if g.metric == "ip":
            wanted = queries
            queries = np.hstack([queries, np.zeros((queries.shape[0], 1), dtype=np.float32)])
        if single and (mask is None or mask.ndim == 1):
            # the single-query path: everything but the call itself happens in the kernel
            s = self._scratch_for(max(ef, k))
            row_mask = self._no_mask if mask is None else mask
            ids, dists = hnsw.search_single(self.vectors, queries[0], self.code, self._is_cosine, k, ef,
                                            *self._walk_args, row_mask, use_mask, s.visited, s.epoch, s.cand_d,
                                            s.cand_n, s.res_d, s.res_n)  # fmt: skip
        else:
            queries = np.ascontiguousarray(queries)
            if g.metric == "cosine":
                queries = search_vectors(queries, "cosine")
            masks = np.zeros((1, 1), dtype=np.bool_) if mask is None else np.atleast_2d(mask)
            chunks = max(1, min(queries.shape[0], threads or numba.get_num_threads()))
            ids, dists = hnsw.search_batch(self.vectors, queries, self.code, k, ef, *self._walk_args, masks, use_mask,
                                           chunks)  # fmt: skip
            if g.metric == "cosine":
                dists = np.where(ids >= 0, dists + np.float32(1.0), dists)
        if g.metric == "ip":
            return self._inner_product_distances(ids, wanted)
        return ids, dists

    def search_one_keyed(
        self,
        query: np.ndarray,
        keys: np.ndarray,
        k: int,
        ef: int,
        mask: np.ndarray | None,
        two_hop: bool = False,
        rows: np.ndarray | None = None,
        base: int = 0,
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray] | None:
        """One float32 query [dim] in one kernel call that also checks it and names its hits by ``keys``:
        ``(query_sq, offsets [1, k], keys [1, k], distances [1, k])``, nothing searched when ``query_sq``
        is not finite. A graph over some of a segment's rows gives offsets in the segment and is given
        the segment's ``keys``: node i is row ``rows[i]`` (int64), or without ``rows``, row i + ``base``.
        None for an inner-product graph (its distances are recomputed after the walk: use
        ``search_validated``). Same trust as ``search_validated`` for k, ef, the mask and ``rows``."""
        if self._is_ip:
            return None
        s = self._scratch_for(max(ef, k))
        use_mask = 0 if mask is None else 2 if two_hop else 1
        return hnsw.search_single_keyed(self.vectors, keys, _NO_ROWS if rows is None else rows, base, query, self.code,
                                        self._is_cosine, k, ef, *self._walk_args,
                                        self._no_mask if mask is None else mask, use_mask, s.visited, s.epoch,
                                        s.cand_d, s.cand_n, s.res_d, s.res_n)  # fmt: skip

    def search_codes(
        self,
        codes: np.ndarray,
        query_codes: np.ndarray,
        count: int,
        ef: int,
        mask: np.ndarray | None = None,
        two_hop: bool = False,
        threads: int | None = None,
        code_metric: int = hnsw.L2,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``count`` rows nearest each query by the codes' distance, found by walking this graph:
        binary ``codes`` uint64 [n, words] (one per graph node) with query codes [q, words], PQ codes
        uint8 [n, m] with query tables float32 [q, m, 256], or scalar codes int8 [n, dim] with queries
        float32 [q, 2, dim] compared by ``code_metric`` (``hnsw.L2`` or ``hnsw.IP``). Returns offsets int64
        [q, count] (-1 padded) and code distances [q, count]: candidates for exact rescoring. ``ef`` is
        raised to ``count``."""
        use_mask = 0 if mask is None else 2 if two_hop else 1
        ef = max(ef, count)
        if query_codes.shape[0] == 1 and (mask is None or mask.ndim == 1):
            s = self._scratch_for(ef)
            row_mask = self._no_mask if mask is None else mask
            return hnsw.search_codes_single(codes, query_codes[0], code_metric, count, ef, *self._walk_args, row_mask,
                                            use_mask, s.visited, s.epoch, s.cand_d, s.cand_n, s.res_d,
                                            s.res_n)  # fmt: skip
        masks = np.zeros((1, 1), dtype=np.bool_) if mask is None else np.atleast_2d(mask)
        chunks = max(1, min(query_codes.shape[0], threads or numba.get_num_threads()))
        return hnsw.search_batch(codes, query_codes, code_metric, count, ef, *self._walk_args, masks, use_mask,
                                 chunks)  # fmt: skip

    def search_codes_rescored_keyed(
        self,
        codes,
        query: np.ndarray,
        vectors: np.ndarray,
        norms: np.ndarray,
        keys: np.ndarray,
        metric: int,
        k: int,
        count: int,
        ef: int,
        mask: np.ndarray | None,
        two_hop: bool = False,
        rows: np.ndarray | None = None,
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """One float32 query [dim] through this graph walked over scalar ``codes`` (a ``ScalarQuantizer``
        of the graph's nodes), its ``count`` candidates ranked exactly on ``vectors`` / ``norms`` (metric
        code of ``vecstore.core.exact``), in one kernel call that also checks the query: ``(query_sq,
        offsets [1, k], keys [1, k], distances [1, k])``, nothing searched when ``query_sq`` is not
        finite. A graph over some of a segment's rows is given the segment's ``vectors``, ``norms`` and
        ``keys``, node i being row ``rows[i]`` (int64), and gives offsets in the segment. Same trust as
        ``search_validated`` for k, ef, the mask and ``rows``."""
        walk_ef = max(ef, count)
        s = self._scratch_for(walk_ef)
        use_mask = 0 if mask is None else 2 if two_hop else 1
        return code_walk.walk_rescored_keyed(codes.codes, codes.offset, codes.step, codes.code_metric, vectors, norms,
                                             keys, _NO_ROWS if rows is None else rows, query, metric, k, count,
                                             walk_ef, *self._walk_args,
                                             self._no_mask if mask is None else mask, use_mask, s.visited, s.epoch,
                                             s.cand_d, s.cand_n, s.res_d, s.res_n)  # fmt: skip

    def _inner_product_distances(self, ids: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-dot of each hit, computed on the stored rows (the extended-l2 distance would lose digits to
        cancellation), in ascending order per query."""
        found = ids >= 0
        rows = np.asarray(self.source[np.maximum(ids, 0).ravel()], dtype=np.float32).reshape(*ids.shape, -1)
        dists = np.where(found, -np.einsum("qkd,qd->qk", rows, queries), np.float32(np.inf)).astype(np.float32)
        order = np.argsort(dists, axis=1, kind="stable")
        return np.take_along_axis(ids, order, axis=1), np.take_along_axis(dists, order, axis=1)
