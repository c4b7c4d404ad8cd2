"""Differential tests of the binary and product quantisation kernels against plain numpy / Python."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecstore.core import binary, pq


def _oracle_codes(vectors: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Sign bits packed little-endian into uint64 words, by numpy's packbits."""
    bits = (vectors > centre).astype(np.uint8)
    words = binary.code_words(vectors.shape[1])
    padded = np.zeros((vectors.shape[0], words * 64), dtype=np.uint8)
    padded[:, : vectors.shape[1]] = bits
    return np.packbits(padded, axis=1, bitorder="little").view("<u8")


def _oracle_topk(distances: np.ndarray, offsets: np.ndarray, keys: np.ndarray, k: int):
    """Top-k of ``distances[offsets]`` by (distance, key), padded -1 / inf."""
    order = np.lexsort((keys[offsets], distances[offsets]))[:k]
    out = np.full(k, -1, dtype=np.int64)
    out_d = np.full(k, np.inf, dtype=np.float32)
    out[: order.size] = offsets[order]
    out_d[: order.size] = distances[offsets][order]
    return out, out_d


def _unit_scaled(vector: np.ndarray) -> np.ndarray:
    wide = vector.astype(np.float64)
    return (wide * (1.0 / np.sqrt(np.sum(wide * wide)))).astype(np.float32)


def _oracle_levels(vector: np.ndarray, centre: np.ndarray, unit: bool) -> np.ndarray:
    """The query's 4-bit values: centred, scaled so the largest |value| is 7, rounded half up."""
    x = _unit_scaled(vector) if unit else vector.astype(np.float32)
    centred = (x - centre).astype(np.float32)
    top = float(np.abs(centred).max())
    inverse = np.float32(binary.QUERY_LEVEL / top) if top > 0 else np.float32(1.0)
    return np.floor(centred * inverse + np.float32(0.5)).astype(np.int64)


