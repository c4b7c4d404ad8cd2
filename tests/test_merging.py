"""Background merging of small sealed segments: the choice, the merged data, writes racing a merge."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import vecstore
from tests.oracles import exact_search
from tests.test_engine_graphs import clustered
from vecstore.engine import segment_indexes
from vecstore.engine.graphs import MIN_GRAPH_ROWS
from vecstore.engine.merging import choose_merge

DIM = 24
PART = MIN_GRAPH_ROWS // 2 + 500  # three parts: each too small for a graph, merged they get one


@pytest.mark.parametrize(
    ("live", "limit", "want"),
    [
        ({1: 100, 2: 100}, 1000, (1, 2)),
        ({1: 100}, 1000, None),  # nothing to merge with
        ({1: 600, 2: 600}, 1000, None),  # both at or above half the limit
        ({1: 400, 2: 300, 3: 450, 4: 10}, 1000, (1, 2, 4)),  # smallest first, as many as fit
        ({1: 5, 2: 5}, 1, None),  # a limit of 1 turns merging off
    ],
)
def test_choose_merge(live, limit, want):
    assert choose_merge(live, limit) == want


pytestmark = pytest.mark.usefixtures("graphs_priced_in")  # graph paths on small test collections


def filled(db, **options):
    col = db.create_collection(
        "m", dim=DIM, metric="l2", attributes={"year": "int64"}, window="year", seal_rows=PART, **options
    )
    vectors = clustered(3 * PART, seed=1)
    ids = np.arange(3 * PART, dtype=np.int64) * 2 + 1
    years = np.arange(3 * PART) % 50
    for part in range(3):
        rows = slice(part * PART, (part + 1) * PART)
        col.upsert(ids[rows], vectors[rows], {"year": years[rows]})  # each reaches seal_rows: sealed
    return col, ids, vectors, years


def test_segments_merge_into_one_indexed_segment_with_the_same_data(tmp_path):
    db = vecstore.connect(tmp_path / "db")
    col, ids, vectors, years = filled(db)
    assert col.wait_for_indexes(timeout=120)
    (segment,) = col.describe()["segments"]
    assert segment["rows"] == 3 * PART and segment["graph"] == "ready" and segment["sorted_by"] == "year"
    assert col.stats()["merges"] >= 1
    queries = clustered(30, seed=2)
    for text, allowed in ((None, np.ones(3 * PART, bool)), ("year between 10 and 12", (years >= 10) & (years <= 12))):
        want, _ = exact_search("l2", queries, vectors[allowed], ids[allowed], 10)
        assert np.array_equal(col.search(queries, k=10, filter=text, exact=True).ids, want)
    got = col.get(ids[::97])
    assert got.column("id").to_pylist() == ids[::97].tolist()
    np.testing.assert_array_equal(np.stack(got.column("vector").to_numpy(zero_copy_only=False)), vectors[::97])
    res = col.search(queries, k=10, explain=True)
    assert res.strategy == "hnsw"
    files = sorted(p.name for p in (col.path / "segments").iterdir())
    assert len(files) == 3  # the merged segment, its payload index and its graph; the inputs are gone
    db.close()
    db = vecstore.connect(tmp_path / "db")
    col = db.collection("m")
    assert col.count() == 3 * PART and np.array_equal(col.search(queries, k=10).ids, res.ids)
    db.close()


@pytest.mark.parametrize(
    "compact_dead_fraction",
    [0.9, 0.25],
    ids=["merge-reconciles-dead-rows", "compaction-meanwhile-discards-the-merge"],
)
def test_writes_during_a_merge_are_not_lost(tmp_path, monkeypatch, compact_dead_fraction):
    """Deletes and replacements that land while a merge builds its graph reach the merged segment; if
    they compact an input instead, the merge is discarded and redone."""
    release = threading.Event()
    real = segment_indexes.build_graph_file

    def gated(*args, **kwargs):
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(segment_indexes, "build_graph_file", gated)
    db = vecstore.connect(tmp_path / "db")
    col, ids, _, _ = filled(db, compact_dead_fraction=compact_dead_fraction)
    for _ in range(3000):  # the merge is now held at its graph build
        if "merging" in {s["graph"] for s in col.describe()["segments"]}:
            break
        threading.Event().wait(0.01)
    else:
        pytest.fail("no merge started")
    deleted = ids[::5]
    replaced = ids[1::7]
    new_vectors = clustered(len(replaced), seed=9)
    col.delete(deleted)
    col.upsert(replaced, new_vectors, {"year": np.full(len(replaced), 99)})
    release.set()
    assert col.wait_for_indexes(timeout=120)
    assert col.stats()["merges"] >= 1
    gone = np.setdiff1d(deleted, replaced)  # an id in both was deleted, then written again
    assert col.count() == len(np.union1d(np.setdiff1d(ids, deleted), replaced))
    assert col.get(gone).num_rows == 0
    got = col.get(replaced)
    assert got.column("year").to_pylist() == [99] * len(replaced)
    np.testing.assert_array_equal(np.stack(got.column("vector").to_numpy(zero_copy_only=False)), new_vectors)
    queries = clustered(20, seed=3)
    res = col.search(queries, k=10, exact=True)
    assert not np.isin(res.ids, gone).any()
    assert col.count("year = 99") == len(replaced)
    db.close()
    db = vecstore.connect(tmp_path / "db")
    col = db.collection("m")
    assert col.count() == len(np.union1d(np.setdiff1d(ids, deleted), replaced))
    assert col.count("year = 99") == len(replaced) and col.get(gone).num_rows == 0
    db.close()


def test_max_segment_rows_is_validated(db):
    for bad in (0, -5, 2.5, True):
        with pytest.raises(vecstore.InvalidArgument, match="max_segment_rows"):
            db.create_collection("x", dim=2, max_segment_rows=bad)
