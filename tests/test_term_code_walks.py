"""Term graphs and range runs walked over their nodes' sq8 codes, candidates rescored on the float rows.

Where a code distance costs less than a float one (high dimensions), a quantised segment's term and
range graphs are walked by code distance, as its window-tree buckets are. Every such walk passes the
subset test against exact search over the allowed rows (recall floor 0.95, never a row outside the
filter or deleted, k whenever k match), and the single-query lane's one-call walk answers as the
general path does.
"""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from tests.oracles import exact_search
from tests.test_engine_graphs import clustered, recall
from vecstore.engine import planner, search, single
from vecstore.engine.code_walks import code_walk

ROWS, DIM = 8_000, 32
ATTRS = {"t": "int64", "score": "float64", "cat": "string", "tags": "list<string>"}
HNSW = {"m": 12, "ef_construction": 64, "ef": 64, "term_graphs": ["score", "cat", "tags"], "term_graph_min_rows": 500}
FILTERS = {
    "cat = 'b'": lambda s, c, g: c == "b",
    "cat in ('a', 'c')": lambda s, c, g: (c == "a") | (c == "c"),
    "tags contains any ('x', 'y')": lambda s, c, g: g[:, 0] | g[:, 1],  # a row may hold both: found twice
    "score between 10 and 30": lambda s, c, g: (s >= 10) & (s <= 30),
    "score >= 61.5 and cat = 'd'": lambda s, c, g: (s >= 61.5) & (c == "d"),
}

pytestmark = pytest.mark.usefixtures("graphs_priced_in")  # graph paths on small test collections


@pytest.fixture
def over_codes(monkeypatch):
    """Price distances as on high-dimensional rows, where sq8 codes are cheaper to walk than floats
    (float walks then cost 100 times the calibrated ones), and take the flat code scan out of the way:
    the term and range graphs answer every filter below, walked over codes, where the segment graph's
    walk over codes would cross more rejected rows."""
    monkeypatch.setattr(planner, "float_distance_scale", lambda dim: 100.0)
    monkeypatch.setattr(planner, "SQ8_FROM_DIM", DIM)
    monkeypatch.setattr(planner, "QUANTIZED_CALL_NS", 1e9)


@pytest.fixture(scope="module", params=["sq8", "binary"])
def collection(request, tmp_path_factory):
    """A quantised collection with term graphs on a string and a list column and range graphs on a
    number, 15% of its rows deleted."""
    quantization = {"kind": request.param, "oversampling": 1 if request.param == "sq8" else 20}
    rng = np.random.default_rng(61)
    db = vecstore.connect(tmp_path_factory.mktemp("tcw") / "db")
    col = db.create_collection("c", dim=DIM, metric="l2", attributes=ATTRS, window="t", hnsw=HNSW,
                               quantization=quantization)  # fmt: skip
    vectors = clustered(ROWS, seed=62, dim=DIM)
    ids = np.arange(ROWS, dtype=np.int64) * 3 + 7  # ids unlike offsets, to catch a mix-up
    score = rng.random(ROWS) * 100
    cat = np.array(list("abcd"))[rng.integers(0, 4, ROWS)]
    held = rng.random((ROWS, 2)) < 0.3  # tags x and y, independently
    tags = [[t for t, h in zip("xy", row, strict=True) if h] for row in held]
    col.upsert(ids, vectors, {"t": rng.permutation(ROWS), "score": score, "cat": cat, "tags": tags})
    col.seal()
    assert col.wait_for_indexes(timeout=300)
    live = rng.random(ROWS) >= 0.15
    col.delete(ids[~live])
    yield col, ids, vectors, score, cat, held, live
    db.close()


@pytest.mark.parametrize("text", list(FILTERS))
def test_term_and_range_graphs_walked_over_codes_pass_the_subset_test(collection, over_codes, text):
    col, ids, vectors, score, cat, held, live = collection
    if col._snapshot()[0].codes.kind != "sq8":
        pytest.skip("term and range graphs walk over sq8 codes only")
    allowed = FILTERS[text](score, cat, held) & live
    queries = clustered(20, seed=63, dim=DIM)
    want, _ = exact_search("l2", queries, vectors[allowed], ids[allowed], 10)
    res = col.search(queries, k=10, filter=text, explain=True)
    plan = res.plan[0]["segments"][0]
    priced = (plan["reason"], plan["alternatives_us"])
    assert plan["strategy"] in (planner.TERM_GRAPH, planner.RANGE_GRAPH), priced
    assert "walked over sq8 codes" in plan["reason"], priced
    singles = np.stack([col.search(q, k=10, filter=text).ids[0] for q in queries])  # the lane
    for found in (res.ids, singles):
        assert ((found >= 0).sum(axis=1) == min(10, int(allowed.sum()))).all()
        assert np.isin(found[found >= 0], ids[allowed]).all()  # never a row outside the filter or deleted
        assert all(len(set(row[row >= 0])) == (row >= 0).sum() for row in found)  # each row once
        assert recall(found, want) >= 0.95


