"""Term graphs: an HNSW graph over each large term of a string / list<string> column, built in the
background, persisted, and searched when a filter's rows lie within some terms' rows; every filter
shape they answer passes the subset test against exact search over the allowed rows (recall floor
0.95, never a row outside the filter, each row once, k results whenever k rows match)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import vecstore
from tests.conftest import price_out_segment_walks
from tests.oracles import exact_search
from tests.test_engine_graphs import clustered, recall
from vecstore.engine import planner, search
from vecstore.engine.allowed import allowed_rows
from vecstore.engine.graphs import TERMS_SUFFIX
from vecstore.engine.search import plan_view
from vecstore.engine.term_search import term_options
from vecstore.errors import DataCorruption, InvalidArgument
from vecstore.filters import parse_filter
from vecstore.index.hnsw import HnswIndex
from vecstore.index.payload import PayloadIndex
from vecstore.index.term_graphs import MAX_ROW_FRACTION, TermGraphs, graph_terms
from vecstore.rpc import convert

ROWS, DIM = 12_000, 16
CATS = np.array(["a", "b", "c", "d", "e", "tiny"])
#: cat a-e hold 19.9% of the rows each, 'tiny' 0.5% (below the graph threshold); tags: x 30%, y 20%, z 1%
HNSW = {"m": 12, "ef_construction": 80, "ef": 64, "term_graphs": ["cat", "tags"], "term_graph_min_rows": 600}
ATTRS = {"t": "int64", "cat": "string", "tags": "list<string>", "n": "int64"}

pytestmark = pytest.mark.usefixtures("graphs_priced_in")  # graph paths on small test collections


def _rows(rows: int = ROWS, seed: int = 41):
    """Clustered vectors whose category and tags are drawn independently of the cluster, so a masked walk
    of the segment graph meets rejected rows all the way (the case term graphs are for)."""
    rng = np.random.default_rng(seed)
    vectors = clustered(rows, seed=seed, dim=DIM)
    cats = CATS[np.where(rng.random(rows) < 0.005, 5, rng.integers(0, 5, rows))]
    draw = rng.random((rows, 3))
    tags = [[t for t, p, u in zip(("x", "y", "z"), (0.3, 0.2, 0.01), row, strict=True) if u < p] for row in draw]
    ids = np.arange(rows, dtype=np.int64) * 7 + 3  # ids unlike offsets, to catch a mix-up
    return ids, vectors, {"t": rng.permutation(rows), "cat": cats, "tags": tags, "n": np.arange(rows) % 3}


def _collection(db, **options):
    col = db.create_collection("c", dim=DIM, metric=options.pop("metric", "l2"), attributes=ATTRS, window="t",
                               hnsw={**HNSW, **options.pop("hnsw", {})}, **options)  # fmt: skip
    ids, vectors, attrs = _rows()
    col.upsert(ids, vectors, attrs)
    col.seal()
    assert col.wait_for_indexes(timeout=300)
    return col, ids, vectors, attrs


def _allowed(text: str, attrs: dict, live: np.ndarray) -> np.ndarray:
    cats, tags, ts, n = attrs["cat"], attrs["tags"], attrs["t"], attrs["n"]
    has = {tag: np.array([tag in row for row in tags]) for tag in ("x", "y", "z")}
    masks = {
        "cat = 'a'": cats == "a",
        "cat in ('b', 'c')": (cats == "b") | (cats == "c"),
        "cat in ('a', 'tiny')": (cats == "a") | (cats == "tiny"),
        "tags contains 'x'": has["x"],
        "tags contains any ('x', 'y')": has["x"] | has["y"],
        "tags contains all ('x', 'y')": has["x"] & has["y"],
        "cat = 'd' and t >= 3000 and t < 9000": (cats == "d") & (ts >= 3000) & (ts < 9000),
        "cat in ('a', 'e') and n = 1": ((cats == "a") | (cats == "e")) & (n == 1),
        "tags contains 'y' and cat != 'b'": has["y"] & (cats != "b"),
    }
    return masks[text] & live


FILTERS = [
    "cat = 'a'",
    "cat in ('b', 'c')",
    "cat in ('a', 'tiny')",  # one term with a graph, one scanned
    "tags contains 'x'",
    "tags contains any ('x', 'y')",  # rows holding both tags are in both graphs
    "tags contains all ('x', 'y')",
    "cat = 'd' and t >= 3000 and t < 9000",  # the term's graph masked to the window
    "cat in ('a', 'e') and n = 1",
    "tags contains 'y' and cat != 'b'",
]


def _check(col, queries, text, allowed, ids, vectors, floor=0.95, single=False):
    k = 10
    if single:
        found = np.stack([col.search(q, k=k, filter=text).ids[0] for q in queries])
    else:
        res = col.search(queries, k=k, filter=text, explain=True)
        found = res.ids
    want, _ = exact_search("l2", queries, vectors[allowed], ids[allowed], k)
    expected = min(k, int(allowed.sum()))
    assert ((found >= 0).sum(axis=1) == expected).all(), text  # k whenever k match
    assert np.isin(found[found >= 0], ids[allowed]).all(), text  # never a row outside the filter or deleted
    for row in found:
        assert len(set(row[row >= 0].tolist())) == (row >= 0).sum(), (text, row)  # each row once
    if expected:
        assert recall(found, want) >= floor, text
    return None if single else res


def test_term_graphs_are_built_reported_and_persisted(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col, *_ = _collection(db)
        (segment,) = col.describe()["segments"]
        # cat a-e and tags x, y reach 600 rows and at most half the segment; 'tiny' and 'z' do not
        assert segment["term_graphs"] == "ready (7 graphs over cat, tags)"
        assert segment["term_graph_bytes"] > 0
        assert col.describe()["memory"]["term_graph_bytes"] == segment["term_graph_bytes"]
        assert col.stats()["term_graphs_built"] == 1 and col.describe()["build_seconds"]["terms"] > 0
    files = sorted((tmp_path / "db").glob(f"collections/c/segments/*{TERMS_SUFFIX}"))
    assert len(files) == 1
    with vecstore.connect(tmp_path / "db") as db:
        col = db.collection("c")
        assert col.describe()["segments"][0]["term_graphs"].startswith("ready")  # mapped, not rebuilt
        assert "term_graphs_built" not in col.stats()
        res = col.search(clustered(3, seed=5, dim=DIM), k=10, filter="cat = 'a'", explain=True)
        assert res.plan[0]["segments"][0]["strategy"] == planner.TERM_GRAPH
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    with vecstore.connect(tmp_path / "db") as db:
        col = db.collection("c")  # a damaged file is derived data: dropped and built again
        assert col.stats()["term_graphs_rebuilt"] == 1
        assert col.wait_for_indexes(timeout=300)
        assert col.describe()["segments"][0]["term_graphs"].startswith("ready")
        assert col.stats()["term_graphs_built"] == 1
    assert not files[0].exists()


@pytest.fixture(params=["priced", "terms_forced"])
def pricing(request, monkeypatch):
    """As priced, and with the segment graph's masked and two-hop walks priced out, so that every
    filter shape below runs on term graphs."""
    if request.param == "terms_forced":
        price_out_segment_walks(monkeypatch)
    return request.param


@pytest.mark.parametrize("single", [False, True], ids=["batch", "single"])
def test_subset_test_for_every_filter_term_graphs_answer(tmp_path, single, pricing):
    with vecstore.connect(tmp_path / "db") as db:
        tree = {"window_tree_beta": 0} if pricing == "terms_forced" else {}  # no bucket graphs to choose
        col, ids, vectors, attrs = _collection(db, hnsw=tree)
        live = np.random.default_rng(42).random(ids.shape[0]) >= 0.2  # a fifth deleted: masks over live rows
        col.delete(ids[~live])
        queries = clustered(20, seed=43, dim=DIM)
        before = col.stats().get(planner.TERM_GRAPH, 0)
        for text in FILTERS:
            res = _check(col, queries, text, _allowed(text, attrs, live), ids, vectors, single=single)
            if res is not None and pricing == "terms_forced":
                assert res.plan[0]["segments"][0]["strategy"] == planner.TERM_GRAPH, (text, res.plan[0])
        ran = col.stats()[planner.TERM_GRAPH] - before
        if pricing == "terms_forced":
            assert ran == len(FILTERS) * len(queries)
        else:  # priced: a single category of a fifth of the rows is cheaper in its own graph
            assert ran >= len(queries)


def test_every_live_row_of_a_term_is_reachable(tmp_path):
    """k as large as a term: the walk, or the exact rescan when it falls short, returns every row."""
    with vecstore.connect(tmp_path / "db") as db:
        col, ids, _, attrs = _collection(db, hnsw={"term_graph_min_rows": 64})
        allowed = np.array(["z" in row for row in attrs["tags"]])  # about 120 rows: a graph of its own
        assert col._snapshot()[0].terms.get("tags", "z") is not None
        res = col.search(clustered(2, seed=44, dim=DIM), k=int(allowed.sum()) + 5, filter="tags contains 'z'",
                         explain=True)  # fmt: skip
        assert res.plan[0]["segments"][0]["strategy"] == planner.TERM_GRAPH
        for row in res.ids:
            assert sorted(row[row >= 0].tolist()) == sorted(ids[allowed].tolist())


def test_planner_prefers_a_terms_graph_to_a_masked_walk_and_says_why(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col, *_ = _collection(db)
        (view,) = col._snapshot()
        node = parse_filter("cat = 'a'")  # a fifth of the rows, unrelated to the vectors' clusters
        plan, option = plan_view(view, allowed_rows(view, node), k=10, ef=64, m=12, dim=DIM, exact=False,
                                 oversampling=1.0, rescore=True, queries=1, node=node)  # fmt: skip
        assert plan.strategy == planner.TERM_GRAPH
        assert {o.strategy for o in plan.alternatives} >= {planner.EXACT_SCAN, planner.HNSW_TWO_HOP}
        assert plan.reason.startswith("graphs of 1 of 1 terms of cat")
        assert [p.how for p in option.detail[1]] == ["walk"] and option.detail[1][0].mask is None  # unmasked
        node = parse_filter("cat in ('a', 'tiny')")
        (mixed,) = term_options(view, allowed_rows(view, node), node, 64, 12)
        assert [p.how for p in mixed.detail[1]] == ["walk", "scan"]  # 'tiny' has no graph: its rows are scanned
        # filters no terms' rows hold are not offered term graphs
        for text in ("cat != 'a'", "n = 1", "cat = 'a' or n = 1", "tags contains 'z'"):
            node = parse_filter(text)
            assert term_options(view, allowed_rows(view, node), node, 64, 12) == [], text
        # without graphs for the field the planner walks the segment graph as before
        explained = col.search(clustered(1, seed=6, dim=DIM), k=10, filter="cat = 'b'", explain=True, exact=True)
        assert explained.plan[0]["segments"][0]["strategy"] == planner.EXACT_SCAN


def test_cosine_and_ip_term_graphs_search_their_metric(tmp_path):
    for metric in ("cosine", "ip"):
        with vecstore.connect(tmp_path / metric) as db:
            col, ids, vectors, attrs = _collection(db, metric=metric)
            queries = clustered(10, seed=45, dim=DIM)
            allowed = attrs["cat"] == "c"
            res = col.search(queries, k=10, filter="cat = 'c'", explain=True)
            assert res.plan[0]["segments"][0]["strategy"] == planner.TERM_GRAPH
            want, want_d = exact_search(metric, queries, vectors[allowed], ids[allowed], 10)
            assert recall(res.ids, want) >= 0.9, metric
            same = res.ids == want  # where the same row comes back, with its true distance
            np.testing.assert_allclose(res.distances[same], want_d[same], rtol=1e-4, atol=1e-4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cats=st.lists(st.sampled_from(list(CATS)), min_size=1, max_size=3),
    tags=st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=2),
    mode=st.sampled_from(["cat", "tags_any", "tags_all", "both"]),
    window=st.none() | st.tuples(st.integers(0, ROWS), st.integers(1, ROWS)),
)
# 5.3% of a 3,000-row tree bucket: a two-hop postfilter above the old floor (5.2% at m=12) met recall 0.86
@example(cats=["a"], tags=["x"], mode="cat", window=(6866, 721))
def test_random_term_filters_against_exact_search(term_db, cats, tags, mode, window):
    col, ids, vectors, attrs = term_db
    in_cats = "cat in (" + ", ".join(f"'{c}'" for c in cats) + ")"
    tag_list = "(" + ", ".join(f"'{t}'" for t in tags) + ")"
    has = np.array([[t in row for t in tags] for row in attrs["tags"]])
    parts, allowed = [], np.ones(ids.shape[0], dtype=bool)
    if mode in ("cat", "both"):
        parts.append(in_cats)
        allowed &= np.isin(attrs["cat"], cats)
    if mode in ("tags_any", "both"):
        parts.append(f"tags contains any {tag_list}")
        allowed &= has.any(axis=1)
    if mode == "tags_all":
        parts.append(f"tags contains all {tag_list}")
        allowed &= has.all(axis=1)
    if window is not None:
        low, width = window
        parts.append(f"t >= {low} and t < {low + width}")
        allowed &= (attrs["t"] >= low) & (attrs["t"] < low + width)
    queries = clustered(5, seed=len(parts) + sum(map(len, cats)), dim=DIM)
    # approximate paths: a recall floor (looser for a handful of random queries), and never a wrong row
    _check(col, queries, " and ".join(parts), allowed, ids, vectors, floor=0.9)


@pytest.fixture(scope="module")
def term_db(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(planner, "EXACT_NS_PER_ROW_DIM", 50.0)  # as graphs_priced_in, for the module
        with vecstore.connect(tmp_path_factory.mktemp("terms") / "db") as db:
            yield _collection(db)


@pytest.mark.parametrize(("big_rows", "gets_graph"), [(650, True), (700, True), (701, False), (900, False)])
def test_a_term_gets_a_graph_up_to_the_largest_share_of_rows(big_rows, gets_graph):
    cats = ["big"] * big_rows + ["rest"] * (1000 - big_rows)
    payload = PayloadIndex.build(pa.table({"cat": pa.array(cats, pa.large_string())}), {"cat": "string"})
    chosen = {term for term, *_ in graph_terms(payload.columns["cat"], 1000, 50)}
    assert ("big" in chosen) is gets_graph and "rest" in chosen
    assert MAX_ROW_FRACTION == 0.7  # the cut the cases above sit around


def test_index_builds_graphs_for_large_terms_and_round_trips():
    _, vectors, attrs = _rows(4000, seed=46)
    table = pa.table({"cat": pa.array(attrs["cat"].tolist(), pa.large_string()),
                      "tags": pa.array(attrs["tags"], pa.large_list(pa.large_string()))})  # fmt: skip
    payload = PayloadIndex.build(table, {"cat": "string", "tags": "list<string>"})
    root = HnswIndex.build(vectors, "l2", 8, 40)
    terms = TermGraphs.build(root, payload, ["cat", "tags"], min_rows=300)
    chosen = {(f, t) for f in ("cat", "tags") for t, *_ in graph_terms(payload.columns[f], 4000, 300)}
    assert set(terms.graphs) == chosen and ("cat", "a") in chosen and ("cat", "tiny") not in chosen
    graph = terms.get("cat", "a")
    np.testing.assert_array_equal(graph.rows, np.flatnonzero(attrs["cat"] == "a"))
    np.testing.assert_array_equal(graph.index.vectors, vectors[graph.rows])  # l2 searches the stored rows
    found, _ = graph.index.search(vectors[graph.rows[:5]], 1, 32)
    np.testing.assert_array_equal(found[:, 0], np.arange(5))  # each row finds itself, by node number
    meta, arrays = terms.to_arrays()
    again = TermGraphs.from_arrays(meta, arrays, 4000)
    assert set(again.graphs) == set(terms.graphs) and again.get("cat", 5) is None
    np.testing.assert_array_equal(again.get("cat", "a").rows, graph.rows)
    with pytest.raises(DataCorruption, match="outside the segment"):
        TermGraphs.from_arrays(meta, arrays, 100)
    with pytest.raises(DataCorruption, match="damaged"):
        TermGraphs.from_arrays({**meta, "version": 99}, arrays, 4000)


@pytest.mark.parametrize(
    ("term_graphs", "message"),
    [
        (["nope"], "not among the attributes"),
        (["cat", "cat"], "twice"),
        ("cat", "must be a list"),
    ],
)
def test_bad_term_graph_options_are_refused(db, term_graphs, message):
    with pytest.raises(InvalidArgument, match=message):
        db.create_collection("c", dim=DIM, attributes=ATTRS, hnsw={"term_graphs": term_graphs})
    with pytest.raises(InvalidArgument, match="term_graph_min_rows"):
        db.create_collection("c", dim=DIM, attributes=ATTRS, hnsw={"term_graph_min_rows": 10})
    assert db.list_collections() == []


def test_term_graph_options_cross_the_wire():
    hnsw = {"m": 12, "term_graphs": ["cat", "tags"], "term_graph_min_rows": 600}
    assert convert.hnsw_from_proto(convert.hnsw_to_proto(hnsw)) == hnsw
    assert convert.hnsw_from_proto(convert.hnsw_to_proto({"m": 8})) == {"m": 8}


def test_a_clustered_category_prices_walks_of_the_segment_graph_dearer(tmp_path):
    """A category owning its own region of the vectors (each value a set of clusters) measures a lift
    of several times; a category drawn at random about 1. A walk of the segment graph under the first is
    priced by it (traversal dearer, two-hop not offered below its floor), so its own graph runs."""
    rng = np.random.default_rng(47)
    centres = rng.standard_normal((40, DIM)) * 4
    cluster = rng.integers(0, 40, 10_000)
    vectors = (centres[cluster] + rng.standard_normal((10_000, DIM))).astype(np.float32)
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("k", dim=DIM, metric="l2", attributes={"cat": "string", "rnd": "string"},
                                   hnsw={**HNSW, "term_graphs": ["cat", "rnd"]})  # fmt: skip
        names = np.array(list("abcde"))
        col.upsert(np.arange(10_000), vectors, {"cat": names[cluster % 5], "rnd": names[rng.integers(0, 5, 10_000)]})
        col.seal()
        assert col.wait_for_indexes(timeout=300)
        (view,) = col._snapshot()
        assert view.terms.get("cat", "a").lift > 3.0  # a fifth of the rows, holding most of its rows' links
        assert 0.7 < view.terms.get("rnd", "a").lift < 1.5
        for text, low, high in (("cat = 'a'", 3.0, 6.0), ("rnd = 'a'", 0.7, 1.5), ("cat in ('a', 'b')", 3.0, 6.0)):
            node = parse_filter(text)
            assert low < search.filter_clustering(view, allowed_rows(view, node), node) < high, text
        node = parse_filter("cat = 'a'")
        plan, _ = plan_view(view, allowed_rows(view, node), k=10, ef=64, m=12, dim=DIM, exact=False,
                            oversampling=1.0, rescore=True, queries=1, node=node)  # fmt: skip
        assert plan.strategy == planner.TERM_GRAPH
        # the lift is sampled only where it could change the choice: the term graph undercuts even
        # the walks priced as if the category were random
        walks = [o for o in plan.alternatives if o.strategy in (planner.HNSW, planner.HNSW_TWO_HOP)]
        assert all(o.cost_ns > plan.estimated_ns for o in walks)
        # the same filter, subset-tested, through its term graph
        queries = (centres[rng.integers(0, 40, 10)] + rng.standard_normal((10, DIM))).astype(np.float32)
        allowed = names[cluster % 5] == "a"
        ids = np.arange(10_000)
        _check(col, queries, "cat = 'a'", allowed, ids, vectors)
