"""Range graphs: graphs over runs of a numeric attribute's value order (eighths and runs of two and three),
built with the term graphs, persisted in their file, and walked when a range on that attribute holds
every allowed row. Every range shape they answer passes the subset test against exact search over the
allowed rows (recall floor 0.95, never a row outside the filter or deleted, k whenever k match)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vecstore
from tests.conftest import price_out_segment_walks
from tests.oracles import exact_search
from tests.test_engine_graphs import clustered, recall
from vecstore.engine import planner, single
from vecstore.engine.allowed import allowed_rows
from vecstore.engine.filtering import matching
from vecstore.engine.graphs import TERMS_SUFFIX
from vecstore.engine.range_search import holding_run, range_options, run_node_mask
from vecstore.errors import DataCorruption, InvalidArgument
from vecstore.filters import parse_filter
from vecstore.index.range_graphs import (
    COARSE_CELLS,
    COARSE_SHAPES,
    RANGE_CELLS,
    RUN_SHAPES,
    layout_for,
    run_bounds,
)
from vecstore.index.term_graphs import TermGraphs

ROWS, DIM = 12_000, 16
ATTRS = {"t": "int64", "score": "float64", "cat": "string", "seen": "timestamp"}
# ef_construction 64 keeps the 24 runs' builds per field cheap; every range below still reads recall 1.0
HNSW = {"m": 12, "ef_construction": 64, "ef": 128, "term_graphs": ["score", "cat", "seen"], "term_graph_min_rows": 600}

pytestmark = pytest.mark.usefixtures("graphs_priced_in")  # graph paths on small test collections


def _rows(seed: int = 51):
    """Clustered vectors; a score drawn independently of them (null every 50th row), so a masked walk
    of the segment graph meets rejected rows all the way; a timestamp rising with the row."""
    rng = np.random.default_rng(seed)
    vectors = clustered(ROWS, seed=seed, dim=DIM)
    score = rng.random(ROWS) * 100
    score_col = [None if i % 50 == 0 else float(v) for i, v in enumerate(score)]
    seen = np.datetime64("2020-01-01T00:00:00") + rng.permutation(ROWS).astype("timedelta64[h]")
    ids = np.arange(ROWS, dtype=np.int64) * 5 + 2  # ids unlike offsets, to catch a mix-up
    attrs = {"t": rng.permutation(ROWS), "score": score_col, "cat": np.array(list("abcd"))[rng.integers(0, 4, ROWS)],
             "seen": seen}  # fmt: skip
    return ids, vectors, attrs, np.where(np.arange(ROWS) % 50 == 0, np.nan, score)


def _collection(db, metric: str = "l2", hnsw: dict | None = None):
    col = db.create_collection("r", dim=DIM, metric=metric, attributes=ATTRS, window="t", hnsw={**HNSW, **(hnsw or {})})
    ids, vectors, attrs, score = _rows()
    col.upsert(ids, vectors, attrs)
    col.seal()
    assert col.wait_for_indexes(timeout=300)
    return col, ids, vectors, attrs, score


FILTERS = {
    "score between 10 and 30": lambda s, c, h: (s >= 10) & (s <= 30),
    "score < 12": lambda s, c, h: s < 12,
    "score >= 61.5": lambda s, c, h: s >= 61.5,
    "score > 70 and score <= 80.5": lambda s, c, h: (s > 70) & (s <= 80.5),
    "score between 40 and 60 and cat = 'b'": lambda s, c, h: (s >= 40) & (s <= 60) & (c == "b"),
    "score between 5 and 45 and score > 20": lambda s, c, h: (s > 20) & (s <= 45),
    "seen >= '2020-03-01T00:00:00' and seen < '2020-05-01T00:00:00'": lambda s, c, h: (h >= 1440) & (h < 2904),
}


def _hours(attrs) -> np.ndarray:
    return (attrs["seen"] - np.datetime64("2020-01-01T00:00:00")).astype("timedelta64[h]").astype(np.int64)


@pytest.fixture(params=["priced", "ranges_forced"])
def pricing(request, monkeypatch):
    """As priced, and with the segment graph's masked and two-hop walks priced out, so that every range
    below runs on a range graph."""
    if request.param == "ranges_forced":
        price_out_segment_walks(monkeypatch)
    return request.param


@pytest.mark.parametrize("single", [False, True], ids=["batch", "single"])
def test_subset_test_for_every_range_the_range_graphs_answer(tmp_path, single, pricing):
    with vecstore.connect(tmp_path / "db") as db:
        col, ids, vectors, attrs, score = _collection(db)
        live = np.random.default_rng(52).random(ROWS) >= 0.15  # some rows deleted: masks over live rows
        col.delete(ids[~live])
        queries = clustered(20, seed=53, dim=DIM)
        before = col.stats().get(planner.RANGE_GRAPH, 0)
        for text, truth in FILTERS.items():
            allowed = truth(score, attrs["cat"], _hours(attrs)) & live
            if single:
                found = np.stack([col.search(q, k=10, filter=text).ids[0] for q in queries])
            else:
                found = col.search(queries, k=10, filter=text).ids
            want, _ = exact_search("l2", queries, vectors[allowed], ids[allowed], 10)
            assert ((found >= 0).sum(axis=1) == min(10, int(allowed.sum()))).all(), text
            assert np.isin(found[found >= 0], ids[allowed]).all(), text  # never a row outside or deleted
            assert recall(found, want) >= 0.95, text
            if pricing == "ranges_forced" and not single:
                chosen = col.search(queries[:1], k=10, filter=text, explain=True).plan[0]["segments"][0]["strategy"]
                # the AND may take cat's own graph (a quarter of the rows) instead: whichever is cheaper
                assert chosen == planner.RANGE_GRAPH or ("cat" in text and chosen == planner.TERM_GRAPH), text
        ran = col.stats()[planner.RANGE_GRAPH] - before
        if pricing == "ranges_forced":
            assert ran >= (len(FILTERS) - 1) * len(queries)
        else:  # priced: a fifth of the values inside a quarter of the rows is cheaper in that run's graph
            assert ran >= 2 * len(queries)


def test_the_planner_walks_the_run_holding_a_range_and_says_why(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col, *_ = _collection(db)
        (view,) = col._snapshot()
        ranges = view.terms.ranges["score"]
        n = ranges.order.shape[0]
        assert n == ROWS - ROWS // 50  # nulls are in no run
        assert [(r.start, r.stop, r.straddle) for r in ranges.runs] == run_bounds(n)
        cuts = [i * n // RANGE_CELLS for i in range(RANGE_CELLS + 1)]
        # 20-40 runs from the second eighth into the fourth: the run of three eighths from the second holds it
        res = col.search(clustered(1, seed=54, dim=DIM), k=10, filter="score between 20 and 40", explain=True)
        segment = res.plan[0]["segments"][0]
        assert segment["strategy"] == planner.RANGE_GRAPH
        assert segment["reason"].startswith(
            f"the straddle range graph of score over {cuts[4] - cuts[1]} rows holds every"
        ), segment["reason"]
        assert "exact_scan" in segment["alternatives_us"] and {"hnsw", "hnsw_two_hop"} & set(segment["alternatives_us"])
        # a range inside one eighth is walked in that eighth
        node = parse_filter("score between 2 and 11")
        (option,) = range_options(view, allowed_rows(view, node), node, 64, 12)
        run = holding_run(view, node)
        assert not run.straddle and (run.start, run.stop) == (0, cuts[1]) and option.args[0] == run.describe()
        (piece,) = option.detail[1]
        assert piece.graph is run and piece.how == "walk"
        # one crossing an eighth's end is walked in the pair of eighths around it
        pair = holding_run(view, parse_filter("score between 20 and 30"))
        assert pair.straddle and (pair.start, pair.stop) == (cuts[1], cuts[3])
        # the ranges of an AND on one field intersect: each alone is too wide for a run
        assert holding_run(view, parse_filter("score > 2")) is None
        held = holding_run(view, parse_filter("score > 2 and score <= 11 and cat = 'a'"))
        assert held is not None and not held.straddle and held.start == 0
        # ranges too wide for a run, on a field without range graphs, or not ranges at all: none offered
        for text in ("score between 10 and 70", "score != 3", "t < 500", "cat = 'a'", "score < 10 or cat = 'a'"):
            node = parse_filter(text)
            assert range_options(view, allowed_rows(view, node), node, 64, 12) == [], text


@settings(max_examples=300, deadline=None)
@given(n=st.integers(RANGE_CELLS, 10_000), coarse=st.booleans(), data=st.data())
def test_a_span_of_w_minus_one_cells_lies_in_a_run_of_w_cells(n, coarse, data):
    cells, shapes = (COARSE_CELLS, COARSE_SHAPES) if coarse else (RANGE_CELLS, RUN_SHAPES)
    bounds = run_bounds(n, cells, shapes)
    assert len(set(bounds)) == len(bounds) and all(0 <= a < b <= n for a, b, _ in bounds)
    start = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(start + 1, n))
    holding = [b - a for a, b, _ in bounds if a <= start and stop <= b]
    # every run wide w cells starts at every cell, for the widths laid out at every cell
    for width in (w for w, step in shapes if step == 1 and w > 1):
        if stop - start <= (width - 1) * (n // cells):
            assert holding and min(holding) <= width * n / cells + 1, (width, start, stop)


def test_fields_too_small_for_eighths_get_quarters_and_too_small_for_quarters_none():
    assert layout_for(8 * 1024, 1024) == run_bounds(8 * 1024)
    assert len(run_bounds(8 * 1024)) == 8 + 7 + 6 + 3
    assert layout_for(8 * 1024 - 1, 1024) == run_bounds(8 * 1024 - 1, COARSE_CELLS, COARSE_SHAPES)
    assert len(layout_for(4 * 1024, 1024)) == 4 + 3
    assert layout_for(4 * 1024 - 1, 1024) is None


def test_range_graphs_persist_in_the_term_graphs_file_and_a_torn_one_is_rebuilt(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col, *_ = _collection(db)
        (segment,) = col.describe()["segments"]
        # cat: four terms of a quarter each; score and seen: 24 runs each
        assert segment["term_graphs"] == "ready (52 graphs over score, cat, seen)"
        view = col._snapshot()[0]
        assert set(view.terms.ranges) == {"score", "seen"}
        assert view.terms.nbytes >= sum(r.searched.nbytes for r in view.terms.ranges.values())
    files = sorted((tmp_path / "db").glob(f"collections/r/segments/*{TERMS_SUFFIX}"))
    with vecstore.connect(tmp_path / "db") as db:
        col = db.collection("r")
        assert "term_graphs_built" not in col.stats()  # mapped, not rebuilt
        res = col.search(clustered(2, seed=55, dim=DIM), k=10, filter="score < 20", explain=True)
        assert res.plan[0]["segments"][0]["strategy"] == planner.RANGE_GRAPH
        meta, arrays = col._snapshot()[0].terms.to_arrays()
    # a file written before range graphs (no "ranges" entry) opens with none
    old = TermGraphs.from_arrays({k: v for k, v in meta.items() if k != "ranges"}, arrays, ROWS)
    assert old.ranges == {} and len(old) == 4
    torn = {k: v for k, v in arrays.items() if k != "r0.3.links0"}
    with pytest.raises(DataCorruption, match="term graphs are damaged"):
        TermGraphs.from_arrays(meta, torn, ROWS)
    # runs recorded out of step with their graphs: refused, not walked over the wrong rows
    shifted = {**meta, "ranges": [{**r, "runs": [[a + 1, b, s] for a, b, s in r["runs"]]} for r in meta["ranges"]]}
    with pytest.raises(DataCorruption, match="nodes"):
        TermGraphs.from_arrays(shifted, arrays, ROWS)
    with pytest.raises(DataCorruption, match="outside the segment"):
        TermGraphs.from_arrays(meta, arrays, 100)
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    with vecstore.connect(tmp_path / "db") as db:
        col = db.collection("r")
        assert col.stats()["term_graphs_rebuilt"] == 1
        assert col.wait_for_indexes(timeout=300)
        assert col.describe()["segments"][0]["term_graphs"].startswith("ready (52 graphs")


def test_a_file_of_quarter_runs_without_their_record_opens_as_quarters(tmp_path):
    """Files written before the runs were recorded hold the quarters' seven graphs per field; they open
    as that layout and answer ranges as before. A field whose eighths are under the minimum gets them."""
    with vecstore.connect(tmp_path / "db") as db:
        # eighths of 11,760 rows: 1,470, under 2,000; quarters: 2,940
        col, *_ = _collection(db, hnsw={"term_graph_min_rows": 2000})
        view = col._snapshot()[0]
        n = view.terms.ranges["score"].order.shape[0]
        runs = [(r.start, r.stop, r.straddle) for r in view.terms.ranges["score"].runs]
        assert runs == run_bounds(n, COARSE_CELLS, COARSE_SHAPES)
        meta, arrays = view.terms.to_arrays()
    unrecorded = {**meta, "ranges": [{k: v for k, v in r.items() if k != "runs"} for r in meta["ranges"]]}
    old = TermGraphs.from_arrays(unrecorded, arrays, ROWS)
    assert [(r.start, r.stop, r.straddle) for r in old.ranges["score"].runs] == runs
    node = parse_filter("score between 30 and 40")
    run = old.ranges["score"].holder(*_span_of(view, node))
    assert run is not None and (run.start, run.stop) == (n // 4, n // 2)


def _span_of(view, node) -> tuple[int, int]:
    positions = allowed_rows(view, node).positions
    return positions[1], positions[2]


def test_a_field_whose_runs_would_be_small_gets_no_range_graphs(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col, *_ = _collection(db, hnsw={"term_graph_min_rows": 4000})  # quarters of 11,760 rows: 2,940
        view = col._snapshot()[0]
        assert view.terms.ranges == {}
        res = col.search(clustered(1, seed=56, dim=DIM), k=10, filter="score < 20", explain=True)
        assert res.plan[0]["segments"][0]["strategy"] != planner.RANGE_GRAPH


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_range_graphs_search_their_metric(tmp_path, metric):
    with vecstore.connect(tmp_path / "db") as db:
        col, ids, vectors, _, score = _collection(db, metric=metric)
        queries = clustered(10, seed=57, dim=DIM)
        allowed = (score >= 30) & (score <= 50)
        # ef 256: inner product on these tight clusters is hard for any graph (with ef_construction 120
        # the segment graph's unfiltered search read recall 0.69 at ef 128, a quarter-layout range graph
        # 0.88 there and 0.97 at 256; the eighths' run here reads 1.0 at 256)
        res = col.search(queries, k=10, filter="score between 30 and 50", explain=True, ef=256)
        assert res.plan[0]["segments"][0]["strategy"] == planner.RANGE_GRAPH
        want, want_d = exact_search(metric, queries, vectors[allowed], ids[allowed], 10)
        assert np.isin(res.ids, ids[allowed]).all()
        assert recall(res.ids, want) >= 0.95
        hit = res.ids == want
        np.testing.assert_allclose(res.distances[hit], want_d[hit], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("attributes", "window", "names", "message"),
    [
        ({"t": "int64", "b": "bool"}, None, ["b"], "of type bool"),
        ({"t": "int64", "s": "float64"}, "t", ["t"], "window attribute 't'"),
        ({"t": "int64", "s": "float64"}, "t", ["s", "s"], "twice"),
    ],
)
def test_bad_range_graph_options_are_refused(db, attributes, window, names, message):
    with pytest.raises(InvalidArgument, match=message):
        db.create_collection("c", dim=DIM, attributes=attributes, window=window, hnsw={"term_graphs": names})
    assert db.list_collections() == []
    numeric = [name for name, kind in attributes.items() if kind != "bool" and name != window]
    db.create_collection("c", dim=DIM, attributes=attributes, window=window, hnsw={"term_graphs": numeric})
    assert db.list_collections() == ["c"]


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_the_lane_walks_a_term_or_range_graph_in_one_call_as_the_general_path(tmp_path, monkeypatch, metric):
    price_out_segment_walks(monkeypatch)
    walks = []
    term_walk = single._term_walk
    monkeypatch.setattr(single, "_term_walk", lambda *args: walks.append(args[1].how) or term_walk(*args))
    with vecstore.connect(tmp_path / "db") as db:
        col, ids, *_ = _collection(db, metric)
        queries = clustered(5, seed=55, dim=DIM)
        seen = set()
        for deleted in (False, True):  # a term's graph is walked unmasked while every row of it is live
            if deleted:
                col.delete(ids[::7])
            for text in [*FILTERS, "cat = 'b'", "cat in ('a', 'c')"]:
                for query in queries:
                    before = col.stats().get(single.LANE_COUNTER, 0)
                    lane = col.search(query, k=10, filter=text)
                    assert col.stats()[single.LANE_COUNTER] - before == 1, text
                    general = col.search(query, k=10, filter=text, explain=True)  # explain: the general path
                    np.testing.assert_array_equal(lane.ids, general.ids, err_msg=text)
                    np.testing.assert_array_equal(lane.distances, general.distances, err_msg=text)
                    assert not np.isin(lane.ids, ids[::7]).any() or not deleted
                    seen.add(general.plan[0]["segments"][0]["strategy"])
        assert {planner.RANGE_GRAPH, planner.TERM_GRAPH} <= seen
        assert "walk" in walks  # the one-call path ran (a term of several pieces takes the general one)


def test_a_range_on_a_number_is_a_slice_of_its_value_order_equal_to_the_payload_evaluation(tmp_path):
    """A range's rows are kept as positions of the field's value order, listed and masked only when a
    path asks: whatever it asks, the answer is the payload index's evaluation of the same filter, with
    deleted rows left out; and a range graph masks its nodes by those positions as by the rows."""
    with vecstore.connect(tmp_path / "db") as db:
        col, ids, *_ = _collection(db)
        col.delete(ids[::7])
        (view,) = col._snapshot()
        assert view.live is not None
        texts = ["score between 20 and 40", "score < 12", "score >= 61.5", "score = 50", "score > 99.99",
                 "seen >= '2020-03-01T00:00:00'", "score between 30 and 10"]  # fmt: skip
        for text in texts:
            node = parse_filter(text)
            kept = allowed_rows(view, node)
            assert kept.positions is not None and kept.positions[0] in ("score", "seen"), text
            want, want_mask = matching(node, view.payload, view.live)
            assert kept.count == want.shape[0], text
            if kept.count:
                assert kept.bounds == (int(want[0]), int(want[-1]) + 1), text
            np.testing.assert_array_equal(kept.mask(view.num_rows), want_mask, err_msg=text)
            np.testing.assert_array_equal(kept.offsets, want, err_msg=text)
            np.testing.assert_array_equal(kept.sample(16), want[np.arange(min(16, want.shape[0])) * max(
                want.shape[0] - 1, 0) // max(min(16, want.shape[0]) - 1, 1)], err_msg=text)  # fmt: skip
            run = holding_run(view, node)
            if run is not None:
                np.testing.assert_array_equal(run_node_mask(view, kept, run), want_mask[run.rows], err_msg=text)
        # not one range on a number: found as before, with no positions
        for text in ("score != 3", "score in (1, 2)", "cat = 'a'", "score < 10 or cat = 'a'"):
            assert allowed_rows(view, parse_filter(text)).positions is None, text
