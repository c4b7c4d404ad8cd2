"""Compact codes for a segment's vectors: binary (1 bit a dimension), scalar (1 byte a dimension) and
product quantisation.

A quantiser picks candidates from its codes (a 4-bit query against 1-bit rows, a decoded byte row, or
PQ's table estimate); the float
vectors, which stay memory-mapped in the segment, then rescore them exactly. Only the codes (and PQ's
codebooks) need to stay in memory. ``to_arrays`` / ``from_arrays`` hand the arrays to the storage layer
and back, as the graphs do.

Codes are built on the rows the metric searches: unit vectors for cosine (see ``search_vectors``),
the stored vectors for l2 and ip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecstore.core import binary, code_walk, exact, pq, scalar
from vecstore.errors import DataCorruption, InvalidArgument
from vecstore.index.hnsw import cancellation_check

PQ_NBITS = 8
PQ_TRAIN_ROWS = 65_536
PQ_ITERATIONS = 20
#: rows prepared (normalised) and encoded at a time, so encoding needs no copy of the whole segment
CHUNK_ROWS = 65_536


def _unit(vectors: np.ndarray) -> np.ndarray:
    wide = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(wide, axis=1, keepdims=True)
    return np.ascontiguousarray(wide / np.where(norms > 0, norms, 1), dtype=np.float32)


def code_rows(vectors: np.ndarray, metric: str) -> np.ndarray:
    """The rows codes are built on (and queries encoded from) for ``metric``."""
    if metric == "cosine":
        return _unit(vectors)
    return np.ascontiguousarray(vectors, dtype=np.float32)


@dataclass
class BinaryQuantizer:
    """Sign bits of each row about the segment mean (``centre``), packed in uint64 words."""

    metric: str
    centre: np.ndarray  # float32 [dim]
    codes: np.ndarray  # uint64 [n, words]
    kind = "binary"
    code_metric = scalar.L2  # the graph walk's metric argument (binary estimates ignore it)

    @classmethod
    def fit(cls, vectors: np.ndarray, metric: str, should_stop: Callable[[], bool] | None = None) -> BinaryQuantizer:
        """Codes of every row about their mean; ``should_stop`` is polled between chunks of rows (raises
        BuildCancelled)."""
        check = cancellation_check(should_stop)
        n, dim = vectors.shape
        total = np.zeros(dim, dtype=np.float64)
        for start in range(0, n, CHUNK_ROWS):
            check()
            total += code_rows(vectors[start : start + CHUNK_ROWS], metric).sum(axis=0, dtype=np.float64)
        centre = (total / max(n, 1)).astype(np.float32)
        codes = np.empty((n, binary.code_words(dim)), dtype=np.uint64)
        for start in range(0, n, CHUNK_ROWS):
            check()
            codes[start : start + CHUNK_ROWS] = binary.pack_signs(
                code_rows(vectors[start : start + CHUNK_ROWS], metric), centre
            )
        return cls(metric, centre, codes)

    @property
    def code_bytes(self) -> int:
        return int(self.codes.nbytes + self.centre.nbytes)

    def candidates(self, queries: np.ndarray, offsets: np.ndarray, keys: np.ndarray, count: int) -> np.ndarray:
        """``count`` rows of ``offsets`` nearest each query by the codes' estimate (``binary.planes_score``):
        int64 [q, count], -1 padded. The set is what matters (it is rescored): ties at the last estimate
        may be broken differently for one query (offset order) than in a batch (id order)."""
        planes = self.traversal_queries(queries)
        if queries.shape[0] == 1:
            return binary.estimate_candidates(self.codes, planes[0], offsets, count)[None, :]
        return binary.estimate_topk_batch(self.codes, planes, offsets, keys, count)[0]

    def traversal_queries(self, queries: np.ndarray) -> np.ndarray:
        """What rows' codes are compared with, in a scan or a graph walk: each query centred and rounded
        to 4-bit values, as bit planes uint64 [q, QUERY_BITS, words]."""
        if queries.shape[0] == 1:
            return binary.query_planes(queries[0], self.centre, self.metric == "cosine")[None]
        return binary.query_planes_batch(code_rows(queries, self.metric), self.centre)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": "binary", "metric": self.metric}, {"centre": self.centre, "codes": self.codes}

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> BinaryQuantizer:
        centre, codes = arrays.get("centre"), arrays.get("codes")
        if centre is None or codes is None or codes.ndim != 2 or codes.shape[1] != binary.code_words(centre.shape[0]):
            raise DataCorruption("binary codes are damaged: missing arrays or a code width that fits no dimension")
        return cls(str(meta["metric"]), centre, codes)


@dataclass
class ProductQuantizer:
    """Each row cut into ``m`` sub-vectors, each stored as the byte of its nearest codebook centroid."""

    metric: str
    codebooks: np.ndarray  # float32 [m, 256, dim / m]
    codes: np.ndarray  # uint8 [n, m]
    kind = "pq"
    code_metric = scalar.L2  # the graph walk's metric argument (PQ's tables hold the metric already)

    @classmethod
    def train(
        cls,
        vectors: np.ndarray,
        metric: str,
        m: int,
        *,
        train_rows: int = PQ_TRAIN_ROWS,
        iterations: int = PQ_ITERATIONS,
        seed: int = 0,
        should_stop: Callable[[], bool] | None = None,
    ) -> ProductQuantizer:
        """Codebooks learnt by k-means on a seeded sample of ``train_rows`` rows, then every row encoded;
        ``should_stop`` is polled between sub-spaces and chunks of rows (raises BuildCancelled)."""
        check = cancellation_check(should_stop)
        n, dim = vectors.shape
        ksub = 1 << PQ_NBITS
        if m < 1 or dim % m:
            raise InvalidArgument(f"pq_m={m} must divide the dimension {dim}; try one of {_divisors(dim)}")
        if n < ksub:
            raise InvalidArgument(f"product quantisation needs at least {ksub} rows to train on, got {n}")
        pick = (
            np.arange(n) if n <= train_rows else np.random.default_rng(seed).choice(n, size=train_rows, replace=False)
        )
        sample = code_rows(vectors[np.sort(pick)], metric)
        codebooks = pq.train_codebooks(sample, m, ksub, iterations, seed, check)
        codes = np.empty((n, m), dtype=np.uint8)
        for start in range(0, n, CHUNK_ROWS):  # chunks: the rows may be a memory map larger than memory
            check()
            codes[start : start + CHUNK_ROWS] = pq.encode(
                code_rows(vectors[start : start + CHUNK_ROWS], metric), codebooks
            )
        return cls(metric, codebooks, codes)

    @property
    def code_bytes(self) -> int:
        return int(self.codes.nbytes + self.codebooks.nbytes)

    @property
    def _kernel_metric(self) -> int:
        return pq.L2 if self.metric == "l2" else pq.IP

    def estimates(self, queries: np.ndarray, offsets: np.ndarray, keys: np.ndarray, count: int):
        """Top ``count`` rows of ``offsets`` by the table estimate: (offsets, estimated distances) [q, count],
        the estimates in the metric's own terms (squared l2, -dot, or 1 - cosine)."""
        rows = code_rows(queries, self.metric)
        found, estimates = pq.adc_topk_batch(
            self.codes, rows, self.codebooks, self._kernel_metric, offsets, keys, count
        )
        if self.metric == "cosine":
            estimates = np.where(found >= 0, estimates + np.float32(1.0), estimates)
        return found, estimates

    def candidates(self, queries: np.ndarray, offsets: np.ndarray, keys: np.ndarray, count: int) -> np.ndarray:
        return self.estimates(queries, offsets, keys, count)[0]

    def traversal_queries(self, queries: np.ndarray) -> np.ndarray:
        """What a graph walk over these codes compares rows with: each query's distance table, float32
        [q, m, 256] (a code's estimate is the sum of its entries; +1 for cosine, left to the caller)."""
        return pq.distance_tables(code_rows(queries, self.metric), self.codebooks, self._kernel_metric)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": "pq", "metric": self.metric}, {"codebooks": self.codebooks, "codes": self.codes}

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> ProductQuantizer:
        books, codes = arrays.get("codebooks"), arrays.get("codes")
        if books is None or codes is None or books.ndim != 3 or codes.ndim != 2 or codes.shape[1] != books.shape[0]:
            raise DataCorruption("product codes are damaged: missing arrays or codes that do not fit the codebooks")
        return cls(str(meta["metric"]), books, codes)


