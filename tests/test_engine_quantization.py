"""Quantised collections: codes built per segment, planned, rescored, persisted, and refused when misused."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from tests.oracles import exact_search
from vecstore.errors import InvalidArgument

N = 6000
DIM = 128


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, DIM)).astype(np.float32) * 2
    vectors = (centres[rng.integers(0, 30, N)] + rng.standard_normal((N, DIM))).astype(np.float32)
    queries = (centres[rng.integers(0, 30, 40)] + rng.standard_normal((40, DIM))).astype(np.float32)
    attrs = {"t": rng.permutation(N).astype(np.int64), "kind": rng.choice(["a", "b", "c", "d"], N).tolist()}
    return vectors, queries, attrs


@pytest.fixture
def quantized_priced_in(monkeypatch):
    """On these small segments a plain scan is rightly cheapest: price scanned rows and graph distances
    as on large segments so the planner takes the codes, as it does at scale."""
    from vecstore.engine import planner

    monkeypatch.setattr(planner, "EXACT_NS_PER_ROW_DIM", 50.0)
    monkeypatch.setattr(planner, "TRAVERSE_NS_PER_DISTANCE", 5_000.0)
    monkeypatch.setattr(planner, "TWO_HOP_NS_PER_DISTANCE", 5_000.0)


def _collection(db, name: str, quantization: dict, metric: str = "cosine"):
    vectors, queries, attrs = _data()
    col = db.create_collection(
        name, dim=DIM, metric=metric, attributes={"t": "int64", "kind": "string"}, window="t",
        quantization=quantization, hnsw={"m": 8, "ef_construction": 40, "window_tree_beta": 0},
    )  # fmt: skip
    col.upsert(np.arange(N), vectors, attrs)
    col.seal()
    assert col.wait_for_indexes(timeout=300)
    return col, vectors, queries, attrs


SPECS = {
    "binary": {"kind": "binary", "oversampling": 20},
    "pq": {"kind": "pq", "pq_m": 32, "oversampling": 20},
    "sq8": {"kind": "sq8"},
}


@pytest.mark.parametrize("kind", ["binary", "pq", "sq8"])
def test_filtered_quantized_search_passes_the_subset_test(tmp_path, quantized_priced_in, kind):
    """Every filter: results only from allowed live rows, recall@10 >= 0.95 against exact search over
    only those rows, and the plan says the codes ran."""
    with vecstore.connect(tmp_path / "db") as db:
        col, vectors, queries, attrs = _collection(db, kind, SPECS[kind])
        col.delete(np.arange(0, N, 10))
        live = np.ones(N, dtype=bool)
        live[::10] = False
        kinds = np.array(attrs["kind"])
        for text, allowed in [
            (None, live),
            ("kind = 'b'", live & (kinds == "b")),
            ("t between 1000 and 2199", live & (attrs["t"] >= 1000) & (attrs["t"] <= 2199)),
            ("t < 3000 and kind in ('a', 'c')", live & (attrs["t"] < 3000) & np.isin(kinds, ["a", "c"])),
        ]:
            result = col.search(queries, k=10, filter=text, explain=True)
            assert result.plan[0]["segments"][0]["strategy"] == "quantized_scan", result.plan[0]
            assert f"{kind} codes of" in result.plan[0]["segments"][0]["reason"]
            rows = np.flatnonzero(allowed)
            want, _ = exact_search("cosine", queries, vectors[rows], rows.astype(np.int64), 10)
            got = result.ids
            assert np.isin(got[got >= 0], rows).all(), text
            assert ((got >= 0).sum(axis=1) == 10).all()
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
            assert recall >= 0.95, (kind, text, recall)
            singles = np.stack([col.search(q, k=10, filter=text).ids[0] for q in queries[:5]])
            np.testing.assert_array_equal(np.isin(singles, rows) | (singles < 0), True)
        assert col.stats()["quantized_scan"] > 0


def test_rescoring_with_every_row_a_candidate_is_exact(tmp_path, quantized_priced_in):
    with vecstore.connect(tmp_path / "db") as db:
        col, vectors, queries, _ = _collection(db, "b", {"kind": "binary"}, metric="l2")
        got = col.search(queries[:8], k=10, filter="t < 300", oversampling=40)
        rows = np.flatnonzero(_data()[2]["t"] < 300)
        want, want_d = exact_search("l2", queries[:8], vectors[rows], rows.astype(np.int64), 10)
        np.testing.assert_array_equal(got.ids, want)
        np.testing.assert_allclose(got.distances, want_d, rtol=1e-4, atol=1e-3)


def test_pq_without_rescoring_returns_its_estimates_and_says_so(tmp_path, quantized_priced_in):
    with vecstore.connect(tmp_path / "db") as db:
        col, _, queries, _ = _collection(db, "p", SPECS["pq"])
        result = col.search(queries[:4], k=10, rescore=False, explain=True)
        segment = result.plan[0]["segments"][0]
        assert segment["strategy"] == "quantized_scan" and "not rescored" in segment["reason"]
        exact = col.search(queries[:4], k=10, exact=True)
        assert not np.array_equal(result.distances, exact.distances)  # estimates, not distances
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(result.ids, exact.ids, strict=True)])
        assert overlap >= 0.3  # isotropic noise is PQ's worst case; chance would be 10 / 6000


@pytest.mark.parametrize(
    ("kind", "code_bytes"),
    [("binary", N * 16 + DIM * 4), ("sq8", N * DIM + 2 * DIM * 4)],  # words a row and the centre; bytes and ranges
)
def test_codes_are_described_persisted_and_rebuilt_when_damaged(tmp_path, kind, code_bytes):
    path = tmp_path / "db"
    with vecstore.connect(path) as db:
        col, *_ = _collection(db, "b", SPECS[kind])
        segment = col.describe()["segments"][0]
        assert segment["codes"] == f"ready ({kind})"
        assert segment["code_bytes"] == code_bytes
        assert col.describe()["memory"]["code_bytes"] == segment["code_bytes"]
        assert col.stats()["codes_built"] == 1
        before = col.search(_data()[1], k=10, oversampling=3).ids
        codes_file = next((path / "collections" / "b" / "segments").glob("*.codes"))
    with vecstore.connect(path) as db:
        col = db.collection("b")
        assert col.stats().get("codes_built", 0) == 0  # mapped, not rebuilt
        np.testing.assert_array_equal(col.search(_data()[1], k=10, oversampling=3).ids, before)
    data = bytearray(codes_file.read_bytes())
    data[-20] ^= 0xFF
    codes_file.write_bytes(bytes(data))
    with vecstore.connect(path) as db:
        col = db.collection("b")
        assert col.wait_for_indexes(timeout=300)
        assert col.stats()["codes_rebuilt"] == 1 and col.stats()["codes_built"] == 1
        np.testing.assert_array_equal(col.search(_data()[1], k=10, oversampling=3).ids, before)
        assert not codes_file.exists()


def test_segments_too_small_for_codes_are_scanned_exactly(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("s", dim=4, metric="l2", quantization={"kind": "pq", "pq_m": 2})
        col.upsert(np.arange(100), np.random.default_rng(0).standard_normal((100, 4)))
        col.seal()
        assert col.wait_for_indexes(timeout=60)
        assert col.describe()["segments"][0]["codes"] == "too_small"
        assert col.search(np.zeros(4), k=5, explain=True).strategy == "exact_scan"


@pytest.mark.parametrize(
    ("quantization", "message"),
    [
        ({"kind": "opq"}, "kind 'binary', 'sq8' or 'pq'"),
        ({"kind": "sq8", "pq_m": 4}, "unknown sq8 quantization parameter 'pq_m'"),
        ({"kind": "binary", "pq_m": 4}, "unknown binary quantization parameter 'pq_m'"),
        ({"kind": "pq", "pq_m": 5}, "pq_m must be a positive integer that divides dim=48"),
        ({"kind": "pq", "pq_nbits": 4}, "4-bit codes are not supported yet"),
        ({"kind": "binary", "oversampling": 0.5}, "oversampling must be a number between 1 and 100"),
        ({"kind": "binary", "oversampling": float("nan")}, "oversampling must be a number between 1 and 100"),
        ("binary", "kind 'binary', 'sq8' or 'pq'"),
    ],
)
def test_bad_quantization_settings_are_refused_and_create_nothing(tmp_path, quantization, message):
    with vecstore.connect(tmp_path / "db") as db:
        with pytest.raises(InvalidArgument, match=message):
            db.create_collection("q", dim=48, metric="l2", quantization=quantization)
        assert db.list_collections() == []


def test_search_settings_that_cannot_apply_are_refused(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        plain = db.create_collection("plain", dim=4, metric="l2")
        plain.upsert([1], [[1, 2, 3, 4]])
        with pytest.raises(InvalidArgument, match="created without quantization"):
            plain.search([1, 2, 3, 4], oversampling=4)
        with pytest.raises(InvalidArgument, match="created without quantization"):
            plain.search([1, 2, 3, 4], rescore=False)
        binary = db.create_collection("bin", dim=4, metric="l2", quantization={"kind": "binary"})
        binary.upsert([1], [[1, 2, 3, 4]])
        with pytest.raises(InvalidArgument, match="rescore=False needs PQ codes"):
            binary.search([1, 2, 3, 4], rescore=False)
        with pytest.raises(InvalidArgument, match="oversampling must be a number between 1 and 100"):
            binary.search([1, 2, 3, 4], oversampling=1000)
        with pytest.raises(InvalidArgument, match="rescore must be True or False"):
            binary.search([1, 2, 3, 4], rescore="no")
        assert binary.search([1, 2, 3, 4], k=1).ids.tolist() == [[1]]  # still serving
        scalar = db.create_collection("sq", dim=4, metric="l2", quantization={"kind": "sq8"})
        scalar.upsert([1], [[1, 2, 3, 4]])
        with pytest.raises(InvalidArgument, match="sq8 searches always rescore"):
            scalar.search([1, 2, 3, 4], rescore=False)
        assert scalar.search([1, 2, 3, 4], k=1).ids.tolist() == [[1]]


@pytest.fixture
def code_graphs_priced_in(monkeypatch):
    """Price scans out and float distances up, so the planner walks the graph over codes (as it does on
    high-dimensional segments, where a float distance costs several code distances)."""
    from vecstore.engine import planner

    monkeypatch.setattr(planner, "EXACT_NS_PER_ROW_DIM", 50.0)
    monkeypatch.setattr(planner, "QUANTIZED_CALL_NS", 1e9)
    monkeypatch.setattr(planner, "float_distance_scale", lambda dim: 100.0)


@pytest.mark.parametrize("kind", ["binary", "pq", "sq8"])
def test_graph_walked_over_codes_passes_the_subset_test(tmp_path, monkeypatch, code_graphs_priced_in, kind):
    """Unfiltered, masked and two-hop walks over codes: only allowed live rows, recall@10 >= 0.95
    against exact search over those rows, and k results."""
    # two-hop walks of this m=8 graph at 9-16% of its rows, below the default floor (18.75% at m=8)
    from vecstore.engine import planner

    monkeypatch.setattr(planner, "TWO_HOP_MIN_REACHABLE", 30.0)
    with vecstore.connect(tmp_path / "db") as db:
        col, vectors, queries, attrs = _collection(db, kind, SPECS[kind])
        col.delete(np.arange(0, N, 10))
        live = np.ones(N, dtype=bool)
        live[::10] = False
        kinds = np.array(attrs["kind"])
        # k x oversampling candidates raise the walk's ef; sq8 rescores all of the default ef's results
        wide = "(ef 64), 64 candidates" if kind == "sq8" else "(ef 200), 200 candidates"
        for text, allowed, walk in [
            (None, live, wide),
            ("kind in ('a', 'b', 'c')", live & np.isin(kinds, ["a", "b", "c"]), wide),
            ("kind = 'b' and t < 4200", live & (kinds == "b") & (attrs["t"] < 4200), "through two-hop edges"),
            ("t < 1000", live & (attrs["t"] < 1000), "through two-hop edges"),
        ]:
            result = col.search(queries, k=10, filter=text, explain=True)
            segment = result.plan[0]["segments"][0]
            assert segment["strategy"] == "quantized_hnsw" and walk in segment["reason"], segment
            rows = np.flatnonzero(allowed)
            want, _ = exact_search("cosine", queries, vectors[rows], rows.astype(np.int64), 10)
            got = result.ids
            assert np.isin(got[got >= 0], rows).all(), text
            assert ((got >= 0).sum(axis=1) == 10).all()
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
            assert recall >= 0.95, (kind, text, recall)
            single = col.search(queries[0], k=10, filter=text).ids[0]  # the one-query kernel
            assert np.isin(single, rows).all()
        assert col.stats()["quantized_hnsw"] > 0


def test_pq_graph_walk_without_rescoring_returns_estimates(tmp_path, code_graphs_priced_in):
    with vecstore.connect(tmp_path / "db") as db:
        col, _, queries, _ = _collection(db, "p", SPECS["pq"])
        result = col.search(queries[:4], k=10, rescore=False, explain=True)
        segment = result.plan[0]["segments"][0]
        assert segment["strategy"] == "quantized_hnsw" and "not rescored" in segment["reason"]
        assert (np.diff(result.distances, axis=1) >= 0).all()  # ascending estimates
        rescored = col.search(queries[:4], k=10)
        assert not np.array_equal(result.distances, rescored.distances)


def test_close_cancels_a_codes_build_in_progress(tmp_path, monkeypatch):
    """A codes build polls should_stop: closing the database ends it and leaves no codes file."""
    from vecstore.index.quantization import BinaryQuantizer

    started = []
    real_fit = BinaryQuantizer.fit

    def slow_fit(vectors, metric, should_stop=None):
        started.append(True)
        while not should_stop():  # a build that only ends when cancelled
            pass
        return real_fit(vectors, metric, should_stop)

    monkeypatch.setattr(BinaryQuantizer, "fit", staticmethod(slow_fit))
    vectors, _, _ = _data()
    db = vecstore.connect(tmp_path / "db")
    col = db.create_collection("b", dim=DIM, quantization={"kind": "binary"}, hnsw={"m": 8, "ef_construction": 40})
    col.upsert(np.arange(N), vectors)
    col.seal()
    assert not col.wait_for_indexes(timeout=0.5)
    assert started and col.describe()["segments"][0]["codes"] == "building"
    db.close()  # returns: the build saw the stop request and raised BuildCancelled
    assert list((tmp_path / "db").glob("collections/b/segments/*.codes")) == []


def test_sq8_walks_are_priced_below_float_walks_only_where_codes_are_cheaper():
    from vecstore.engine import planner

    assert planner.code_graph_scale("sq8", 784) < planner.float_distance_scale(784)
    assert planner.code_graph_scale("sq8", 384) < planner.float_distance_scale(384)
    assert planner.code_graph_scale("sq8", 64) == planner.float_distance_scale(64)  # small rows: no saving
    # an sq8 walk rescores every one of its ef results; binary and PQ walks their k x oversampling
    assert planner.quantized_graph_option(20_000, 20_000, 40, 16, "sq8", 784, 784, 10, 1.0, True).args == (40, 40)
    assert planner.quantized_graph_option(20_000, 20_000, 10, 16, "sq8", 784, 784, 10, 3.0, True).args == (30, 30)
    assert planner.quantized_graph_option(20_000, 20_000, 40, 16, "pq", 784, 98, 10, 3.0, True).args == (40, 30)
    walk = planner.quantized_graph_option(20_000, 20_000, 40, 16, "sq8", 784, 784, 10, 1.0, True)
    floats = planner.masked_graph_option(20_000, 20_000, 40, 16, planner.float_distance_scale(784))
    assert walk.cost_ns < floats[1]


def test_scattered_rows_of_wide_vectors_are_priced_by_bandwidth():
    """Up to ``HIGH_DIM_FROM`` dimensions a run of rows and rows spread over the segment scan at one
    price; past it the spread rows cost more, and with sq8 codes a category's 263 rows of 1536-d
    vectors are scanned over their codes where a window's 263 rows are scanned exactly."""
    from vecstore.engine import planner

    assert planner.exact_cost(300, 784, scattered=True) == planner.exact_cost(300, 784)
    assert planner.exact_cost(300, 1536, scattered=True) > 3 * planner.exact_cost(300, 1536)

    def strategy(found_by: str) -> str:
        codes = planner.quantized_option(263, "sq8", 1536, 1536, 10, 1.0, True)
        plan, _ = planner.plan_segment("s", 263, 9_900, found_by, exact_requested=False, graph_rows=9_900,
                                       ef=10, m=16, dim=1536, quantized=codes)  # fmt: skip
        return plan.strategy

    assert strategy("payload_index") == strategy("evaluated") == planner.QUANTIZED_SCAN
    assert strategy("window_slice") == planner.EXACT_SCAN