def test_the_lane_walks_a_term_or_range_graph_over_codes_in_one_call_as_the_general_path(collection, over_codes,
                                                                                          monkeypatch):  # fmt: skip
    col, *_ = collection
    if col._snapshot()[0].codes.kind != "sq8":
        pytest.skip("the lane walks sq8 codes only; the general path walks the others")
    calls = []
    code_walk_call = single._term_code_walk
    monkeypatch.setattr(single, "_term_code_walk", lambda *args: calls.append(1) or code_walk_call(*args))
    for text in ("cat = 'b'", "score between 10 and 30", "score >= 61.5 and cat = 'd'"):
        for query in clustered(5, seed=64, dim=DIM):
            before = col.stats().get(single.LANE_COUNTER, 0)
            lane = col.search(query, k=10, filter=text)
            assert col.stats()[single.LANE_COUNTER] - before == 1, text
            general = col.search(query, k=10, filter=text, explain=True)  # explain: the general path
            np.testing.assert_array_equal(lane.ids, general.ids, err_msg=text)
            np.testing.assert_allclose(lane.distances, general.distances, rtol=1e-6, err_msg=text)
    assert len(calls) == 15


def test_codes_are_walked_only_where_a_code_distance_costs_less(collection, monkeypatch):
    col, *_ = collection
    (view,) = col._snapshot()
    if view.codes.kind != "sq8":
        pytest.skip("binary and PQ distances are priced below a float one at any width")
    assert code_walk(view, 10, 1.0, True) is None  # at 32-d a float distance costs no more
    res = col.search(clustered(3, seed=65, dim=DIM), k=10, filter="cat = 'b'", explain=True)
    assert "codes" not in res.plan[0]["segments"][0]["reason"]
    monkeypatch.setattr(planner, "float_distance_scale", lambda dim: 100.0)
    monkeypatch.setattr(planner, "SQ8_FROM_DIM", DIM)
    assert code_walk(view, 10, 1.0, True) is not None and code_walk(view, 10, 1.0, False) is None


def test_node_codes_are_the_segment_codes_of_each_node_gathered_once(collection):
    col, *_ = collection
    (view,) = col._snapshot()
    terms, codes = view.terms, view.codes
    if codes.kind != "sq8":
        pytest.skip("gathered alike for every kind")
    graph = terms.get("cat", "b")
    copy = terms.node_codes(graph, codes)
    np.testing.assert_array_equal(copy.codes, codes.codes[graph.rows])
    assert copy.offset is codes.offset and copy.step is codes.step
    assert terms.node_codes(graph, codes) is copy  # kept
    field = terms.ranges["score"]
    for run in field.runs:
        np.testing.assert_array_equal(
            terms.node_codes(run, codes).codes, codes.codes[field.order][run.start : run.stop]
        )
    other = type(codes)(codes.metric, codes.offset, codes.step, codes.codes.copy())  # a rebuilt segment's codes
    assert terms.node_codes(graph, other) is not copy


def test_one_bit_codes_leave_term_and_range_graphs_to_the_floats(collection, over_codes, monkeypatch):
    """Where codes are cheaper, binary codes walk the segment graph and the window tree, not the term
    and range graphs: one-bit codes of these clustered rows rank a term's rows too coarsely (recall@10
    about 0.8 at oversampling 20), where sq8 codes rank them as the floats nearly do."""
    col, *_ = collection
    (view,) = col._snapshot()
    kind = view.codes.kind
    assert code_walk(view, 10, 20, True) is not None
    walks = []
    for name in ("term_options", "range_options"):
        priced = getattr(search, name)
        monkeypatch.setattr(search, name, lambda *args, priced=priced: walks.append(args[-1]) or priced(*args))
    for text in ("cat = 'b'", "score between 10 and 30"):
        col.search(clustered(2, seed=66, dim=DIM), k=10, filter=text, explain=True)
    assert len(walks) == 2
    if kind == "sq8":
        assert all(walk is not None and walk.kind == "sq8" for walk in walks)
    else:
        assert walks == [None, None]