@dataclass
class ScalarQuantizer:
    """Each dimension of each row as one signed byte over that dimension's range (``vecstore.core.scalar``):
    a quarter of the float rows, and close enough to them that a graph walked over the codes finds
    nearly the rows a float walk finds; every result is rescored on the float rows."""

    metric: str
    offset: np.ndarray  # float32 [dim]
    step: np.ndarray  # float32 [dim]
    codes: np.ndarray  # int8 [n, dim]
    kind = "sq8"

    @classmethod
    def fit(
        cls, vectors: np.ndarray, metric: str, seed: int = 0, should_stop: Callable[[], bool] | None = None
    ) -> ScalarQuantizer:
        """Ranges read off a seeded sample of ``PQ_TRAIN_ROWS`` rows, then every row encoded;
        ``should_stop`` is polled before reading the ranges and between chunks of rows (raises
        BuildCancelled)."""
        check = cancellation_check(should_stop)
        check()
        n = vectors.shape[0]
        if n == 0:
            raise InvalidArgument("scalar quantisation needs at least one row to read value ranges from")
        pick = np.arange(n) if n <= PQ_TRAIN_ROWS else np.random.default_rng(seed).choice(n, PQ_TRAIN_ROWS, False)
        offset, step = scalar.fit_range(code_rows(vectors[np.sort(pick)], metric))
        codes = np.empty(vectors.shape, dtype=np.int8)
        for start in range(0, n, CHUNK_ROWS):
            check()
            codes[start : start + CHUNK_ROWS] = scalar.encode(
                code_rows(vectors[start : start + CHUNK_ROWS], metric), offset, step
            )
        return cls(metric, offset, step, codes)

    @property
    def code_bytes(self) -> int:
        return int(self.codes.nbytes + self.offset.nbytes + self.step.nbytes)

    @property
    def code_metric(self) -> int:
        """The kernels' metric for these codes: squared l2, or the inner product (cosine on unit rows)."""
        return scalar.L2 if self.metric == "l2" else scalar.IP

    def candidates(self, queries: np.ndarray, offsets: np.ndarray, keys: np.ndarray, count: int) -> np.ndarray:
        """``count`` rows of ``offsets`` nearest each query by the decoded rows: int64 [q, count], -1 padded."""
        prepared = self.traversal_queries(queries)
        if queries.shape[0] == 1:
            return scalar.estimate_topk(self.codes, prepared[0], self.code_metric, offsets, keys, count)[0][None, :]
        return scalar.estimate_topk_batch(self.codes, prepared, self.code_metric, offsets, keys, count)[0]

    def scan_rescored_keyed(
        self,
        query: np.ndarray,
        rows: np.ndarray,
        vectors: np.ndarray,
        norms: np.ndarray,
        keys: np.ndarray,
        metric: int,
        k: int,
        count: int,
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """One float32 query [dim]: ``candidates`` among ``rows`` rescored on the float rows, in one kernel
        call that also checks the query and names the hits by ``keys``. Returns ``(query_sq, offsets
        [1, k], keys [1, k], distances [1, k])``, nothing searched when ``query_sq`` is not finite;
        ``metric`` is the exact kernels' code."""
        return code_walk.scan_rescored_keyed(self.codes, self.offset, self.step, self.code_metric, vectors, norms,
                                             keys, query, metric, rows, k, count)  # fmt: skip

    def traversal_queries(self, queries: np.ndarray) -> np.ndarray:
        """Queries as codes are compared with them, in a scan or a graph walk: float32 [q, 2, dim]."""
        # one compiled pass brings each query to unit length (cosine) and prepares it: the lane's single
        # calls (``vecstore.core.code_walk``) prepare theirs with the same kernel, so both agree exactly
        return scalar.prepare_queries(queries, self.offset, self.step, self.code_metric, self.metric == "cosine")

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": "sq8", "metric": self.metric}, {"offset": self.offset, "step": self.step, "codes": self.codes}

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> ScalarQuantizer:
        offset, step, codes = arrays.get("offset"), arrays.get("step"), arrays.get("codes")
        if (
            offset is None
            or step is None
            or codes is None
            or codes.dtype != np.int8
            or codes.ndim != 2
            or offset.shape != (codes.shape[1],)
            or step.shape != offset.shape
        ):
            raise DataCorruption("scalar codes are damaged: missing arrays or ranges that do not fit the codes")
        return cls(str(meta["metric"]), offset, step, codes)


def _divisors(dim: int) -> list[int]:
    return [d for d in range(1, min(dim, 256) + 1) if dim % d == 0][-6:]


Quantizer = BinaryQuantizer | ProductQuantizer | ScalarQuantizer


def rescore(
    vectors: np.ndarray,
    norms: np.ndarray,
    queries: np.ndarray,
    candidates: np.ndarray,
    keys: np.ndarray,
    k: int,
    metric: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each query among its candidate rows (-1 entries skipped): offsets and distances [q, k].
    ``metric`` is the exact kernels' code (``vecstore.core.exact``); ``norms`` as they expect."""
    nq = queries.shape[0]
    out_offsets = np.full((nq, k), -1, dtype=np.int64)
    out_distances = np.full((nq, k), np.inf, dtype=np.float32)
    qnorms = exact.query_norms(np.ascontiguousarray(queries, dtype=np.float32), metric)
    for i in range(nq):
        rows = candidates[i][candidates[i] >= 0]
        out_offsets[i], out_distances[i] = exact.topk_scan(vectors, norms, queries[i], qnorms[i], rows, keys, k, metric)
    return out_offsets, out_distances
