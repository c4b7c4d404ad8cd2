"""Differential tests: the exact Numba kernels against the plain-numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from tests.oracles import assert_same_neighbours, exact_search
from vecstore.core import exact
from vecstore.core.exact import COSINE, IP, L2, exact_topk, query_norms, row_norms
from vecstore.types import METRIC_CODES

DIMS = [1, 3, 17, 128, 784]
MASKS = ["all", "none", "1%", "50%"]


def _data(n: int, dim: int, metric: str, seed: int):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    if metric == "cosine":
        vectors[np.abs(vectors).sum(1) == 0] = 1.0
    queries = rng.standard_normal((5, dim)).astype(np.float32)
    keys = rng.permutation(n * 3)[:n].astype(np.int64)  # ids unrelated to storage order
    return vectors, queries, keys


def _offsets(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    if kind == "all":
        return np.arange(n, dtype=np.int64)
    if kind == "none":
        return np.empty(0, dtype=np.int64)
    frac = 0.01 if kind == "1%" else 0.5
    mask = rng.random(n) < frac
    mask[rng.integers(n)] = True
    return np.flatnonzero(mask).astype(np.int64)


def _masked_case(metric: str, mask: str, seed: int):
    """900 rows of 48-d, their queries and keys, the allowed offsets of ``mask`` and the rows' norm terms."""
    vectors, queries, keys = _data(900, 48, metric, seed=seed)
    return vectors, queries, keys, _offsets(mask, 900, seed=seed), row_norms(vectors, METRIC_CODES[metric])


def _check(metric, vectors, queries, keys, offsets, k):
    norms = row_norms(vectors, METRIC_CODES[metric])
    got_off, got_d = exact_topk(vectors, norms, queries, offsets, keys, k, METRIC_CODES[metric])
    got_ids = np.where(got_off >= 0, keys[np.maximum(got_off, 0)], -1)
    want_ids, want_d = exact_search(metric, queries, vectors[offsets], keys[offsets], k)
    assert got_ids.shape == (queries.shape[0], k)
    assert np.all((got_off >= 0) == (want_ids >= 0))
    assert set(got_off[got_off >= 0].tolist()) <= set(offsets.tolist())
    assert_same_neighbours(got_ids, got_d, want_ids, want_d, rtol=2e-4, atol=2e-3)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("mask", MASKS)
def test_exact_kernel_matches_numpy(metric, dim, mask):
    n = 700 if dim == 784 else 1500
    vectors, queries, keys = _data(n, dim, metric, seed=dim)
    offsets = _offsets(mask, n, seed=dim)
    for batch in (queries[:1], queries):  # the single-query and the per-thread batch kernel
        _check(metric, vectors, queries=batch, keys=keys, offsets=offsets, k=10)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_gemm_batch_path_matches_numpy(metric, monkeypatch):
    monkeypatch.setattr(exact, "GEMM_BLOCK_ROWS", 256)  # several blocks, ragged last one
    vectors, _, keys = _data(3000, 32, metric, seed=7)
    queries = np.random.default_rng(3).standard_normal((40, 32)).astype(np.float32)
    for offsets in (np.arange(3000, dtype=np.int64), _offsets("50%", 3000, 7)):
        _check(metric, vectors, queries, keys, offsets, k=15)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_k_larger_than_matches_pads(metric):
    vectors, queries, keys = _data(200, 8, metric, seed=1)
    offsets = np.array([3, 50, 199], dtype=np.int64)
    norms = row_norms(vectors, METRIC_CODES[metric])
    for batch in (queries[:1], queries):
        off, d = exact_topk(vectors, norms, batch, offsets, keys, 10, METRIC_CODES[metric])
        assert (off[:, :3] >= 0).all() and (off[:, 3:] == -1).all()
        assert np.isinf(d[:, 3:]).all() and np.isfinite(d[:, :3]).all()


def test_ties_break_by_smaller_key_whatever_the_storage_order():
    vectors = np.zeros((6, 2), dtype=np.float32)  # every row at distance 0 from the query
    keys = np.array([50, 10, 40, 20, 60, 30], dtype=np.int64)
    norms = row_norms(vectors, 0)
    off, _ = exact_topk(vectors, norms, np.zeros((1, 2), np.float32), np.arange(6), keys, 4, 0)
    assert keys[off[0]].tolist() == [10, 20, 30, 40]


def test_read_only_inputs_are_accepted():
    vectors, queries, keys = _data(500, 16, "l2", seed=2)
    vectors.setflags(write=False)
    keys.setflags(write=False)
    _check("l2", vectors, queries, keys, np.arange(500, dtype=np.int64), k=5)


@pytest.mark.parametrize("metric", [L2, IP, COSINE])
def test_single_query_norms_equal_the_batch_path(metric):
    queries = np.random.default_rng(5).standard_normal((6, 33)).astype(np.float32)
    queries[2] = 0.0  # a zero query: cosine's inverse norm is 0, not inf
    batch = query_norms(queries, metric)
    for i in range(queries.shape[0]):
        np.testing.assert_array_equal(query_norms(queries[i : i + 1], metric), batch[i : i + 1])


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("mask", MASKS)
def test_one_call_single_search_matches_numpy_and_the_batch_kernel(metric, mask):
    """``topk_scan_one`` (the engine's single-query scan) computes its own query norm and key lookup."""
    vectors, queries, keys, offsets, norms = _masked_case(metric, mask, seed=11)
    batch_off, batch_d = exact_topk(vectors, norms, queries, offsets, keys, 12, METRIC_CODES[metric])
    for i in range(queries.shape[0]):
        off, ids, d, source = exact.topk_scan_one(
            vectors, norms, queries[i], offsets, keys, 12, METRIC_CODES[metric], 7
        )
        assert off.shape == ids.shape == d.shape == source.shape == (1, 12)
        np.testing.assert_array_equal(off[0], batch_off[i])
        np.testing.assert_array_equal(d[0], batch_d[i])
        np.testing.assert_array_equal(ids[0], np.where(off[0] >= 0, keys[np.maximum(off[0], 0)], -1))
        np.testing.assert_array_equal(source[0], np.where(off[0] >= 0, 7, -1))
        want_ids, want_d = exact_search(metric, queries[i : i + 1], vectors[offsets], keys[offsets], 12)
        assert_same_neighbours(ids, d, want_ids, want_d, rtol=2e-4, atol=2e-3)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("mask", MASKS)
def test_serial_small_batch_equals_the_threaded_batch_kernel(metric, mask):
    """A few queries over few rows run on the calling thread: the same answers as one query per thread."""
    vectors, queries, keys, offsets, norms = _masked_case(metric, mask, seed=12)
    qnorms = query_norms(queries[:5], METRIC_CODES[metric])
    args = (vectors, norms, queries[:5], qnorms, offsets, keys, 12, METRIC_CODES[metric])
    serial_off, serial_d = exact.topk_scan_serial(*args)
    threaded_off, threaded_d = exact.topk_scan_batch(*args)
    np.testing.assert_array_equal(serial_off, threaded_off)
    np.testing.assert_array_equal(serial_d, threaded_d)
    _check(metric, vectors, queries[:3], keys, offsets[:30], k=12)  # the routed path, against numpy
