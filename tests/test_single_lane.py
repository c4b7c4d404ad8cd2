"""The single-query lane (``engine/single.py``): its window kernel against numpy, its row limit against
the planner, and its answers against the general path and the exact oracle over the allowed rows."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vecstore
from tests.oracles import assert_same_neighbours, exact_search, filter_mask
from vecstore.core.exact import COSINE, IP, L2, exact_topk, row_norms, window_copy_topk_one, window_topk_one
from vecstore.engine import graphs, planner, search, single
from vecstore.engine.single import LANE_COUNTER
from vecstore.errors import InvalidArgument
from vecstore.filters import parse_filter

DIM = 8
NO_DELETES = np.zeros(0, dtype=np.bool_)
NO_TERM = np.zeros(0, dtype=np.int64)


@st.composite
def window_cases(draw):
    n = draw(st.integers(0, 60))
    floats = draw(st.booleans())
    raw = draw(st.lists(st.integers(-5, 25), min_size=n, max_size=n))
    values = np.sort(np.asarray(raw, dtype=np.float64 if floats else np.int64))
    bound = st.integers(-8, 28).map(float if floats else int)
    low, high = draw(bound), draw(bound)
    live = NO_DELETES if draw(st.booleans()) else np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)),
                                                             dtype=np.bool_)  # fmt: skip
    flags = draw(st.tuples(*[st.booleans()] * 4))
    # one term's rows, as the payload index lists them (ascending), or None: the window alone
    term = draw(st.none() | st.lists(st.booleans(), min_size=n, max_size=n).map(lambda b: np.flatnonzero(b)))
    return values, low, high, flags, live, term, draw(st.integers(1, 12)), draw(st.sampled_from([L2, IP, COSINE]))


@settings(max_examples=150, deadline=None)
@given(window_cases(), st.integers(0, 70))
def test_window_kernel_equals_searchsorted_then_the_exact_scan(case, max_rows):
    values, low, high, (low_open, has_low, high_open, has_high), live, term, k, metric = case
    n = values.shape[0]
    rng = np.random.default_rng(n)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    query = rng.standard_normal(DIM).astype(np.float32)
    keys = rng.permutation(3 * n + 1)[:n].astype(np.int64)
    norms = row_norms(vectors, metric)
    sq, rows, offsets, ids, distances = window_topk_one(
        values, low, low_open, has_low, high, high_open, has_high, NO_TERM if term is None else term,
        term is not None, live, max_rows, vectors, norms, query, keys, k, metric,
    )  # fmt: skip
    lo = int(np.searchsorted(values, low, "right" if low_open else "left")) if has_low else 0
    hi = int(np.searchsorted(values, high, "left" if high_open else "right")) if has_high else n
    hi = max(lo, hi)
    want_offsets = np.arange(lo, hi, dtype=np.int64)
    if term is not None:
        want_offsets = want_offsets[np.isin(want_offsets, term)]
    assert sq == pytest.approx(float(np.dot(query.astype(np.float64), query.astype(np.float64))))
    span = want_offsets.shape[0]
    if live.shape[0]:
        want_offsets = want_offsets[live[want_offsets]]
    if span > max_rows:  # too many rows (deleted ones count): nothing scanned, the rows handed back
        assert (ids == -1).all() and np.isinf(distances).all()
        if term is None and not live.shape[0]:  # a run of live rows: its bounds, not its rows
            assert rows == -2
            np.testing.assert_array_equal(offsets, [[lo, hi]])
        else:
            assert rows == -1
            np.testing.assert_array_equal(offsets, want_offsets[None, :])
        return
    assert rows == want_offsets.shape[0]
    batch_offsets, batch_distances = exact_topk(vectors, norms, query[None], want_offsets, keys, k, metric)
    np.testing.assert_array_equal(offsets, batch_offsets)
    np.testing.assert_array_equal(distances, batch_distances)
    np.testing.assert_array_equal(ids, [[keys[o] if o >= 0 else -1 for o in offsets[0]]])
    metric_name = {L2: "l2", IP: "ip", COSINE: "cosine"}[metric]
    want_ids, want_d = exact_search(metric_name, query[None], vectors[want_offsets], keys[want_offsets], k)
    assert_same_neighbours(ids, distances, want_ids, want_d, rtol=2e-4, atol=2e-3)


@settings(max_examples=150, deadline=None)
@given(window_cases(), st.integers(0, 70))
def test_window_kernel_over_a_terms_copy_equals_the_one_over_the_segment(case, max_rows):
    """``window_copy_topk_one`` reads the term's rows from a gathered copy (its term graph's), in l2:
    every output equals ``window_topk_one``'s over the segment's rows, bit for bit (which is tested
    against numpy above), including the rows handed back when there are too many to scan."""
    values, low, high, (low_open, has_low, high_open, has_high), live, term, k, _ = case
    n = values.shape[0]
    term = np.flatnonzero(np.random.default_rng(n + 1).random(n) < 0.4) if term is None else term
    rng = np.random.default_rng(n)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors[1::3] = vectors[0] if n else vectors[1::3]  # equal distances: ties broken by key
    query = rng.standard_normal(DIM).astype(np.float32)
    keys = rng.permutation(3 * n + 1)[:n].astype(np.int64)
    bounds = (low, low_open, has_low, high, high_open, has_high)
    want = window_topk_one(values, *bounds, term, True, live, max_rows, vectors, row_norms(vectors, L2), query, keys,
                           k, L2)  # fmt: skip
    copy = np.ascontiguousarray(vectors[term])
    got = window_copy_topk_one(values, *bounds, term, live, max_rows, copy, query, keys, k)
    assert got[0] == want[0] and got[1] == want[1]
    for a, b in zip(got[2:], want[2:], strict=True):
        np.testing.assert_array_equal(a, b)


def test_window_kernel_reports_a_query_that_is_not_finite():
    values = np.arange(10, dtype=np.int64)
    vectors = np.ones((10, DIM), dtype=np.float32)
    query = np.full(DIM, np.nan, dtype=np.float32)
    sq, rows, *_ = window_topk_one(values, 2, False, True, 4, False, True, NO_TERM, False, NO_DELETES, 100,
                                   vectors, row_norms(vectors, L2), query, np.arange(10), 3, L2)  # fmt: skip
    assert np.isnan(sq) and rows == -1
    sq, rows, *_ = window_copy_topk_one(values, 2, False, True, 4, False, True, np.arange(0, 10, 2), NO_DELETES, 100,
                                        vectors[::2].copy(), query, np.arange(10), 3)  # fmt: skip
    assert np.isnan(sq) and rows == -1


@pytest.mark.parametrize("dim", [16, 128, 784, 1536])
@pytest.mark.parametrize(("ef", "m"), [(10, 16), (64, 16), (200, 8)])
def test_scan_row_limit_is_where_the_planner_stops_scanning_without_weighing_graphs(dim, ef, m):
    limit = planner.scan_row_limit(dim, ef, m)
    assert limit > 0
    for rows in (1, limit - 1, limit, limit + 1, 2 * limit + 5):
        plan, _ = planner.plan_segment("s", rows, 10**7, "window_slice", exact_requested=False,
                                       graph_rows=10**7, ef=ef, m=m, dim=dim)  # fmt: skip
        scanned_outright = (
            plan.strategy == planner.EXACT_SCAN and plan.why == "exact scan of {} rows is cheaper than any graph search"
        )
        assert scanned_outright == (rows <= limit), (rows, limit, plan.reason)


def _clustered_plan(rows: int, graph_rows: int, dim: int, lift: float | None):
    """plan_segment for ``rows`` allowed of a graph of ``graph_rows``; ``lift`` None: a clustering that
    must not be sampled."""

    def clustering() -> float:
        assert lift is not None, "the lift was sampled where it could not change the choice"
        return lift

    return planner.plan_segment("s", rows, graph_rows, "payload_index", exact_requested=False, graph_rows=graph_rows,
                                ef=40, m=16, dim=dim, clustering=clustering)  # fmt: skip


def test_the_filter_lift_is_sampled_only_where_it_can_change_the_choice():
    dim, graph_rows = 64, 100_000
    scan = planner.exact_cost
    walk = lambda rows: planner.masked_graph_option(rows, graph_rows, 40, 16, planner.float_distance_scale(dim))[1]  # noqa: E731
    # half the rows: the masked walk wins even if every link stayed inside the filter (lift 2)
    assert walk(50_000) * 2 < scan(50_000, dim)
    plan, _ = _clustered_plan(50_000, graph_rows, dim, None)
    assert plan.strategy == planner.HNSW
    # 30% of the rows: the unlifted walk wins, a lift of 3 prices it above the scan: sampled, and it decides
    assert walk(30_000) < scan(30_000, dim) < walk(30_000) * 3
    plan, _ = _clustered_plan(30_000, graph_rows, dim, 3.0)
    assert plan.strategy == planner.EXACT_SCAN
    (lifted,) = [o for o in plan.alternatives if o.strategy == planner.HNSW]
    assert "linked 3.0x more" in lifted.reason and lifted.cost_ns == pytest.approx(walk(30_000) * 3)
    # a lift below the threshold counts as a random filter
    plan, _ = _clustered_plan(30_000, graph_rows, dim, 1.2)
    assert plan.strategy == planner.HNSW
    # a fifth of the rows: the walk loses to the scan anyway, so no sample
    assert walk(20_000) > scan(20_000, dim)
    plan, _ = _clustered_plan(20_000, graph_rows, dim, None)
    assert plan.strategy == planner.EXACT_SCAN


def test_a_two_hop_walk_withdrawn_by_the_lift_says_so_in_the_reason():
    """8% of the rows clears the two-hop floor (4.7% at m=16); linked 3x more to each other, a query
    outside their region meets 2.7%, so the walk is withdrawn and the reason names the lift, not a
    share that contradicts the floor it quotes."""
    dim, graph_rows = 1536, 100_000
    assert 8_000 / graph_rows > planner.two_hop_floor(16) > 8_000 / graph_rows / 3
    plan, _ = _clustered_plan(8_000, graph_rows, dim, 3.0)
    assert plan.strategy == planner.EXACT_SCAN and not plan.alternatives
    assert plan.reason == (
        "filter allows 8.00% of the graph's rows, linked 3.0x more to each other than random rows: "
        "2.67% near a query, below 4.7% (m=16)"
    )
    plan, _ = _clustered_plan(4_000, graph_rows, dim, None)  # under the floor as it stands: no lift sampled
    assert plan.reason == "filter allows 4.00% of the graph's rows, below 4.7% (m=16)"


def test_a_walk_over_codes_is_priced_by_the_filters_lift_as_the_float_walk_is():
    """The codes' walk crosses the segment graph the float walk crosses: under a clustered filter it is as
    many times dearer, so a term graph that the lift puts ahead of both is chosen (fashion-mnist classes
    walked over sq8 codes ran at 0.4x their term graphs' speed)."""
    dim, rows, graph_rows = 784, 30_000, 100_000
    codes = planner.quantized_graph_option(rows, graph_rows, 40, 16, "sq8", dim, dim, 10, 1.0, True)
    floats = planner.masked_graph_option(rows, graph_rows, 40, 16, planner.float_distance_scale(dim))[1]
    assert codes is not None and codes.cost_ns < floats
    term_ns = codes.cost_ns * 2  # dearer than the codes' walk, cheaper than it at a lift of 3
    term = planner.Option(planner.TERM_GRAPH, term_ns, "graphs of the terms")

    def plan(lift: float):
        return planner.plan_segment("s", rows, graph_rows, "payload_index", exact_requested=False,
                                    graph_rows=graph_rows, ef=40, m=16, dim=dim, tree_options=lambda: [term],
                                    quantized_graph=codes, clustering=lambda: lift)  # fmt: skip

    chosen, _ = plan(3.0)
    assert chosen.strategy == planner.TERM_GRAPH
    (walk,) = [o for o in chosen.alternatives if o.strategy == planner.QUANTIZED_HNSW]
    assert walk.cost_ns == pytest.approx(codes.cost_ns * 3) and "linked 3.0x more" in walk.reason
    chosen, _ = plan(1.2)  # below the threshold: a random filter, the codes' walk as priced
    assert chosen.strategy == planner.QUANTIZED_HNSW and chosen.estimated_ns == pytest.approx(codes.cost_ns)


def test_an_unfiltered_sq8_collection_walks_its_codes_at_1536_dimensions():
    """jeopardy's sq8 collection walked its codes at 1.35-1.55x the float walk's speed at equal recall; a
    width term taken from float rows priced the codes' walk at or above the float walk, which then ran."""
    dim, rows = 1536, 9_900
    for ef in (10, 14, 20, 28):
        codes = planner.quantized_graph_option(rows, rows, ef, 16, "sq8", dim, dim, 10, 1.0, True)  # sq8 default
        chosen, _ = planner.plan_segment("s", rows, rows, "all_rows", exact_requested=False, graph_rows=rows, ef=ef,
                                         m=16, dim=dim, quantized_graph=codes)  # fmt: skip
        assert chosen.strategy == planner.QUANTIZED_HNSW, (ef, chosen.reason, chosen.alternatives)
        (floats,) = [o for o in chosen.alternatives if o.strategy == planner.HNSW]
        assert 1.2 < floats.cost_ns / chosen.estimated_ns < 1.8


def _strings(ids: np.ndarray) -> dict[str, list]:
    """A string column (null every 11th row) and a tag list (empty every 9th, null every 13th)."""
    c = [None if i % 11 == 0 else f"c{i % 5}" for i in ids]
    tags = [None if i % 13 == 0 else [] if i % 9 == 0 else [f"x{i % 3}", f"y{i % 4}"] for i in ids]
    return {"c": c, "tags": tags}


def _windowed(db, name: str, window_kind: str, metric: str, seed: int):
    """Three sealed segments sorted by ``t`` (some rows deleted, some replaced) and appendable rows."""
    rng = np.random.default_rng(seed)
    attributes = {"t": window_kind, "g": "int64", "c": "string", "tags": "list<string>"}
    col = db.create_collection(name, dim=DIM, metric=metric, attributes=attributes, window="t")
    rows = {}
    for part in range(4):
        ids = np.arange(part * 300, part * 300 + 300)
        if window_kind == "timestamp":
            t = np.datetime64("2024-03-01T00:00:00", "us") + rng.integers(0, 200, 300).astype("timedelta64[h]")
        else:
            t = rng.integers(0, 200, 300).astype(np.int64 if window_kind == "int64" else np.float64)
            if window_kind == "float64":
                t = t + 0.5
        vectors = rng.standard_normal((300, DIM)).astype(np.float32)
        col.upsert(ids, vectors, {"t": t, "g": ids % 7, **_strings(ids)})
        if part < 3:
            col.seal()
        rows.update({int(i): (v, tv, int(i) % 7) for i, v, tv in zip(ids, vectors, t, strict=True)})
    replaced = np.arange(10, 900, 37)
    new_vectors = rng.standard_normal((replaced.shape[0], DIM)).astype(np.float32)
    t_new = {int(i): rows[int(i)][1] for i in replaced}
    col.upsert(replaced, new_vectors, {"t": np.asarray([t_new[int(i)] for i in replaced]), "g": replaced % 7,
                                       **_strings(replaced)})  # fmt: skip
    for i, v in zip(replaced, new_vectors, strict=True):
        rows[int(i)] = (v, t_new[int(i)], int(i) % 7)
    deleted = np.arange(3, 1200, 11)
    col.delete(deleted)
    for i in deleted:
        rows.pop(int(i), None)
    return col, rows


def _bound(window_kind: str, hours: int) -> str:
    if window_kind == "timestamp":
        return repr(str(np.datetime64("2024-03-01T00:00:00", "us") + np.timedelta64(hours, "h")))
    return str(hours + 0.5) if window_kind == "float64" else str(hours)


FILTERS = [
    "t between {a} and {b}",
    "t >= {a} and t < {b}",
    "t > {a} and t <= {b}",
    "t = {a}",
    "t >= {a} and t > {a} and t <= {b}",  # one bound twice: the strict one wins
    "t < {b} and t >= {a} and t <= {b}",
    "t < {a}",
    "t > {b} and t < {a}",  # empty
    "t between {a} and {b} and g = 3",  # the payload path inside the lane
    "g = 5",
    "t between {a} and {b} and c = 'c2'",  # a window and one term: one kernel call
    "c in ('c4') and t >= {a} and t < {b}",
    "t between {a} and {b} and tags contains 'y1'",
    "t between {a} and {b} and c = 'absent'",
    "t > {a} and c in ('c1', 'c3')",  # two terms: the rows come from the usual lookup
]


@pytest.mark.parametrize(("window_kind", "metric"), [("int64", "l2"), ("float64", "cosine"), ("timestamp", "ip")])
def test_lane_answers_as_the_general_path_and_the_oracle(tmp_path, window_kind, metric):
    rng = np.random.default_rng(5)
    with vecstore.connect(tmp_path / "db") as db:
        col, rows = _windowed(db, "w", window_kind, metric, seed=len(window_kind))
        ids = np.asarray(sorted(rows))
        vectors = np.stack([rows[i][0] for i in ids])
        strings = _strings(ids)
        table = [{"t": rows[i][1].item(), "g": rows[i][2], "c": c, "tags": tags}  # datetime64[us].item(): a datetime
                 for i, c, tags in zip(ids, strings["c"], strings["tags"], strict=True)]  # fmt: skip
        before = col.stats().get(LANE_COUNTER, 0)
        searches = 0
        for template in FILTERS:
            for _ in range(6):
                a = int(rng.integers(-5, 200))
                text = template.format(a=_bound(window_kind, a), b=_bound(window_kind, a + int(rng.integers(0, 12))))
                query = rng.standard_normal(DIM).astype(np.float32)
                k = int(rng.integers(1, 15))
                lane = col.search(query, k=k, filter=text)
                searches += 1
                general = col.search(query, k=k, filter=text, explain=True)  # explain takes the general path
                np.testing.assert_array_equal(lane.ids, general.ids, err_msg=text)
                np.testing.assert_array_equal(lane.distances, general.distances, err_msg=text)
                assert lane.strategy == general.strategy
                types = {"t": window_kind, "g": "int64", "c": "string", "tags": "list<string>"}
                allowed = filter_mask(parse_filter(text), table, types)
                want_ids, want_d = exact_search(metric, query[None], vectors[allowed], ids[allowed], k)
                assert_same_neighbours(lane.ids, lane.distances, want_ids, want_d, rtol=2e-4, atol=2e-3)
        assert col.stats()[LANE_COUNTER] - before == searches  # every one of them took the lane


def test_lane_runs_scans_graph_walks_and_window_tree_searches_as_the_general_path(
    tmp_path, graphs_priced_in, monkeypatch
):
    rng = np.random.default_rng(8)
    postfilters = []  # rows allowed in each one-call bucket walk
    postfilter_walk = single._postfilter_walk
    monkeypatch.setattr(
        single,
        "_postfilter_walk",
        lambda view, allowed, *rest: postfilters.append(allowed.count) or postfilter_walk(view, allowed, *rest),
    )
    hnsw = {"m": 8, "ef_construction": 40, "ef": 32, "window_tree_beta": 4, "window_tree_leaf_rows": 700}
    with vecstore.connect(tmp_path / "db") as db:
        attributes = {"t": "int64", "g": "int64", "c": "string"}
        col = db.create_collection("w", dim=DIM, attributes=attributes, window="t", hnsw=hnsw)
        vectors = rng.standard_normal((6000, DIM)).astype(np.float32)  # enough rows for a graph and a tree
        c = [f"c{i % 3}" for i in range(6000)]
        col.upsert(np.arange(6000), vectors, {"t": rng.permutation(6000), "g": np.arange(6000) % 10, "c": c})
        col.seal()
        assert col.wait_for_indexes(timeout=300)
        assert col.describe()["segments"][0]["window_tree"].startswith("ready")
        seen = set()
        # first with every row live (a broad window is then planned from its bounds alone, and one of
        # every row walks unmasked), then with deletes (its live rows are listed)
        for width in (1, 30, 300, 1000, 2500, 4000, 5999, 6000, -1, 1, 300, 2500, 4000, 5999, 6000):
            if width == -1:
                col.delete(np.arange(0, 6000, 13))
                continue
            low = int(rng.integers(0, 6000 - width + 1))
            window = f"t >= {low} and t < {low + width}"
            for text in (window, f"{window} and c = 'c1'", "g in (1, 2, 3, 4, 5)", "g = 7"):
                query = rng.standard_normal(DIM).astype(np.float32)
                before = col.stats().get(LANE_COUNTER, 0)
                lane = col.search(query, k=10, filter=text)
                took_lane = col.stats().get(LANE_COUNTER, 0) - before
                general = col.search(query, k=10, filter=text, explain=True)
                (segment,) = general.plan[0]["segments"]
                np.testing.assert_array_equal(lane.ids, general.ids, err_msg=text)
                np.testing.assert_array_equal(lane.distances, general.distances, err_msg=text)
                assert lane.strategy == general.strategy
                assert took_lane == 1, (text, segment)
                seen.add(segment["strategy"])
                if col.count() < 6000:
                    assert not np.isin(lane.ids, np.arange(0, 6000, 13)).any()
                if text == "t >= 0 and t < 6000":  # cuts nothing: the walk is unfiltered search's
                    unfiltered = col.search(query, k=10)
                    np.testing.assert_array_equal(lane.ids, unfiltered.ids)
                    np.testing.assert_array_equal(lane.distances, unfiltered.distances)
        assert {planner.EXACT_SCAN, planner.HNSW} <= seen  # scans, walks ...
        assert seen & set(planner.WINDOW_STRATEGIES), seen  # ... and the window tree
        assert planner.WINDOW_POSTFILTER in seen and postfilters  # its postfilter walked in one call


def test_bad_input_through_the_lane_gets_the_general_errors_and_loses_nothing(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("w", dim=DIM, metric="cosine", attributes={"t": "int64", "c": "string"}, window="t")
        col.upsert(np.arange(100), np.random.default_rng(1).standard_normal((100, DIM)),
                   {"t": np.arange(100), "c": ["a", "b"] * 50})  # fmt: skip
        col.seal()
        window = "t between 3 and 9"
        bad = np.ones(DIM, dtype=np.float32)
        bad[2] = np.nan
        # a window (its kernel checks the query), a term's rows and an OR (checked before their scans)
        for text in (window, "c = 'a'", "t < 5 or c = 'b'"):
            with pytest.raises(InvalidArgument, match="NaN or infinity"):
                col.search(bad, filter=text)
            with pytest.raises(InvalidArgument, match="all zeros"):
                col.search(np.zeros(DIM, dtype=np.float32), filter=text)
            with pytest.raises(InvalidArgument, match="too large"):
                col.search(np.full(DIM, 3e19, dtype=np.float32), filter=text)
        with pytest.raises(InvalidArgument, match="unknown field"):
            col.search(np.ones(DIM, dtype=np.float32), filter="nope between 1 and 2")
        with pytest.raises(InvalidArgument):
            col.search(np.ones(DIM, dtype=np.float32), filter="t between 'x' and 2")
        assert LANE_COUNTER not in col.stats()
        result = col.search(np.ones(DIM, dtype=np.float32), k=20, filter=window)
        assert sorted(result.ids[0][result.ids[0] >= 0].tolist()) == list(range(3, 10))
        assert col.count() == 100


@pytest.mark.parametrize("dim", [16, 784])
@pytest.mark.parametrize("exact", [False, True])
def test_whole_segment_strategy_is_the_planners_choice(dim, exact):
    for live in (0, 1, 50, 4_000, 30_000, 200_000):
        for graph_rows in (None, live, 2 * live + 1, 30 * live + 1):
            for ef, m in ((10, 16), (64, 8), (400, 32)):
                plan, _ = planner.plan_segment("s", live, live, "all_live_rows", exact_requested=exact,
                                               graph_rows=graph_rows, ef=ef, m=m, dim=dim)  # fmt: skip
                got = planner.whole_segment_strategy(live, graph_rows, ef, m, dim, exact)
                assert got == plan.strategy, (live, graph_rows, ef, m, plan.reason)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_unfiltered_lane_walks_the_graph_as_the_general_path_does(tmp_path, metric, graphs_priced_in):
    rng = np.random.default_rng(12)
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("u", dim=DIM, metric=metric, hnsw={"m": 8, "ef_construction": 40, "ef": 16})
        vectors = rng.standard_normal((6000, DIM)).astype(np.float32)
        col.upsert(np.arange(6000), vectors)
        col.seal()
        assert col.wait_for_indexes(timeout=300)
        col.delete(np.arange(0, 6000, 5))  # the walk masks deleted rows
        col.upsert(np.arange(6000, 6050), rng.standard_normal((50, DIM)))  # appendable rows: scanned, merged
        strategies = set()
        for _ in range(30):
            query = rng.standard_normal(DIM).astype(np.float32)
            k = int(rng.integers(1, 20))
            lane = col.search(query, k=k)
            general = col.search(query, k=k, explain=True)
            np.testing.assert_array_equal(lane.ids, general.ids)
            np.testing.assert_array_equal(lane.distances, general.distances)
            assert lane.strategy == general.strategy
            assert not np.isin(lane.ids, np.arange(0, 6000, 5)).any()
            strategies.add(lane.strategy)
        assert strategies == {"mixed"}  # the graph segment walked, the appendable rows scanned
        assert col.stats()[LANE_COUNTER] == 30
        bad = np.ones(DIM, dtype=np.float32)
        bad[0] = np.inf
        with pytest.raises(InvalidArgument, match="NaN or infinity"):
            col.search(bad)
        if metric == "cosine":
            with pytest.raises(InvalidArgument, match="all zeros"):
                col.search(np.zeros(DIM, dtype=np.float32))
        assert col.stats()[LANE_COUNTER] == 30


def test_a_window_and_one_term_is_one_kernel_call_per_sealed_segment(tmp_path, monkeypatch):
    from vecstore.engine import single

    rng = np.random.default_rng(21)
    with vecstore.connect(tmp_path / "db") as db:
        attributes = {"t": "int64", "g": "int64", "c": "string", "tags": "list<string>"}
        col = db.create_collection("w", dim=DIM, attributes=attributes, window="t")
        for part in range(2):
            ids = np.arange(part * 500, part * 500 + 500)
            col.upsert(ids, rng.standard_normal((500, DIM)), {"t": rng.integers(0, 100, 500), "g": ids % 7,
                                                               **_strings(ids)})  # fmt: skip
            col.seal()
        col.delete(np.arange(0, 1000, 6))
        filters = ["t between 20 and 30 and c = 'c1'", "tags contains 'x2' and t < 9", "t >= 50 and c = 'nowhere'"]
        want = [col.search(np.ones(DIM, dtype=np.float32), k=7, filter=f, explain=True) for f in filters]

        def no_lookup(view, node):
            raise AssertionError(f"the lane looked up the rows of {node} instead of slicing the term's list")

        monkeypatch.setattr(single, "allowed_rows", no_lookup)
        before = col.stats().get(LANE_COUNTER, 0)
        for text, general in zip(filters, want, strict=True):
            lane = col.search(np.ones(DIM, dtype=np.float32), k=7, filter=text)
            np.testing.assert_array_equal(lane.ids, general.ids, err_msg=text)
            np.testing.assert_array_equal(lane.distances, general.distances, err_msg=text)
            assert not np.isin(lane.ids, np.arange(0, 1000, 6)).any()
        assert col.stats()[LANE_COUNTER] - before == len(filters)


def test_a_window_and_a_term_with_a_graph_scans_that_graphs_copy_of_the_terms_rows(tmp_path, monkeypatch):
    """In an l2 collection, a window AND a term that has a term graph is scanned over the graph's copy of
    the term's rows (the term's rows inside the window are one run of it), and answers exactly as the
    general path and the oracle over the allowed live rows do, also once the graphs are reopened from
    disk. A cosine collection's copies hold unit rows, so there the segment's rows are scanned."""
    copies = Counter()
    real = single.window_copy_topk_one

    def counted(*args):
        copies["calls"] += 1
        return real(*args)

    monkeypatch.setattr(single, "window_copy_topk_one", counted)
    rng = np.random.default_rng(61)
    n = 6000
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors[100:140] = vectors[99]  # equal distances: ties broken by id
    terms = np.where(rng.random(n) < 0.2, "c0", np.where(rng.random(n) < 0.5, "c1", "c2"))
    t = rng.permutation(n)
    deleted = np.arange(0, n, 13)
    live = ~np.isin(np.arange(n), deleted)
    hnsw = {"m": 8, "ef_construction": 40, "term_graphs": ["c"], "term_graph_min_rows": 600}
    for metric in ("l2", "cosine"):
        copies.clear()
        with vecstore.connect(tmp_path / metric) as db:
            col = db.create_collection("w", dim=DIM, metric=metric, attributes={"t": "int64", "c": "string"},
                                       window="t", hnsw=hnsw)  # fmt: skip
            col.upsert(np.arange(n), vectors, {"t": t, "c": terms.tolist()})
            col.seal()
            assert col.wait_for_indexes(timeout=300)
            col.delete(deleted)
            (view,) = col._snapshot()
            assert view.terms is not None and view.terms.get("c", "c0") is not None
        for reopened in (False, True):
            with vecstore.connect(tmp_path / metric) as db:
                col = db.collection("w")
                if not reopened:  # the same collection, its graphs as built; then read back from disk
                    assert col.describe()["segments"][0]["term_graphs"].startswith("ready")
                for _ in range(15):
                    low = int(rng.integers(0, n - 1500))
                    high = low + int(rng.integers(1, 1500))
                    term = str(rng.choice(["c0", "c1", "c2"]))
                    text = f"t >= {low} and t < {high} and c = '{term}'"
                    query = rng.standard_normal(DIM).astype(np.float32)
                    lane = col.search(query, k=10, filter=text)
                    general = col.search(query, k=10, filter=text, explain=True)
                    np.testing.assert_array_equal(lane.ids, general.ids, err_msg=text)
                    np.testing.assert_array_equal(lane.distances, general.distances, err_msg=text)
                    allowed = np.flatnonzero(live & (t >= low) & (t < high) & (terms == term))
                    want_ids, want_d = exact_search(metric, query[None], vectors[allowed], allowed.astype(np.int64), 10)
                    assert_same_neighbours(lane.ids, lane.distances, want_ids, want_d, rtol=2e-4, atol=2e-3)
        assert (copies["calls"] > 0) == (metric == "l2"), (metric, copies)


def test_a_batch_sends_each_query_alone_with_its_filter_through_the_lane(tmp_path):
    rng = np.random.default_rng(31)
    with vecstore.connect(tmp_path / "db") as db:
        col, _ = _windowed(db, "w", "int64", "l2", seed=4)
        queries = rng.standard_normal((12, DIM)).astype(np.float32)
        filters = [f"t between {a} and {a + 9}" for a in range(0, 80, 10)]  # eight queries alone with a filter
        filters += ["g = 5", "g = 5", None, "t between 3 and 9 and c = 'c2'"]  # two share one
        before = col.stats().get(LANE_COUNTER, 0)
        batch = col.search(queries, k=6, filter=filters)
        assert col.stats()[LANE_COUNTER] - before == 10
        for i, text in enumerate(filters):
            alone = col.search(queries[i], k=6, filter=text, explain=True)  # the general path, one by one
            np.testing.assert_array_equal(batch.ids[i], alone.ids[0], err_msg=str(text))
            np.testing.assert_array_equal(batch.distances[i], alone.distances[0], err_msg=str(text))
        explained = col.search(queries, k=6, filter=filters, explain=True)  # explain keeps the general path
        np.testing.assert_array_equal(explained.ids, batch.ids)
        assert all(entry["segments"] for entry in explained.plan)
        assert col.stats()[LANE_COUNTER] - before == 10


@pytest.mark.parametrize("term_graphs", [False, True])
def test_rows_no_graph_option_can_undercut_are_scanned_without_planning(
    tmp_path, monkeypatch, graphs_priced_in, term_graphs
):
    """``outright_scan_limit`` over the smallest graph a filter may walk (a window-tree bucket, or for a
    filter reading a field with term or range graphs a term's graph when that is smaller): for every
    window, window-and-term and range filter allowing at most that many rows, the planner (tree, term
    and range options included, one query) scans; the lane scans them without asking it. Above the
    limit some filters do get a graph, so the bound is not vacuous."""
    from vecstore.engine.allowed import allowed_rows
    from vecstore.engine.search import plan_view

    rng = np.random.default_rng(41)
    hnsw = {"m": 12, "ef_construction": 40, "ef": 10, "window_tree_beta": 4, "window_tree_leaf_rows": 700}
    if term_graphs:  # c0 on 15% of the rows: its graph (about 900 rows) is smaller than a tree bucket
        hnsw |= {"term_graphs": ["c", "s"], "term_graph_min_rows": 600}
    with vecstore.connect(tmp_path / "db") as db:
        attributes = {"t": "int64", "c": "string", "s": "float64"}
        col = db.create_collection("w", dim=DIM, attributes=attributes, window="t", hnsw=hnsw)
        terms = np.where(rng.random(6000) < 0.15, "c0", np.where(rng.random(6000) < 0.5, "c1", "c2")).tolist()
        col.upsert(np.arange(6000), rng.standard_normal((6000, DIM)),
                   {"t": rng.permutation(6000), "c": terms, "s": rng.random(6000)})  # fmt: skip
        col.seal()
        assert col.wait_for_indexes(timeout=300)
        col.delete(np.arange(0, 6000, 17))
        (view,) = col._snapshot()
        assert view.tree is not None and view.tree.smallest_graph_rows == 1500
        assert (view.terms is not None) == term_graphs
        smallest = 1500
        if term_graphs:
            # c0's graph, or an eighth of s's value order (750 rows) where that is smaller
            sizes = [g.num_rows for g in view.terms.graphs.values()]
            smallest = min(sizes + [run.num_rows for run in view.terms.ranges["s"].runs])
            assert smallest < 1000 and view.terms.smallest_graph_rows == smallest and view.terms.ranges
        ef, m = 10, hnsw["m"]
        serial = single.PARALLEL_SCAN_MIN_ROWS - 1
        # a window alone walks no term or range graph, so only the tree's buckets bound it
        window_limit = planner.outright_scan_limit(DIM, ef, m, 1500, planner.TREE_SPLIT_CALL_NS)
        limit = planner.outright_scan_limit(DIM, ef, m, smallest, planner.TREE_SPLIT_CALL_NS)
        window, term = parse_filter("t >= 10 and t < 20"), parse_filter("t >= 10 and t < 20 and c = 'c0'")
        assert single._row_limit(view, window, DIM, ef, m, False, 10, 1.0, False) == min(window_limit, serial)
        assert single._row_limit(view, term, DIM, ef, m, False, 10, 1.0, False) == min(limit, serial)
        assert limit > planner.scan_row_limit(DIM, ef, m)  # wider than the planner's own quick limit here
        if term_graphs:
            assert window_limit > limit  # the term graphs narrow only the filters that read their fields

        def limit_of(node):
            return window_limit if not any(search.reads_term_graphs(view, node)) else limit

        filters = []
        widths = {1, limit // 2, limit - 8, limit, limit + 8, limit + 40, 2 * limit, 3 * limit, 1400}
        widths |= {window_limit - 8, window_limit, window_limit + 8}
        for width in sorted(widths):
            low = int(rng.integers(0, 6000 - width))
            filters += [f"t >= {low} and t < {low + width}", f"t >= {low} and t < {low + 7 * width} and c = 'c0'"]
            start = float(rng.random() * (1 - width / 6000))
            filters.append(f"s >= {start} and s < {start + width / 6000}")
        graphs_above = Counter()
        for text in filters:
            node = parse_filter(text)
            rows = allowed_rows(view, node).offsets.shape[0]
            bound = limit_of(node)
            plan, _ = plan_view(view, allowed_rows(view, node), k=10, ef=ef, m=m, dim=DIM, exact=False,
                                oversampling=1.0, rescore=True, queries=1, node=node)  # fmt: skip
            if rows <= bound:
                assert plan.strategy in (planner.EXACT_SCAN, planner.EMPTY), (text, rows, bound, plan.to_dict())
            elif plan.strategy != planner.EXACT_SCAN:
                graphs_above[plan.strategy] += 1
        assert graphs_above, "no filter above the limit got a graph: the test does not probe the bound"
        if term_graphs:
            assert graphs_above[planner.TERM_GRAPH] and graphs_above[planner.RANGE_GRAPH], graphs_above

        def no_planning(*args, **kwargs):
            raise AssertionError("the lane planned rows no graph option could undercut")

        monkeypatch.setattr(single, "plan_view", no_planning)
        for text in filters:
            node = parse_filter(text)
            if allowed_rows(view, node).offsets.shape[0] <= limit_of(node):
                query = rng.standard_normal(DIM).astype(np.float32)
                lane = col.search(query, k=10, filter=text, ef=ef)
                assert lane.strategy in (planner.EXACT_SCAN, planner.EMPTY)
                want = col.search(query, k=10, filter=text, exact=True)
                np.testing.assert_array_equal(lane.ids, want.ids, err_msg=text)


@pytest.mark.parametrize("scan_ns_per_row_dim", [None, 6.0])
def test_a_view_with_codes_plans_what_the_float_bound_would_scan(tmp_path, monkeypatch, scan_ns_per_row_dim):
    """``outright_scan_limit`` prices float graphs only: where the planner prefers scanning or walking
    the sq8 codes (with exact scans priced dearer, it scans them on a small segment), windows under
    that bound run as the general path runs them, strategy and all, not as the lane's exact scan; the
    lane's bound for a view with codes is ``coded_scan_limit``, which prices them."""
    from vecstore.engine.allowed import allowed_rows
    from vecstore.engine.search import plan_view

    if scan_ns_per_row_dim is not None:
        monkeypatch.setattr(planner, "EXACT_NS_PER_ROW_DIM", scan_ns_per_row_dim)
    dim, rng = 160, np.random.default_rng(43)
    hnsw = {"m": 8, "ef_construction": 40, "ef": 10, "window_tree_beta": 4, "window_tree_leaf_rows": 700}
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("w", dim=dim, attributes={"t": "int64"}, window="t", hnsw=hnsw,
                                   quantization={"kind": "sq8"})  # fmt: skip
        col.upsert(np.arange(6000), rng.standard_normal((6000, dim)), {"t": rng.permutation(6000)})
        col.seal()
        assert col.wait_for_indexes(timeout=300)
        (view,) = col._snapshot()
        assert view.codes is not None and view.tree is not None
        smallest = view.tree.smallest_graph_rows
        bound = planner.outright_scan_limit(dim, 10, 8, smallest, planner.TREE_SPLIT_CALL_NS)
        oversampling = col._default_oversampling
        limit = single._row_limit(view, parse_filter("t >= 0 and t < 10"), dim, 10, 8, False, 10, oversampling, False)
        coded = planner.coded_scan_limit(dim, 10, 8, 6000, smallest, 6000, planner.TREE_SPLIT_CALL_NS, "sq8", dim, 10,
                                         oversampling)  # fmt: skip
        if scan_ns_per_row_dim is not None:  # the codes' scan undercuts the exact scan below the float bound
            assert limit == coded < bound
        else:
            assert limit == coded
        quantized = 0
        for width in range(1, max(bound, limit) + 41, 4):  # past both bounds
            low = int(rng.integers(0, 6000 - width))
            text = f"t >= {low} and t < {low + width}"
            node = parse_filter(text)
            plan, _ = plan_view(view, allowed_rows(view, node), k=10, ef=10, m=8, dim=dim, exact=False,
                                oversampling=1.0, rescore=True, queries=1, node=node)  # fmt: skip
            query = rng.standard_normal(dim).astype(np.float32)
            lane = col.search(query, k=10, filter=text, ef=10)
            general = col.search(query, k=10, filter=text, ef=10, explain=True)
            assert lane.strategy == general.strategy == plan.strategy, (text, lane.strategy, plan.strategy)
            np.testing.assert_array_equal(lane.ids, general.ids, err_msg=text)
            quantized += plan.strategy == planner.QUANTIZED_SCAN
        if scan_ns_per_row_dim is not None:
            assert quantized, "the codes' scan never won under the bound: the test does not probe it"


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_lane_walks_sq8_codes_as_the_general_path_does(tmp_path, metric, monkeypatch):
    """A collection with sq8 codes: unfiltered, masked and two-hop walks over the codes (and any scan the
    planner prefers) answer in the lane exactly as in the general path, only allowed live rows come
    back, and recall@10 against exact search over the allowed rows stays above 0.95."""
    dim, n = 160, 6000  # wide enough that a walk over codes beats one over floats
    monkeypatch.setattr(planner, "EXACT_NS_PER_ROW_DIM", 1.0)  # scans priced as on a larger segment
    rng = np.random.default_rng(13)
    centres = rng.standard_normal((25, dim)).astype(np.float32) * 2
    vectors = (centres[rng.integers(0, 25, n)] + rng.standard_normal((n, dim))).astype(np.float32)
    deleted = np.arange(0, n, 11)
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("q", dim=dim, metric=metric, attributes={"t": "int64", "g": "int64"}, window="t",
                                   quantization={"kind": "sq8"},
                                   hnsw={"m": 8, "ef_construction": 60, "ef": 40, "window_tree_beta": 0})  # fmt: skip
        t = rng.permutation(n)
        col.upsert(np.arange(n), vectors, {"t": t, "g": np.arange(n) % 10})
        col.seal()
        assert col.wait_for_indexes(timeout=300)
        assert col.describe()["segments"][0]["codes"] == "ready (sq8)"
        col.delete(deleted)
        live = ~np.isin(np.arange(n), deleted)
        g = np.arange(n) % 10
        seen, recalls = set(), []
        for text, allowed in [
            (None, live),
            ("g in (1, 2, 3, 4, 5, 6)", live & np.isin(g, [1, 2, 3, 4, 5, 6])),
            ("g = 7", live & (g == 7)),
            ("t < 900", live & (t < 900)),
        ]:
            rows = np.flatnonzero(allowed)
            for _ in range(12):
                query = (centres[rng.integers(0, 25)] + rng.standard_normal(dim)).astype(np.float32)
                before = col.stats().get(LANE_COUNTER, 0)
                lane = col.search(query, k=10, filter=text)
                assert col.stats().get(LANE_COUNTER, 0) - before == 1, text
                general = col.search(query, k=10, filter=text, explain=True)
                np.testing.assert_array_equal(lane.ids, general.ids, err_msg=str(text))
                np.testing.assert_array_equal(lane.distances, general.distances, err_msg=str(text))
                assert lane.strategy == general.strategy
                seen.add(general.plan[0]["segments"][0]["strategy"])
                assert np.isin(lane.ids[0], rows).all(), text  # k allowed live rows, never another
                want, _ = exact_search(metric, query[None], vectors[rows], rows.astype(np.int64), 10)
                recalls.append(len(set(lane.ids[0]) & set(want[0])) / 10)
        assert {planner.QUANTIZED_HNSW, planner.QUANTIZED_SCAN} <= seen, seen
        assert np.mean(recalls) >= 0.95, np.mean(recalls)
        assert col.stats()[planner.QUANTIZED_HNSW] > 0
        bad = np.ones(dim, dtype=np.float32)
        bad[3] = np.nan
        with pytest.raises(InvalidArgument, match="NaN or infinity"):
            col.search(bad)
        with pytest.raises(InvalidArgument, match="NaN or infinity"):
            col.search(bad, filter="g = 7")
        assert col.count() == n - deleted.shape[0]


def test_an_sq8_collection_below_128_dims_walks_floats_in_the_lane_and_checks_queries_once(tmp_path):
    """Below 128 dimensions the planner walks an sq8 collection's float graph; the lane's walk checks the
    query itself, so bad queries still get the general path's errors."""
    rng = np.random.default_rng(21)
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("s", dim=32, metric="cosine", quantization={"kind": "sq8"},
                                   hnsw={"m": 8, "ef_construction": 60, "ef": 20})  # fmt: skip
        col.upsert(np.arange(20_000), rng.standard_normal((20_000, 32)).astype(np.float32))
        col.seal()
        assert col.wait_for_indexes(timeout=300)
        for _ in range(5):
            query = rng.standard_normal(32).astype(np.float32)
            before = col.stats().get(LANE_COUNTER, 0)
            lane = col.search(query, k=10)
            assert col.stats().get(LANE_COUNTER, 0) - before == 1
            general = col.search(query, k=10, explain=True)
            assert general.plan[0]["segments"][0]["strategy"] == planner.HNSW
            np.testing.assert_array_equal(lane.ids, general.ids)
            np.testing.assert_array_equal(lane.distances, general.distances)
        nan = np.ones(32, dtype=np.float32)
        nan[5] = np.nan
        for bad, message in [(nan, "NaN or infinity"), (np.zeros(32, np.float32), "all zeros"),
                             (np.full(32, 3e19, np.float32), "too large")]:  # fmt: skip
            with pytest.raises(InvalidArgument, match=message):
                col.search(bad, k=10)
        assert col.count() == 20_000


@pytest.mark.parametrize("n", [3000, 4500])  # without a segment graph, and with one
def test_wide_category_rows_are_scanned_over_codes_and_a_window_of_as_many_exactly(tmp_path, n):
    """Past ``HIGH_DIM_FROM`` dimensions a category's rows, spread over the segment, are priced by
    bandwidth (``planner.scan_row_ns``): with sq8 codes the lane scans their codes and rescores the best,
    as the planner does, while a window on the sort column allowing as many rows is scanned exactly.
    Both answers against the oracle over the allowed rows: the window's identical, the codes' at recall
    0.9 or more, and never a row outside the filter."""
    dim, rare = 1536, n * 3 // 100
    rng = np.random.default_rng(47)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    category = np.where(rng.permutation(n) < rare, "rare", "common")
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("w", dim=dim, metric="l2", attributes={"t": "int64", "c": "string"}, window="t",
                                   hnsw={"m": 8, "ef_construction": 40, "ef": 10},
                                   quantization={"kind": "sq8"})  # fmt: skip
        col.upsert(np.arange(n), vectors, {"t": np.arange(n), "c": category.tolist()})
        col.seal()
        assert col.wait_for_indexes(timeout=300)
        assert col.describe()["segments"][0]["codes"] == "ready (sq8)"
        assert (col._snapshot()[0].graph is not None) == (n > graphs.MIN_GRAPH_ROWS)
        queries = rng.standard_normal((12, dim)).astype(np.float32)
        cases = {"c = 'rare'": category == "rare", f"t >= 1000 and t < {1000 + rare}": (np.arange(n) >= 1000)
                 & (np.arange(n) < 1000 + rare)}  # fmt: skip
        found = 0
        for text, allowed in cases.items():
            want_ids, want_d = exact_search("l2", queries, vectors[allowed], np.flatnonzero(allowed), 10)
            for i, q in enumerate(queries):
                got = col.search(q, k=10, filter=text)
                assert got.strategy == col.search(q, k=10, filter=text, explain=True).strategy
                assert allowed[got.ids[0]].all()
                if text.startswith("t"):
                    assert got.strategy == planner.EXACT_SCAN
                    assert_same_neighbours(got.ids, got.distances, want_ids[i : i + 1], want_d[i : i + 1])
                else:
                    assert got.strategy == planner.QUANTIZED_SCAN
                    found += len(set(got.ids[0].tolist()) & set(want_ids[i].tolist()))
        assert found >= 0.9 * 10 * len(queries)
