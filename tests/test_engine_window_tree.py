"""The window tree inside the engine: built in the background after a sorted segment's graph,
persisted, reported, and every tree strategy passing the subset test against exact search over the
window (recall floor 0.95, never a row outside it or deleted)."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from tests.oracles import exact_search
from tests.test_engine_graphs import clustered, recall
from vecstore.engine import planner, search
from vecstore.engine.allowed import allowed_rows
from vecstore.engine.graphs import TREE_SUFFIX
from vecstore.engine.window_search import run_tree_option, tree_options
from vecstore.filters import parse_filter

ROWS, DIM = 12_000, 16
HNSW = {"m": 12, "ef_construction": 80, "ef": 64, "window_tree_beta": 4, "window_tree_leaf_rows": 700}

pytestmark = pytest.mark.usefixtures("graphs_priced_in")  # graph paths on small test collections


def windowed(db, rows: int = ROWS):
    col = db.create_collection("w", dim=DIM, metric="l2", attributes={"t": "int64", "g": "int64"}, window="t",
                               hnsw=HNSW)  # fmt: skip
    vectors = clustered(rows, seed=21, dim=DIM)
    ts = np.random.default_rng(22).permutation(rows)  # the window order differs from the insertion order
    ids = np.arange(rows, dtype=np.int64) * 5 + 1
    col.upsert(ids, vectors, {"t": ts, "g": np.arange(rows) % 10})
    col.seal()
    assert col.wait_for_indexes(timeout=300)
    return col, ids, vectors, ts


def tree_files(path) -> list[str]:
    return sorted(p.name for p in path.glob("collections/*/segments/*") if p.name.endswith(TREE_SUFFIX))


def test_tree_is_built_reported_persisted_and_rebuilt_when_damaged(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col, *_ = windowed(db)
        (segment,) = col.describe()["segments"]
        # buckets of 3000 and 750 rows, and by default straddle buckets of level 1 (six of 4500 rows, one
        # every 1500, and three over neighbouring buckets)
        assert segment["window_tree"] == "ready (2 levels, beta 4, leaf_rows 700, 9 straddle buckets)"
        assert segment["window_tree_bytes"] > 0
        assert col.describe()["memory"]["window_tree_bytes"] == segment["window_tree_bytes"]
        assert col.stats()["window_trees_built"] == 1
        seconds = col.describe()["build_seconds"]  # the tree's build time, beside the graph's
        assert set(seconds) == {"graph", "tree"} and seconds["graph"] > 0 and seconds["tree"] > 0
    (tree_file,) = tree_files(tmp_path / "db")
    with vecstore.connect(tmp_path / "db") as db:
        col = db.collection("w")
        assert col.describe()["segments"][0]["window_tree"].startswith("ready")  # mapped, not rebuilt
        assert "window_trees_built" not in col.stats()
        assert col.describe()["build_seconds"] == {}  # nothing built by this process
    path = next((tmp_path / "db").glob(f"collections/w/segments/{tree_file}"))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with vecstore.connect(tmp_path / "db") as db:
        col = db.collection("w")
        assert col.stats()["window_trees_rebuilt"] == 1
        assert col.wait_for_indexes(timeout=300)
        assert col.describe()["segments"][0]["window_tree"].startswith("ready")
        assert tree_files(tmp_path / "db") != [tree_file] and len(tree_files(tmp_path / "db")) == 1


def test_no_tree_when_turned_off_or_without_a_window(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("w", dim=4, metric="l2", attributes={"t": "int64"}, window="t",
                                   hnsw={"window_tree_beta": 0})  # fmt: skip
        col.upsert(np.arange(5000), np.random.default_rng(0).standard_normal((5000, 4)), {"t": np.arange(5000)})
        col.seal()
        assert col.wait_for_indexes(timeout=120)
        assert col.describe()["segments"][0]["window_tree"] == "none"
        for bad in ({"window_tree_beta": 1}, {"window_tree_leaf_rows": 10}, {"window_tree_beta": True}):
            with pytest.raises(vecstore.InvalidArgument, match="window_tree"):
                db.create_collection("x", dim=4, hnsw=bad)


@pytest.fixture(scope="module")
def sorted_collection(tmp_path_factory):
    db = vecstore.connect(tmp_path_factory.mktemp("wt") / "db")
    col, ids, vectors, ts = windowed(db)
    deleted = ids[np.random.default_rng(23).random(ROWS) < 0.1]
    col.delete(deleted)
    yield col, ids, vectors, ts, deleted
    db.close()


WINDOWS = [(100, 700), (2900, 3100), (2990, 6020), (5, 11990), (7400, 8600), (1490, 1510), (2000, 4500)]


@pytest.mark.parametrize(("low", "high"), WINDOWS)
def test_every_tree_strategy_passes_the_subset_test(sorted_collection, low, high):
    col, ids, vectors, ts, deleted = sorted_collection
    (view,) = col._snapshot()
    node = parse_filter(f"t >= {low} and t < {high}")
    allowed = allowed_rows(view, node)
    options = tree_options(view, allowed, 64, HNSW["m"], prune=False)
    assert {o.strategy for o in options} >= {planner.WINDOW_COVER, planner.WINDOW_THREE_SPLIT} or high - low < 1000
    inside = (ts >= low) & (ts < high) & ~np.isin(ids, deleted)
    queries = clustered(30, seed=24, dim=DIM)
    want, _ = exact_search("l2", queries, vectors[inside], ids[inside], 10)
    for option in options:
        hits = run_tree_option(view, 0, allowed, option, queries, 10, 64, 0)
        got = hits.ids
        assert np.isin(got[got >= 0], ids[inside]).all(), option.strategy  # never outside, never deleted
        assert np.all(np.diff(np.where(got >= 0, hits.distances, np.inf), axis=1) >= 0)
        assert recall(got, want) >= 0.95, (option.strategy, option.reason)


def test_searches_in_several_pieces_pay_their_python_work_once_per_plan(sorted_collection, monkeypatch):
    col, *_ = sorted_collection
    (view,) = col._snapshot()
    allowed = allowed_rows(view, parse_filter("t >= 2990 and t < 6020"))
    free = {o.strategy: o.cost_ns for o in tree_options(view, allowed, 64, HNSW["m"], prune=False)}
    paid = {o.strategy: o.cost_ns for o in tree_options(view, allowed, 64, HNSW["m"], prune=False, split_ns=5e4)}
    assert free.keys() == paid.keys() >= {planner.WINDOW_COVER, planner.WINDOW_THREE_SPLIT}
    for strategy, cost in free.items():
        assert paid[strategy] == cost + (5e4 if strategy in (planner.WINDOW_COVER, planner.WINDOW_THREE_SPLIT) else 0)
    # pruned: no option of several pieces is priced once the root walk is cheaper than their floor
    pruned = tree_options(view, allowed, 64, HNSW["m"], split_ns=1e9)
    assert {o.strategy for o in pruned} <= {planner.WINDOW_POSTFILTER}
    # the planner shares the work among the queries of one plan: a batch of 20 pays 1/20 a query
    seen: list[float] = []
    real = search.tree_options
    monkeypatch.setattr(search, "tree_options", lambda *a, **kw: seen.append(kw["split_ns"]) or real(*a, **kw))
    queries = clustered(20, seed=26, dim=DIM)
    col.search(queries, k=10, filter="t >= 2990 and t < 6020", explain=True)
    col.search(queries[0], k=10, filter="t >= 2990 and t < 6020", ef=64)
    assert seen == [planner.TREE_SPLIT_CALL_NS / 20, planner.TREE_SPLIT_CALL_NS]


def test_the_planner_takes_a_tree_strategy_where_it_is_cheapest(sorted_collection, monkeypatch):
    col, ids, vectors, ts, deleted = sorted_collection
    queries = clustered(20, seed=25, dim=DIM)
    inside = (ts >= 2990) & (ts < 6020) & ~np.isin(ids, deleted)  # 25% straddling a top-level boundary
    res = col.search(queries, k=10, filter="t >= 2990 and t < 6020", explain=True)
    plan = res.plan[0]["segments"][0]
    assert plan["strategy"] in (planner.WINDOW_COVER, planner.WINDOW_THREE_SPLIT, planner.WINDOW_POSTFILTER), plan
    assert plan["estimated_us"] <= min(plan["alternatives_us"].values())
    want, _ = exact_search("l2", queries, vectors[inside], ids[inside], 10)
    assert recall(res.ids, want) >= 0.95 and np.isin(res.ids[res.ids >= 0], ids[inside]).all()
    assert col.stats()[plan["strategy"]] >= 20
    # a fifth of the rows astride the middle: the straddle bucket starting half a level-1 bucket before
    # it holds it at 2.7 times the share the whole segment does; postfiltering there beats every other way
    res = col.search(queries, k=10, filter="t >= 4500 and t < 7400", explain=True)
    plan = res.plan[0]["segments"][0]
    assert plan["strategy"] == planner.WINDOW_POSTFILTER and "level-1 straddle bucket of 4500 rows" in plan["reason"]
    inside = (ts >= 4500) & (ts < 7400) & ~np.isin(ids, deleted)
    want, _ = exact_search("l2", queries, vectors[inside], ids[inside], 10)
    assert recall(res.ids, want) >= 0.95 and np.isin(res.ids[res.ids >= 0], ids[inside]).all()
    # a conjunction: its rows lie inside one small bucket, so postfiltering there beats the whole graph
    # (and, with scans priced up as on a large segment, the scan of its few hundred rows)
    monkeypatch.setattr(planner, "EXACT_NS_PER_ROW_DIM", 600.0)
    res = col.search(queries, k=10, filter="t >= 100 and t < 700 and g < 5", explain=True)
    assert res.plan[0]["segments"][0]["strategy"] == planner.WINDOW_POSTFILTER, res.plan[0]
    inside = (ts >= 100) & (ts < 700) & (np.arange(ROWS) % 10 < 5) & ~np.isin(ids, deleted)
    want, _ = exact_search("l2", queries, vectors[inside], ids[inside], 10)
    assert recall(res.ids, want) >= 0.95 and np.isin(res.ids[res.ids >= 0], ids[inside]).all()


CODE_DIM = 64


def spread(n: int, seed: int, dim: int = CODE_DIM) -> np.ndarray:
    """Clusters loose enough for one-bit codes to rank within them (tight ones defeat any code)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(30).standard_normal((30, dim)) * 2
    return (centres[rng.integers(0, 30, n)] + rng.standard_normal((n, dim))).astype(np.float32)


