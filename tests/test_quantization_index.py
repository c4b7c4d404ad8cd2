"""Quantisers over a segment's vectors: candidates, exact rescoring, filters and persistence."""

from __future__ import annotations

import numpy as np
import pytest

from tests.oracles import exact_search
from vecstore.core import scalar
from vecstore.core.exact import row_norms
from vecstore.errors import DataCorruption, InvalidArgument
from vecstore.index.quantization import BinaryQuantizer, ProductQuantizer, ScalarQuantizer, code_rows, rescore
from vecstore.types import METRIC_CODES


def _clustered(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)).astype(np.float32) * 3
    vectors = centres[rng.integers(0, 20, n)] + rng.standard_normal((n, dim)).astype(np.float32)
    queries = centres[rng.integers(0, 20, 30)] + rng.standard_normal((30, dim)).astype(np.float32)
    return vectors.astype(np.float32), queries.astype(np.float32)


def _quantizer(kind: str, vectors: np.ndarray, metric: str):
    if kind == "binary":
        return BinaryQuantizer.fit(vectors, metric)
    if kind == "sq8":
        return ScalarQuantizer.fit(vectors, metric, seed=3)
    return ProductQuantizer.train(vectors, metric, 8, train_rows=1500, iterations=8, seed=3)


def _search(quantizer, vectors, metric, queries, offsets, keys, k, oversampling):
    code = METRIC_CODES[metric]
    candidates = quantizer.candidates(queries, offsets, keys, k * oversampling)
    found, distances = rescore(vectors, row_norms(vectors, code), queries, candidates, keys, k, code)
    return np.where(found >= 0, keys[np.maximum(found, 0)], -1), distances


