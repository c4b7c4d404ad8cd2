"""The embedded public contract: collections, upsert forms, get/count/search, seal, compact, reopen."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import vecstore
from tests.conftest import ATTRS, make_rows
from tests.oracles import assert_same_neighbours, exact_search, filter_mask
from vecstore.engine import search
from vecstore.filters import field_types, to_filter


def test_create_list_open_drop(db):
    col = db.create_collection("papers", dim=8, metric="cosine", attributes=ATTRS, window="year")
    db.create_collection("other", dim=3, metric="l2")
    assert db.list_collections() == ["other", "papers"]
    assert db.collection("papers") is col
    assert col.describe()["window"] == "year"
    with pytest.raises(vecstore.AlreadyExists):
        db.create_collection("papers", dim=8)
    with pytest.raises(vecstore.NotFound, match="did you mean 'papers'"):
        db.collection("paper")
    db.drop_collection("other")
    assert db.list_collections() == ["papers"]
    with pytest.raises(vecstore.NotFound):
        db.drop_collection("other")


def _search_against_oracle(col, queries, k, filter_text, ids, vectors, rows, metric):
    node = to_filter(filter_text, ATTRS)
    mask = filter_mask(node, rows, field_types(ATTRS))
    want_ids, want_d = exact_search(metric, queries, vectors[mask], ids[mask], k)
    res = col.search(queries, k=k, filter=filter_text)
    assert_same_neighbours(res.ids, res.distances, want_ids, want_d, rtol=1e-4, atol=1e-4)
    return res


@pytest.mark.parametrize("gather_max_rows", [0, 65_536], ids=["per-segment", "gathered"])
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_filtered_search_equals_exact_search_over_the_allowed_rows(db, metric, gather_max_rows, monkeypatch):
    monkeypatch.setattr(search, "GATHER_MAX_ROWS", gather_max_rows)
    col = db.create_collection(
        "c", dim=16, metric=metric, attributes=ATTRS, window="ts", seal_rows=400, max_segment_rows=1
    )  # no merging: the search must span several segments
    ids, vectors, attrs = make_rows(1000, 16, seed=3)
    for start in range(0, 1000, 250):  # several sealed segments plus an appendable one
        col.upsert(
            ids[start : start + 250],
            vectors[start : start + 250],
            {k: v[start : start + 250] for k, v in attrs.items()},
        )
    col.delete(ids[::7])
    keep = np.ones(1000, dtype=bool)
    keep[::7] = False
    rows = [r for r in col.get(ids).to_pylist()]
    assert len(rows) == keep.sum()
    assert len(col.describe()["segments"]) >= 2
    queries = np.random.default_rng(5).standard_normal((6, 16)).astype(np.float32)
    for text in [
        None,
        "year >= 2010",
        "cat in ('a', 'b') and not open",
        "ts between '2024-03-01' and '2024-03-09'",
        "tags contains any ('x') or price < 10",
        "year = 1990 and cat = 'd'",
        "id in (1, 2, 3, 14)",
    ]:
        _search_against_oracle(col, np.tile(queries, (2, 1)), 10, text, ids[keep], vectors[keep], rows, metric)
        _search_against_oracle(col, queries[:1], 7, text, ids[keep], vectors[keep], rows, metric)


def test_upsert_forms_arrow_table_and_dataframe(db):
    col = db.create_collection("c", dim=3, metric="l2", attributes={"year": "int64", "cat": "string"})
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "vector": pa.array([[1, 0, 0], [0, 1, 0]], pa.list_(pa.float32(), 3)),
            "year": [2000, 2001],
            "cat": ["a", None],
        }
    )
    assert col.upsert(table) == 2
    frame = pd.DataFrame({"id": [3], "vector": [np.array([0, 0, 1.0])], "year": [1999], "cat": ["z"]})
    assert col.upsert(frame) == 1
    got = col.get([3, 1, 2, 99])
    assert got.column("id").to_pylist() == [3, 1, 2]
    assert got.column("cat").to_pylist() == ["z", "a", None]
    assert got.column("vector").to_pylist()[0] == [0.0, 0.0, 1.0]


def test_reupsert_replaces_in_every_segment_kind(db):
    col = db.create_collection("c", dim=2, metric="l2", attributes={"v": "int64"}, seal_rows=4)
    col.upsert([1, 2, 3, 4], np.ones((4, 2)), {"v": [1, 1, 1, 1]})  # sealed
    col.upsert([1, 5], np.zeros((2, 2)), {"v": [2, 2]})  # replaces a sealed row
    col.upsert([5], np.full((1, 2), 3.0), {"v": [3]})  # replaces an appendable row
    assert col.count() == 5
    assert col.get([1, 5]).column("v").to_pylist() == [2, 3]
    res = col.search([0, 0], k=10)
    assert sorted(res.ids[0][res.ids[0] >= 0].tolist()) == [1, 2, 3, 4, 5]
    assert res.ids[0, 0] == 1


def test_search_result_shape_padding_select_and_explain(db):
    col = db.create_collection("c", dim=4, metric="l2", attributes=ATTRS)
    ids, vectors, attrs = make_rows(30, 4, seed=1)
    col.upsert(ids, vectors, attrs)
    res = col.search(vectors[0], k=50, select=["year", "cat"], explain=True)
    assert res.ids.shape == (1, 50) and res.distances.dtype == np.float32
    assert (res.ids[0, :30] >= 0).all() and (res.ids[0, 30:] == -1).all() and np.isinf(res.distances[0, 30:]).all()
    assert res.ids[0, 0] == 0 and res.distances[0, 0] == 0
    table = res.to_arrow()
    assert table.num_rows == 30 and table.column_names == ["query", "rank", "id", "_distance", "year", "cat"]
    by_id = {r["id"]: r for r in col.get(ids).to_pylist()}
    for row in table.to_pylist():
        assert row["year"] == by_id[row["id"]]["year"] and row["cat"] == by_id[row["id"]]["cat"]
    assert res.plan[0]["strategy"] == "exact_scan" and res.plan[0]["segments"][0]["allowed_rows"] == 30
    assert res.strategy == "exact_scan"
    empty = col.search(vectors[:2], k=3, filter="year > 3000", explain=True)
    assert (empty.ids == -1).all() and empty.plan[1]["strategy"] == "empty" and empty.strategy == "empty"
    assert col.stats()["queries"] == 3
    assert col.search(vectors[0], k=1).strategy == "exact_scan"  # set without explain too


def test_seal_compact_reopen_keep_everything(tmp_path):
    path = tmp_path / "db"
    db = vecstore.connect(path)
    col = db.create_collection("c", dim=5, metric="ip", attributes=ATTRS, window="year", seal_rows=100)
    ids, vectors, attrs = make_rows(350, 5, seed=9)
    col.upsert(ids, vectors, attrs)
    col.upsert(ids[:120] + 1000, vectors[:120], {k: v[:120] for k, v in attrs.items()})
    col.delete(np.arange(0, 350, 10))  # 10% dead: below the auto-compaction threshold
    before = col.get(np.arange(2000)).to_pylist()
    q = vectors[:4]
    before_res = col.search(q, k=20, filter="cat != 'a'")
    assert col.compact() >= 1
    db.close()
    db = vecstore.connect(path)
    col = db.collection("c")
    segments = col.describe()["segments"]
    assert all(s["live_rows"] == s["rows"] for s in segments if s["segment"] != "appendable")
    years = [s for s in segments if s["segment"] != "appendable"]
    assert years and all(s["sorted_by"] == "year" for s in years)
    assert col.get(np.arange(2000)).to_pylist() == before
    after_res = col.search(q, k=20, filter="cat != 'a'")
    np.testing.assert_array_equal(before_res.ids, after_res.ids)
    np.testing.assert_array_equal(before_res.distances, after_res.distances)
    db.close()


def test_sealed_segments_are_sorted_by_the_window_attribute(db):
    col = db.create_collection("c", dim=2, metric="l2", attributes={"ts": "timestamp"}, window="ts", seal_rows=10)
    rng = np.random.default_rng(0)
    stamps = (np.datetime64("2020-01-01") + rng.permutation(20).astype("timedelta64[D]")).astype("datetime64[us]")
    col.upsert(np.arange(20), rng.standard_normal((20, 2)), {"ts": stamps})
    view = col._snapshot()[0]
    values = view.table.column("ts").to_numpy()
    assert view.sorted_by == "ts" and (np.diff(values.astype(np.int64)) >= 0).all()


def test_delete_counts_and_tolerates_unknown_ids(db):
    col = db.create_collection("c", dim=2, metric="l2", seal_rows=3)
    col.upsert([1, 2, 3, 4], np.ones((4, 2)))
    assert col.delete([2, 4, 4, 99]) == 2
    assert col.delete([2]) == 0
    assert col.count() == 2


def test_whole_segment_deleted_is_dropped(db):
    col = db.create_collection("c", dim=2, metric="l2", seal_rows=3)
    col.upsert([1, 2, 3], np.ones((3, 2)))
    col.delete([1, 2, 3])
    assert col.count() == 0 and col.describe()["segments"] == []
    files = list((col.path / "segments").iterdir())
    assert files == []


def test_second_open_of_a_locked_directory_is_refused(tmp_path):
    first = vecstore.connect(tmp_path / "db")
    with pytest.raises(vecstore.FailedPrecondition, match="locked"):
        vecstore.connect(tmp_path / "db")
    first.close()
    vecstore.connect(tmp_path / "db").close()


def test_closed_database_and_collection_refuse_calls(tmp_path):
    db = vecstore.connect(tmp_path / "db")
    col = db.create_collection("c", dim=2)
    db.close()
    with pytest.raises(vecstore.FailedPrecondition):
        col.search([1.0, 0.0])
    with pytest.raises(vecstore.FailedPrecondition):
        db.list_collections()


def test_a_second_process_gets_a_clear_error_while_the_directory_is_open(tmp_path):
    db = vecstore.connect(tmp_path / "db")
    db.create_collection("c", dim=2).upsert([1], [[1.0, 2.0]])
    script = (
        "import sys, vecstore\n"
        "try:\n"
        f"    vecstore.connect({str(tmp_path / 'db')!r})\n"
        "except vecstore.FailedPrecondition as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "locked" in done.stdout and str(os.getpid()) in done.stdout
    assert db.collection("c").count() == 1
    db.close()


def test_one_filter_per_query_equals_separate_searches(db):
    col = db.create_collection("c", dim=6, metric="l2", attributes=ATTRS, window="year", seal_rows=150)
    ids, vectors, attrs = make_rows(400, 6, seed=12)
    col.upsert(ids, vectors, attrs)
    queries = np.random.default_rng(2).standard_normal((7, 6)).astype(np.float32)
    filters = ["year >= 2010", None, "cat = 'a'", "year >= 2010", "year > 3000", vecstore.field("open") == True, None]  # noqa: E712
    res = col.search(queries, k=5, filter=filters, select=["year"], explain=True)
    years = iter(res.to_arrow().column("year").to_pylist())
    for i, f in enumerate(filters):
        alone = col.search(queries[i], k=5, filter=f, select=["year"], explain=True)
        np.testing.assert_array_equal(res.ids[i], alone.ids[0])
        np.testing.assert_array_equal(res.distances[i], alone.distances[0])
        assert res.plan[i]["filter"] == alone.plan[0]["filter"]
        assert [next(years) for _ in range(int((alone.ids[0] >= 0).sum()))] == alone.to_arrow().column(
            "year"
        ).to_pylist()
    with pytest.raises(vecstore.InvalidArgument, match="one filter per query"):
        col.search(queries, k=5, filter=["year > 1"])