@pytest.fixture(scope="module", params=[("binary", 20), ("pq", 10), ("sq8", 1)], ids=["binary", "pq", "sq8"])
def quantized_tree(request, tmp_path_factory):
    """A sorted, quantised segment with a window tree and 10% of its rows deleted."""
    kind, oversampling = request.param
    quantization = {"kind": kind, "oversampling": oversampling} | ({"pq_m": 16} if kind == "pq" else {})
    db = vecstore.connect(tmp_path_factory.mktemp("wtq") / "db")
    col = db.create_collection("q", dim=CODE_DIM, metric="cosine", attributes={"t": "int64"}, window="t", hnsw=HNSW,
                               quantization=quantization)  # fmt: skip
    vectors = spread(ROWS, seed=31)
    ts = np.random.default_rng(32).permutation(ROWS)
    ids = np.arange(ROWS, dtype=np.int64) * 5 + 1
    col.upsert(ids, vectors, {"t": ts})
    col.seal()
    assert col.wait_for_indexes(timeout=300)
    deleted = ids[np.random.default_rng(33).random(ROWS) < 0.1]
    col.delete(deleted)
    yield col, ids, vectors, ts, deleted, oversampling
    db.close()


@pytest.mark.parametrize(("low", "high"), WINDOWS)
def test_tree_strategies_walked_over_codes_pass_the_subset_test(quantized_tree, monkeypatch, low, high):
    """Bucket graphs walked over codes, candidates rescored: only live rows in the window, recall@10
    >= 0.95 against exact search over them."""
    from vecstore.engine.code_walks import code_walk

    col, ids, vectors, ts, deleted, oversampling = quantized_tree
    (view,) = col._snapshot()
    assert code_walk(view, 10, oversampling, True) is None  # at 64-d a code distance saves nothing
    monkeypatch.setattr(planner, "float_distance_scale", lambda dim: 100.0)  # as on high-dimensional rows
    monkeypatch.setattr(planner, "SQ8_FROM_DIM", CODE_DIM)
    walk = code_walk(view, 10, oversampling, True)
    assert walk is not None and walk.count == 10 * oversampling and code_walk(view, 10, oversampling, False) is None
    allowed = allowed_rows(view, parse_filter(f"t >= {low} and t < {high}"))
    options = tree_options(view, allowed, 64, HNSW["m"], prune=False, walk=walk)
    assert options and all("codes" in o.reason for o in options)
    inside = (ts >= low) & (ts < high) & ~np.isin(ids, deleted)
    queries = spread(30, seed=34)
    want, _ = exact_search("cosine", queries, vectors[inside], ids[inside], 10)
    for option in options:
        for batch in (queries, queries[:1]):
            hits = run_tree_option(view, 0, allowed, option, batch, 10, 64, 2, walk)
            got = hits.ids
            assert np.isin(got[got >= 0], ids[inside]).all(), option.strategy  # never outside, never deleted
            assert np.all(np.diff(np.where(got >= 0, hits.distances, np.inf), axis=1) >= 0)
            assert recall(got, want[: batch.shape[0]]) >= 0.95, (option.strategy, option.reason)


def test_the_planner_walks_the_tree_over_codes_where_float_distances_cost_more(quantized_tree, monkeypatch):
    col, ids, vectors, ts, deleted, _ = quantized_tree
    monkeypatch.setattr(planner, "float_distance_scale", lambda dim: 100.0)
    monkeypatch.setattr(planner, "SQ8_FROM_DIM", CODE_DIM)
    monkeypatch.setattr(planner, "QUANTIZED_CALL_NS", 1e9)  # flat code scans out of the way
    queries = spread(10, seed=35)
    res = col.search(queries, k=10, filter="t >= 2990 and t < 6020", explain=True)
    plan = res.plan[0]["segments"][0]
    assert plan["strategy"] in (planner.WINDOW_COVER, planner.WINDOW_THREE_SPLIT, planner.WINDOW_POSTFILTER), plan
    assert "codes" in plan["reason"], plan
    inside = (ts >= 2990) & (ts < 6020) & ~np.isin(ids, deleted)
    want, _ = exact_search("cosine", queries, vectors[inside], ids[inside], 10)
    assert recall(res.ids, want) >= 0.95 and np.isin(res.ids[res.ids >= 0], ids[inside]).all()