@pytest.mark.parametrize("kind", ["binary", "pq", "sq8"])
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_rescoring_is_exact_when_every_row_is_a_candidate(kind, metric):
    vectors, queries = _clustered(600, 32, seed=1)
    keys = np.random.default_rng(2).permutation(10_000)[:600].astype(np.int64)
    quantizer = _quantizer(kind, vectors, metric)
    offsets = np.arange(600, dtype=np.int64)
    ids, distances = _search(quantizer, vectors, metric, queries, offsets, keys, 10, oversampling=60)
    want_ids, want_d = exact_search(metric, queries, vectors, keys, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(distances, want_d, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kind", ["binary", "pq", "sq8"])
def test_filtered_candidates_only_come_from_allowed_rows_and_keep_recall(kind):
    """The subset test: candidates and results lie in the allowed rows; recall against exact search
    over only those rows stays above the floor at moderate oversampling."""
    vectors, queries = _clustered(3000, 64, seed=4)
    keys = np.arange(3000, dtype=np.int64)
    quantizer = _quantizer(kind, vectors, "cosine")
    rng = np.random.default_rng(5)
    for fraction in (0.01, 0.1, 0.5):
        offsets = np.flatnonzero(rng.random(3000) < fraction).astype(np.int64)
        candidates = quantizer.candidates(queries, offsets, keys, 100)
        assert set(candidates[candidates >= 0].tolist()) <= set(offsets.tolist())
        ids, _ = _search(quantizer, vectors, "cosine", queries, offsets, keys, 10, oversampling=10)
        want, _ = exact_search("cosine", queries, vectors[offsets], keys[offsets], 10)
        assert set(ids[ids >= 0].tolist()) <= set(offsets.tolist())
        hits = sum(len(set(a[a >= 0]) & set(b[b >= 0])) for a, b in zip(ids, want, strict=True))
        assert hits / max(1, (want >= 0).sum()) >= 0.95, (kind, fraction)


def test_binary_codes_are_the_sign_bits_about_the_mean():
    vectors, _ = _clustered(200, 70, seed=6)
    quantizer = BinaryQuantizer.fit(vectors, "cosine")
    rows = code_rows(vectors, "cosine")
    np.testing.assert_allclose(quantizer.centre, rows.mean(0), rtol=1e-5, atol=1e-6)
    bits = np.unpackbits(quantizer.codes.view(np.uint8), axis=1, bitorder="little")[:, :70]
    np.testing.assert_array_equal(bits, rows > quantizer.centre)
    assert quantizer.code_bytes == 200 * 2 * 8 + 70 * 4


def test_pq_estimates_are_distances_to_the_decoded_rows():
    from vecstore.core import pq

    vectors, queries = _clustered(800, 16, seed=7)
    quantizer = ProductQuantizer.train(vectors, "cosine", 4, train_rows=600, iterations=6)
    keys = np.arange(800, dtype=np.int64)
    found, estimates = quantizer.estimates(queries[:3], np.arange(800, dtype=np.int64), keys, 5)
    decoded = pq.decode(quantizer.codes, quantizer.codebooks)
    unit_queries = code_rows(queries[:3], "cosine")
    for i in range(3):
        want = 1.0 - decoded[found[i]] @ unit_queries[i]
        np.testing.assert_allclose(estimates[i], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["binary", "pq", "sq8"])
def test_persistence_round_trip_and_damage(kind):
    vectors, queries = _clustered(500, 16, seed=8)
    quantizer = _quantizer(kind, vectors, "l2")
    meta, arrays = quantizer.to_arrays()
    frozen = {name: np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape) for name, a in arrays.items()}
    back = type(quantizer).from_arrays(meta, frozen)  # read-only arrays, as a memory map hands back
    keys = np.arange(500, dtype=np.int64)
    offsets = np.arange(500, dtype=np.int64)
    np.testing.assert_array_equal(
        back.candidates(queries, offsets, keys, 20), quantizer.candidates(queries, offsets, keys, 20)
    )
    torn = dict(frozen)
    torn["codes"] = frozen["codes"][:, :-1]
    with pytest.raises(DataCorruption):
        type(quantizer).from_arrays(meta, torn)


def test_pq_rejects_sub_quantisers_that_do_not_divide_the_dimension_and_tiny_training_sets():
    vectors, _ = _clustered(400, 30, seed=9)
    with pytest.raises(InvalidArgument, match="must divide the dimension 30"):
        ProductQuantizer.train(vectors, "l2", 7)
    with pytest.raises(InvalidArgument, match="at least 256 rows"):
        ProductQuantizer.train(vectors[:100], "l2", 5)


def test_pq_training_is_seed_deterministic_and_samples_when_asked():
    vectors, _ = _clustered(1200, 8, seed=10)
    a = ProductQuantizer.train(vectors, "l2", 2, train_rows=500, iterations=5, seed=1)
    b = ProductQuantizer.train(vectors, "l2", 2, train_rows=500, iterations=5, seed=1)
    c = ProductQuantizer.train(vectors, "l2", 2, train_rows=500, iterations=5, seed=2)
    np.testing.assert_array_equal(a.codebooks, b.codebooks)
    np.testing.assert_array_equal(a.codes, b.codes)
    assert not np.array_equal(a.codebooks, c.codebooks)


@pytest.mark.parametrize("kind", ["binary", "pq", "sq8"])
def test_graph_walk_over_codes_visiting_everything_finds_the_nearest_codes(kind):
    """With ef as large as the graph the walk is exhaustive: its candidates are the codes' exact top
    by code distance (the 4-bit query's estimate, or PQ's table estimate), as a flat scan finds them."""
    from vecstore.index.hnsw import HnswIndex

    vectors, queries = _clustered(700, 32, seed=11)
    index = HnswIndex.build(vectors, "l2", m=8, ef_construction=40)
    quantizer = _quantizer(kind, vectors, "l2")
    walk = quantizer.traversal_queries(queries[:6])

    def code_distances(i: int) -> np.ndarray:
        if kind == "binary":
            weights = np.array([1, 2, 4, -8], dtype=np.int64)
            levels = weights @ np.unpackbits(walk[i].view(np.uint8), axis=1, bitorder="little").astype(np.int64)
            bits = np.unpackbits(quantizer.codes.view(np.uint8), axis=1, bitorder="little").astype(np.int64)
            return (-(bits @ levels)).astype(np.float32)
        if kind == "sq8":  # squared l2 to the decoded rows
            decoded = scalar.decode(quantizer.codes, quantizer.offset, quantizer.step)
            return ((decoded - queries[i]) ** 2).sum(axis=1).astype(np.float32)
        return walk[i][np.arange(8), quantizer.codes].sum(axis=1).astype(np.float32)

    code_metric = quantizer.code_metric
    batch = index.search_codes(quantizer.codes, walk, 15, 700, code_metric=code_metric)
    for i in range(6):
        single = index.search_codes(quantizer.codes, walk[i : i + 1], 15, 700, code_metric=code_metric)
        flat = code_distances(i)
        for found, found_d in ((batch[0][i], batch[1][i]), (single[0][0], single[1][0])):
            np.testing.assert_allclose(found_d, np.sort(flat)[:15], rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(flat[found], found_d, rtol=1e-5, atol=1e-4)
    mask = np.zeros(700, dtype=bool)
    mask[::3] = True
    found, _ = index.search_codes(quantizer.codes, walk, 15, 700, mask, code_metric=code_metric)
    assert mask[found[found >= 0]].all() and (found >= 0).all()


@pytest.mark.parametrize("kind", ["binary", "pq", "sq8"])
def test_a_build_polls_should_stop_and_cancels(kind):
    """Closing a collection stops a codes build between chunks (PQ: between sub-spaces too)."""
    from vecstore.index.hnsw import BuildCancelled

    vectors, _ = _clustered(700, 32, seed=3)
    polls = []

    def stop_on_second_poll() -> bool:
        polls.append(1)
        return len(polls) >= 2

    with pytest.raises(BuildCancelled):
        if kind == "binary":
            BinaryQuantizer.fit(vectors, "l2", stop_on_second_poll)
        elif kind == "sq8":
            ScalarQuantizer.fit(vectors, "l2", should_stop=stop_on_second_poll)
        else:
            ProductQuantizer.train(vectors, "l2", 8, should_stop=stop_on_second_poll)
    assert len(polls) == 2
    built = BinaryQuantizer.fit(vectors, "l2", lambda: False) if kind == "binary" else None
    assert built is None or built.codes.shape[0] == 700


def test_scalar_codes_match_their_numpy_oracle():
    """Codes, ranges and the kernels' distances against plain numpy: each value the nearest of 256
    steps over its dimension's range (clipped outside it); the prepared query's distance equals the
    decoded row's squared l2, and for ip the negative dot less the query's constant."""
    rng = np.random.default_rng(12)
    vectors = (rng.standard_normal((900, 24)) * rng.uniform(0.1, 5, 24)).astype(np.float32)
    vectors[:, 5] = 2.5  # a constant dimension
    queries = rng.standard_normal((4, 24)).astype(np.float32)
    offset, step = scalar.fit_range(vectors)
    low = np.quantile(vectors, scalar.RANGE_QUANTILE, axis=0)
    high = np.quantile(vectors, 1 - scalar.RANGE_QUANTILE, axis=0)
    want_step = np.where(high > low, (high - low) / 255, 1.0)
    np.testing.assert_allclose(step, want_step, rtol=1e-6)
    np.testing.assert_allclose(offset + step * -128, low, rtol=1e-5, atol=1e-5)
    codes = scalar.encode(vectors, offset, step)
    want_codes = np.clip(np.rint((vectors.astype(np.float64) - offset) / step), -128, 127)
    assert np.abs(codes.astype(np.int64) - want_codes).max() <= 1  # float32 rounding at a half step
    decoded = scalar.decode(codes, offset, step)
    inside = (vectors >= low) & (vectors <= high)
    assert (np.abs(decoded - vectors)[inside] <= step.repeat(900).reshape(24, 900).T[inside] * 0.51).all()
    np.testing.assert_array_equal(decoded[:, 5], 2.5)
    for metric in (scalar.L2, scalar.IP):
        prepared = scalar.prepare_queries(queries, offset, step, metric)
        for i in range(4):
            got = np.array([scalar.code_distance(codes[r], prepared[i], metric) for r in range(900)])
            if metric == scalar.L2:
                want = ((decoded - queries[i]) ** 2).sum(axis=1)
            else:
                want = -(decoded @ queries[i]) + queries[i] @ offset
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-2)
            rows = np.flatnonzero(rng.random(900) < 0.3).astype(np.int64)
            keys = rng.permutation(900).astype(np.int64)
            found, estimates = scalar.estimate_topk(codes, prepared[i], metric, rows, keys, 7)
            order = np.lexsort((keys[rows], got[rows]))[:7]
            np.testing.assert_array_equal(found, rows[order])
            np.testing.assert_allclose(estimates, got[rows][order], rtol=1e-6)


@pytest.mark.parametrize("metric", [scalar.L2, scalar.IP])
def test_a_scan_of_wide_scattered_codes_matches_its_numpy_oracle(metric):
    # rows of 300 bytes are prefetched ahead while the scan scores the one before: the same answer
    rng = np.random.default_rng(17)
    vectors = rng.standard_normal((3000, 300)).astype(np.float32)
    offset, step = scalar.fit_range(vectors)
    codes = scalar.encode(vectors, offset, step)
    query = rng.standard_normal(300).astype(np.float32)
    prepared = scalar.prepare_queries(query[None], offset, step, metric)[0]
    decoded = scalar.decode(codes, offset, step).astype(np.float64)
    want = ((decoded - query) ** 2).sum(axis=1) if metric == scalar.L2 else -(decoded @ query) + query @ offset
    keys = rng.permutation(3000).astype(np.int64)
    for rows in (np.flatnonzero(rng.random(3000) < 0.1), np.arange(2990, 3000), np.arange(1)):
        rows = rows.astype(np.int64)
        found, estimates = scalar.estimate_topk(codes, prepared, metric, rows, keys, 10)
        order = np.lexsort((keys[rows], want[rows]))[: min(10, rows.shape[0])]
        assert set(found[: order.shape[0]].tolist()) == set(rows[order].tolist())
        np.testing.assert_allclose(estimates[: order.shape[0]], want[rows][order], rtol=1e-4, atol=1e-2)
        assert (found[order.shape[0] :] == -1).all()


def test_a_scan_across_estimate_blocks_breaks_ties_by_key_as_its_oracle():
    # rows repeat so that many estimates tie, and the scan offers them block by block
    # (``ESTIMATE_BLOCK_ROWS``): the kept rows are still the smallest (estimate, key) pairs
    rng = np.random.default_rng(29)
    distinct = rng.standard_normal((40, 16)).astype(np.float32)
    vectors = distinct[rng.integers(0, 40, 2000)]
    offset, step = scalar.fit_range(vectors)
    codes = scalar.encode(vectors, offset, step)
    decoded = scalar.decode(codes, offset, step).astype(np.float64)
    query = rng.standard_normal(16).astype(np.float32)
    prepared = scalar.prepare_queries(query[None], offset, step, scalar.L2)[0]
    got = np.array([scalar.code_distance(codes[r], prepared, scalar.L2) for r in range(2000)])
    np.testing.assert_allclose(got, ((decoded - query) ** 2).sum(axis=1), rtol=1e-4, atol=1e-3)
    keys = rng.permutation(2000).astype(np.int64)
    rows = np.flatnonzero(rng.random(2000) < 0.6).astype(np.int64)
    assert rows.shape[0] > 3 * scalar.ESTIMATE_BLOCK_ROWS
    for count in (1, 25, 300):
        found, estimates = scalar.estimate_topk(codes, prepared, scalar.L2, rows, keys, count)
        order = np.lexsort((keys[rows], got[rows]))[:count]
        np.testing.assert_array_equal(found, rows[order])
        np.testing.assert_array_equal(estimates, got[rows][order].astype(np.float32))


def test_unit_prepared_queries_equal_their_numpy_oracle():
    rng = np.random.default_rng(31)
    vectors = rng.standard_normal((500, 40)).astype(np.float32)
    offset, step = scalar.fit_range(code_rows(vectors, "cosine"))
    queries = (rng.standard_normal((6, 40)) * 7).astype(np.float32)
    wide = queries.astype(np.float64)
    unit = (wide / np.linalg.norm(wide, axis=1, keepdims=True)).astype(np.float32)
    for metric in (scalar.L2, scalar.IP):
        got = scalar.prepare_queries(queries, offset, step, metric, unit=True)
        np.testing.assert_allclose(got, scalar.prepare_queries(unit, offset, step, metric), rtol=1e-6, atol=1e-7)
        for i in range(6):  # the single query's kernel is the batch's
            np.testing.assert_array_equal(scalar.prepare_one(queries[i], offset, step, metric, True), got[i])
    zero = np.zeros((1, 40), dtype=np.float32)
    np.testing.assert_array_equal(scalar.prepare_queries(zero, offset, step, scalar.IP, unit=True)[0, 0], 0.0)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_one_call_scan_of_codes_equals_candidates_then_rescoring(metric):
    """``ScalarQuantizer.scan_rescored_keyed`` (the single-query lane's call) against the general path's
    two steps and a numpy oracle of them: the codes' nearest ``count`` by decoded rows, then the exact
    top-k of those; a query holding NaN searches nothing."""
    vectors, queries = _clustered(1500, 48, seed=23)
    quantizer = ScalarQuantizer.fit(vectors, metric, seed=3)
    code = METRIC_CODES[metric]
    searched = code_rows(vectors, metric) if metric == "cosine" else vectors
    norms = row_norms(searched, code)
    keys = np.random.default_rng(5).permutation(1500).astype(np.int64) * 3
    decoded = scalar.decode(quantizer.codes, quantizer.offset, quantizer.step).astype(np.float64)
    rng = np.random.default_rng(8)
    for query in queries[:10]:
        rows = np.flatnonzero(rng.random(1500) < 0.4).astype(np.int64)
        sq, found, ids, distances = quantizer.scan_rescored_keyed(query, rows, searched, norms, keys, code, 10, 30)
        assert sq == pytest.approx(float(query.astype(np.float64) @ query), rel=1e-5)
        candidates = quantizer.candidates(query[None], rows, keys, 30)
        want_found, want_d = rescore(searched, norms, query[None], candidates, keys, 10, code)
        np.testing.assert_array_equal(found, want_found)
        np.testing.assert_array_equal(distances, want_d)
        np.testing.assert_array_equal(ids, np.where(found >= 0, keys[np.maximum(found, 0)], -1))
        # the oracle: nearest 30 of the decoded rows (unit query for cosine), then exact search among them
        target = code_rows(query[None], metric)[0].astype(np.float64)
        estimate = ((decoded[rows] - target) ** 2).sum(axis=1) if metric == "l2" else -(decoded[rows] @ target)
        nearest = rows[np.argsort(estimate, kind="stable")[:30]]
        want_ids, _ = exact_search(metric, query[None], vectors[nearest], keys[nearest], 10)
        assert len(set(ids[0].tolist()) & set(want_ids[0].tolist())) >= 9
    bad = queries[0].copy()
    bad[2] = np.nan
    sq, found, ids, distances = quantizer.scan_rescored_keyed(bad, np.arange(1500), searched, norms, keys, code, 10, 30)
    assert not np.isfinite(sq) and (found == -1).all() and (ids == -1).all() and np.isinf(distances).all()