def _oracle_scores(codes: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The query's values summed over each row's set bits, by unpacking the codes."""
    bits = np.unpackbits(codes.view(np.uint8), axis=1, bitorder="little")[:, : levels.shape[0]]
    return bits.astype(np.int64) @ levels


@pytest.mark.parametrize("dim", [1, 63, 64, 65, 384, 1536])
def test_packed_signs_equal_numpy_packbits(dim):
    rng = np.random.default_rng(dim)
    vectors = rng.standard_normal((50, dim)).astype(np.float32)
    vectors[3] = 0.0  # on the centre: no bit set
    centre = rng.standard_normal(dim).astype(np.float32) * 0.1
    centre[:] = np.where(np.arange(dim) % 7 == 0, 0.0, centre)
    codes = binary.pack_signs(vectors, centre)
    assert codes.dtype == np.uint64 and codes.shape == (50, binary.code_words(dim))
    np.testing.assert_array_equal(codes, _oracle_codes(vectors, centre))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.integers(0, 2**31 - 1), st.booleans())
def test_encoded_query_planes_hold_its_rounded_values(dim, seed, unit):
    """Decoding the four bit planes (two's complement, plane 3 weighs -8) gives the oracle's values;
    the batch kernel (rows already scaled) agrees with the one-query kernel."""
    rng = np.random.default_rng(seed)
    vectors = (rng.standard_normal((5, dim)) * 3).astype(np.float32)
    centre = (rng.standard_normal(dim) * 0.1).astype(np.float32)
    if unit:
        centre *= np.float32(0.1)
    weights = np.array([1, 2, 4, -8], dtype=np.int64)
    batch_input = np.stack([_unit_scaled(v) for v in vectors]) if unit else vectors
    batch = binary.query_planes_batch(batch_input, centre)
    for i in range(5):
        planes = binary.query_planes(vectors[i], centre, unit)
        assert planes.shape == (binary.QUERY_BITS, binary.code_words(dim))
        bits = np.unpackbits(planes.view(np.uint8), axis=1, bitorder="little")[:, :dim].astype(np.int64)
        want = _oracle_levels(vectors[i], centre, unit)
        np.testing.assert_array_equal(weights @ bits, want)
        assert np.abs(want).max() <= binary.QUERY_LEVEL
        assert not np.unpackbits(planes.view(np.uint8), axis=1, bitorder="little")[:, dim:].any()  # padding
        np.testing.assert_array_equal(batch[i], planes)


@pytest.mark.parametrize("allowed", ["all", "some", "none"])
def test_estimate_topk_equals_oracle_with_key_ties(allowed):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((500, 70)).astype(np.float32)
    centre = np.zeros(70, dtype=np.float32)
    codes = binary.pack_signs(vectors, centre)
    keys = rng.permutation(5000)[:500].astype(np.int64)  # integer estimates tie often: the key must break them
    queries = rng.standard_normal((6, 70)).astype(np.float32)
    planes = binary.query_planes_batch(queries, centre)
    offsets = {
        "all": np.arange(500, dtype=np.int64),
        "some": np.flatnonzero(rng.random(500) < 0.2).astype(np.int64),
        "none": np.empty(0, dtype=np.int64),
    }[allowed]
    batch_o, batch_d = binary.estimate_topk_batch(codes, planes, offsets, keys, 25)
    for i in range(queries.shape[0]):
        estimates = -_oracle_scores(codes, _oracle_levels(queries[i], centre, False)).astype(np.float32)
        want_o, want_d = _oracle_topk(estimates, offsets, keys, 25)
        got_o, got_d = binary.estimate_topk(codes, planes[i], offsets, keys, 25)
        np.testing.assert_array_equal(got_o, want_o)
        np.testing.assert_array_equal(got_d, want_d)
        np.testing.assert_array_equal(batch_o[i], want_o)
        np.testing.assert_array_equal(batch_d[i], want_d)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 120), st.sampled_from([1.0, 0.3, 0.02]))
def test_estimate_candidates_are_the_nearest_rows_ties_in_offset_order(seed, count, fraction):
    """The candidate set equals the first ``count`` rows by (estimate, offset), per the oracle."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((300, 20)).astype(np.float32)  # 20 dimensions: many ties
    centre = np.zeros(20, dtype=np.float32)
    codes = binary.pack_signs(vectors, centre)
    query = rng.standard_normal(20).astype(np.float32)
    offsets = np.flatnonzero(rng.random(300) < fraction).astype(np.int64)
    got = binary.estimate_candidates(codes, binary.query_planes(query, centre, False), offsets, count)
    estimates = -_oracle_scores(codes, _oracle_levels(query, centre, False))
    want, _ = _oracle_topk(estimates.astype(np.float32), offsets, np.arange(300), count)  # offset breaks ties
    assert got.shape == (count,)
    assert sorted(got[got >= 0].tolist()) == sorted(want[want >= 0].tolist())
    assert (got < 0).sum() == max(0, count - offsets.shape[0])


def _pq_data(n=600, dim=24, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_kmeans_objective_never_increases_and_is_seed_deterministic():
    data = _pq_data(800, 6)
    centroids, objective = pq.kmeans(data, 32, 12, 5)
    assert np.all(np.diff(objective) <= 1e-6 * objective[0])
    assert objective[-1] < objective[0]
    again, objective_again = pq.kmeans(data, 32, 12, 5)
    np.testing.assert_array_equal(centroids, again)
    np.testing.assert_array_equal(objective, objective_again)
    other, _ = pq.kmeans(data, 32, 12, 6)
    assert not np.array_equal(centroids, other)
    # the objective is what it says: the squared distances to the nearest centroid
    d = ((data[:, None, :].astype(np.float64) - centroids[None].astype(np.float64)) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(objective[-1], d.sum(), rtol=1e-4)


def test_kmeans_with_duplicate_points_and_more_clusters_than_distinct_points():
    data = np.repeat(np.eye(3, dtype=np.float32), 20, axis=0)  # three distinct points, 60 rows
    centroids, objective = pq.kmeans(data, 8, 5, 1)
    assert np.isfinite(centroids).all()
    assert objective[-1] == pytest.approx(0.0, abs=1e-9)


def test_encode_and_decode_are_exact_on_centroid_built_data():
    rng = np.random.default_rng(3)
    m, ksub, dsub = 4, 16, 3
    codebooks = rng.standard_normal((m, ksub, dsub)).astype(np.float32)
    want_codes = rng.integers(0, ksub, (200, m)).astype(np.uint8)
    vectors = np.concatenate([codebooks[s, want_codes[:, s]] for s in range(m)], axis=1)
    codes = pq.encode(vectors, codebooks)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(pq.decode(codes, codebooks), vectors)


@pytest.mark.parametrize("dsub", [1, 3, 4, 6, 8])  # the kernel takes dimensions four at a time, then one
def test_encode_picks_the_nearest_centroid_per_subspace(dsub):
    data = _pq_data(300, 3 * dsub, seed=4)
    codebooks = pq.train_codebooks(data, 3, 16, 8, 0)
    codes = pq.encode(data, codebooks)
    for s in range(3):
        sub = data[:, s * dsub : (s + 1) * dsub].astype(np.float64)
        d = ((sub[:, None, :] - codebooks[s][None].astype(np.float64)) ** 2).sum(-1)
        np.testing.assert_array_equal(codes[:, s], d.argmin(1))


@pytest.mark.parametrize("metric", [pq.L2, pq.IP])
def test_adc_equals_explicit_loops(metric):
    data = _pq_data(400, 16, seed=5)
    codebooks = pq.train_codebooks(data, 4, 32, 6, 1)
    codes = pq.encode(data, codebooks)
    keys = np.random.default_rng(2).permutation(400).astype(np.int64)
    queries = _pq_data(5, 16, seed=6)
    offsets = np.flatnonzero(np.random.default_rng(7).random(400) < 0.5).astype(np.int64)
    batch_o, batch_d = pq.adc_topk_batch(codes, queries, codebooks, metric, offsets, keys, 15)
    for i, query in enumerate(queries):
        table = pq.distance_table(query, codebooks, metric)
        for s in range(4):  # the table, entry by entry
            for c in range(32):
                sub, centre = query[s * 4 : (s + 1) * 4], codebooks[s, c]
                want = ((sub - centre) ** 2).sum() if metric == pq.L2 else -(sub * centre).sum()
                assert table[s, c] == pytest.approx(want, rel=1e-5, abs=1e-5)
        estimates = np.array([sum(table[s, codes[r, s]] for s in range(4)) for r in range(400)], dtype=np.float32)
        # the estimate of a code equals the distance to its decoded vector
        decoded = pq.decode(codes, codebooks)
        exact = ((decoded - query) ** 2).sum(1) if metric == pq.L2 else -(decoded @ query)
        np.testing.assert_allclose(estimates, exact, rtol=1e-4, atol=1e-4)
        got_o, got_d = pq.adc_topk(codes, table, offsets, keys, 15)
        want_o, _ = _oracle_topk(estimates, offsets, keys, 15)
        np.testing.assert_array_equal(got_o, want_o)
        np.testing.assert_allclose(got_d, estimates[got_o], rtol=1e-6)
        np.testing.assert_array_equal(batch_o[i], got_o)
        np.testing.assert_array_equal(batch_d[i], got_d)
