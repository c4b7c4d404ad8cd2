"""Guarantees of filtered search on every path: k results whenever k live rows match, never a row that
fails the filter or was deleted, empty results when nothing matches; windows across segment boundaries."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from tests.oracles import exact_search
from tests.test_engine_graphs import clustered, recall
from vecstore.engine import planner

DIM = 12
HNSW = {"m": 16, "ef_construction": 100, "ef": 64, "window_tree_leaf_rows": 1000}


@pytest.fixture(params=["priced", "graphs_forced"])
def pricing(request, monkeypatch):
    """As priced, and with scans priced so high that every graph strategy that applies is taken."""
    if request.param == "graphs_forced":
        monkeypatch.setattr(planner, "EXACT_NS_PER_ROW_DIM", 1e5)
    return request.param


def _collection(db, rows: int, seal_rows: int):
    col = db.create_collection(
        "c",
        dim=DIM,
        metric="l2",
        attributes={"t": "int64", "g": "string"},
        window="t",
        hnsw=HNSW,
        seal_rows=seal_rows,
        max_segment_rows=1,
        compact_dead_fraction=1.0,
    )  # fmt: skip  (deleted rows stay in their graphs)
    vectors = clustered(rows, seed=31, dim=DIM)
    ids = np.arange(rows, dtype=np.int64) + 1000
    ts = np.arange(rows)  # segments hold consecutive runs of t: windows can straddle them
    groups = np.array(["a", "b", "c", "d"])[np.arange(rows) % 4]
    for start in range(0, rows, seal_rows):
        part = slice(start, start + seal_rows)
        col.upsert(ids[part], vectors[part], {"t": ts[part], "g": groups[part]})
    assert col.wait_for_indexes(timeout=300)
    return col, ids, vectors, ts, groups


def _check(col, queries, text, allowed, ids, vectors, k, floor):
    res = col.search(queries, k=k, filter=text, explain=True)
    want, _ = exact_search("l2", queries, vectors[allowed], ids[allowed], k)
    expected = min(k, int(allowed.sum()))
    assert ((res.ids >= 0).sum(axis=1) == expected).all(), (text, res.plan[0])  # k whenever k match
    assert np.isin(res.ids[res.ids >= 0], ids[allowed]).all(), text  # nothing outside the filter or deleted
    if expected:
        assert recall(res.ids, want) >= floor, (text, res.plan[0])
    return res


def test_k_results_under_heavy_deletes_and_tiny_windows(tmp_path, pricing):
    with vecstore.connect(tmp_path / "db") as db:
        col, ids, vectors, ts, groups = _collection(db, 8000, 8000)
        live = np.random.default_rng(32).random(ids.shape[0]) < 0.1  # 90% deleted
        col.delete(ids[~live])
        queries = clustered(15, seed=33, dim=DIM)
        for text, allowed in [
            (None, live),
            ("g = 'b'", live & (groups == "b")),
            ("t >= 4000 and t < 4003", live & (ts >= 4000) & (ts < 4003)),  # 0-3 live rows
            ("t >= 100 and t < 1100", live & (ts >= 100) & (ts < 1100)),
            ("t >= 1990 and t < 6010 and g != 'a'", live & (ts >= 1990) & (ts < 6010) & (groups != "a")),
        ]:
            _check(col, queries, text, allowed, ids, vectors, 10, 0.95)
        if pricing == "graphs_forced":
            assert sum(col.stats().get(s, 0) for s in planner.GRAPH_STRATEGIES) > 0
        empty = col.search(queries, k=10, filter="t > 100000", explain=True)
        assert empty.strategy == planner.EMPTY and (empty.ids == -1).all() and np.isinf(empty.distances).all()


def test_windows_across_segment_boundaries(tmp_path, pricing):
    with vecstore.connect(tmp_path / "db") as db:
        col, ids, vectors, ts, _ = _collection(db, 13_500, 4500)
        segments = col.describe()["segments"]
        assert len(segments) == 3
        assert all(s["graph"] == "ready" and s["window_tree"].startswith("ready") for s in segments)
        queries = clustered(15, seed=34, dim=DIM)
        windows = [(4490, 4510), (3000, 10_000), (0, 13_500), (8999, 9001), (1000, 12_000), (4400, 9100), (1000, 1100)]
        for low, high in windows:
            allowed = (ts >= low) & (ts < high)
            res = _check(col, queries, f"t >= {low} and t < {high}", allowed, ids, vectors, 10, 0.95)
            if pricing == "priced" and high - low <= 20:
                assert res.strategy == planner.EXACT_SCAN  # a few rows: scanned, exactly
        if pricing == "graphs_forced":
            stats = col.stats()
            assert stats.get(planner.WINDOW_POSTFILTER, 0) > 0 and stats.get(planner.HNSW, 0) > 0, stats
