"""Payload indexes inside the engine: written at seal, compaction and merge, mapped on open, rebuilt
when damaged or missing, and answering filters exactly as the reference evaluator does."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vecstore
from tests.oracles import exact_search
from vecstore.engine.payloads import PAYLOAD_SUFFIX
from vecstore.engine.views import FilterResultCache, filter_cache_budget
from vecstore.filters import evaluate, parse_filter

ATTRS = {"cat": "string", "tags": "list<string>", "n": "int64", "ts": "timestamp"}
DIM = 8
DAY_US = np.timedelta64(86_400_000_000, "us")


def rows(count: int, seed: int, first_id: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + count, dtype=np.int64)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    cats = np.array(["a", "b", "c", "d", None], dtype=object)[rng.integers(0, 5, count)]
    tags = [[t for t in ("x", "y", "z") if rng.random() < 0.3] for _ in range(count)]
    attrs = {
        "cat": pa.array(cats.tolist(), pa.string()),
        "tags": pa.array(tags, pa.list_(pa.string())),
        "n": rng.integers(0, 1000, count),
        "ts": pa.array(np.datetime64("2024-01-01T00:00:00.000000") + rng.integers(0, 365, count) * DAY_US),
    }
    return ids, vectors, attrs


def payload_files(path) -> list[str]:
    return sorted(p.name for p in path.glob("collections/*/segments/*") if p.name.endswith(PAYLOAD_SUFFIX))


FILTERS = [
    "cat = 'b'",
    "cat in ('a', 'c') and n < 500",
    "tags contains any ('x', 'z') or cat is null",
    "not (n between 100 and 800) and ts >= '2024-06-01'",
    "cat != 'a' and tags contains all ('x', 'y')",
]


def check_filters(col, ids, vectors, attrs, live: np.ndarray) -> None:
    """Every filter: the search equals exact search over the allowed live rows (subset test)."""
    table = pa.table({"id": ids, **{k: attrs[k] for k in ATTRS}})
    columns = {name: table.column(name) for name in table.column_names}
    queries = np.random.default_rng(9).standard_normal((5, DIM)).astype(np.float32)
    for text in FILTERS:
        allowed = evaluate(parse_filter(text), columns, len(ids)) & live
        want_ids, want_dist = exact_search("l2", queries, vectors[allowed], ids[allowed], 10)
        res = col.search(queries, k=10, filter=text, explain=True)
        assert np.array_equal(res.ids, want_ids), text
        np.testing.assert_allclose(res.distances, want_dist, rtol=1e-5, atol=1e-5)
        sealed = [p for p in res.plan[0]["segments"] if p["segment"] != "appendable"]
        assert sealed and all(p["rows_found_by"] == "payload_index" for p in sealed), res.plan[0]
        for p in sealed:  # the index's bounds hold the rows it allows (deleted ones included)
            bounds = p["cardinality_bounds"]
            assert bounds["low"] <= bounds["expected"] <= bounds["high"] and p["allowed_rows"] <= bounds["high"]
        assert col.count(text) == int(allowed.sum())


def test_sealed_segments_answer_filters_from_their_payload_index(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("p", dim=DIM, metric="l2", attributes=ATTRS, seal_rows=300, max_segment_rows=1)
        ids, vectors, attrs = rows(1000, seed=1)
        for start in range(0, 1000, 300):  # three sealed segments of 300 and 100 appendable rows
            part = slice(start, start + 300)
            col.upsert(ids[part], vectors[part], {k: v[part] for k, v in attrs.items()})
        live = np.ones(len(ids), dtype=bool)
        live[::7] = False
        col.delete(ids[~live])
        check_filters(col, ids, vectors, attrs, live)
        described = col.describe()
        sealed = [s for s in described["segments"] if "graph" in s]
        assert len(sealed) == 3 and all(s["payload_bytes"] > 0 for s in sealed)
        assert described["memory"]["payload_bytes"] == sum(s["payload_bytes"] for s in sealed)
        assert len(payload_files(tmp_path / "db")) == 3


def test_payload_index_is_mapped_on_open_and_rebuilt_when_damaged_or_missing(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("p", dim=DIM, metric="l2", attributes=ATTRS, seal_rows=400, max_segment_rows=1)
        ids, vectors, attrs = rows(800, seed=2)
        for part in (slice(0, 400), slice(400, 800)):
            col.upsert(ids[part], vectors[part], {k: v[part] for k, v in attrs.items()})
    files = payload_files(tmp_path / "db")
    assert len(files) == 2
    live = np.ones(len(ids), dtype=bool)
    with vecstore.connect(tmp_path / "db") as db:
        col = db.collection("p")
        assert "payload_indexes_rebuilt" not in col.stats()
        check_filters(col, ids, vectors, attrs, live)
    segments = tmp_path / "db" / "collections" / "p" / "segments"
    damaged = segments / files[0]
    raw = bytearray(damaged.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    (segments / files[1]).unlink()
    with vecstore.connect(tmp_path / "db") as db:
        col = db.collection("p")
        assert col.stats()["payload_indexes_rebuilt"] == 2
        assert "rebuilt it" in col.describe()["last_housekeeping_error"]
        check_filters(col, ids, vectors, attrs, live)
    after = payload_files(tmp_path / "db")
    assert len(after) == 2 and not set(after) & set(files)  # fresh files, the damaged one removed
    with vecstore.connect(tmp_path / "db") as db:  # the rebuilt indexes were published: no second rebuild
        assert "payload_indexes_rebuilt" not in db.collection("p").stats()


def test_compaction_and_merge_write_the_new_segments_index_and_drop_the_old(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("p", dim=DIM, metric="l2", attributes=ATTRS, seal_rows=250)
        ids, vectors, attrs = rows(1000, seed=3)
        for start in range(0, 1000, 250):
            part = slice(start, start + 250)
            col.upsert(ids[part], vectors[part], {k: v[part] for k, v in attrs.items()})
        assert col.wait_for_indexes(timeout=60)  # the four small segments merge into one
        live = np.ones(len(ids), dtype=bool)
        live[::3] = False
        col.delete(ids[~live])
        col.compact()
        (segment,) = col.describe()["segments"]
        assert segment["live_rows"] == int(live.sum()) and segment["payload_bytes"] > 0
        assert len(payload_files(tmp_path / "db")) == 1
        check_filters(col, ids, vectors, attrs, live)


def test_repeated_filters_are_served_from_the_view_cache_and_never_stale(tmp_path):
    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("p", dim=DIM, metric="l2", attributes=ATTRS, seal_rows=300)
        ids, vectors, attrs = rows(600, seed=4)
        col.upsert(ids, vectors, attrs)
        query = vectors[:1]
        first = col.search(query, k=5, filter="cat = 'a'")
        (view,) = col._snapshot()
        assert view.filter_results.get(parse_filter("cat = 'a'")) is not None
        assert np.array_equal(col.search(query, k=5, filter="cat = 'a'").ids, first.ids)
        col.delete(first.ids[0, :2])  # a new view: the cached rows of the old one no longer apply
        again = col.search(query, k=5, filter="cat = 'a'").ids[0]
        assert not set(first.ids[0, :2]) & set(again.tolist())
        assert again.tolist()[:3] == first.ids[0, 2:].tolist()
        back = int(np.flatnonzero(ids == first.ids[0, 0])[0])  # a deleted 'a' row returns, to the appendable segment
        col.upsert(ids[back : back + 1], vectors[back : back + 1], {k: v[back : back + 1] for k, v in attrs.items()})
        got = col.search(query, k=5, filter="cat = 'a'").ids[0].tolist()
        assert got[:4] == [first.ids[0, 0], *first.ids[0, 2:]]
        for _ in range(2):  # a bad filter is refused every time, never cached as something else
            with pytest.raises(vecstore.InvalidArgument, match="unknown field"):
                col.search(query, k=5, filter="colour = 'a'")


def test_filter_result_cache_is_bounded_in_bytes():
    cache = FilterResultCache(max_bytes=100)
    cache.put("a", 1, 60)
    cache.put("b", 2, 30)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3, 30)  # over budget: the least recently used (b) goes
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    cache.put("huge", 4, 101)  # larger than the whole budget: not kept
    assert cache.get("huge") is None and cache.get("a") == 1
    # per view: about four full-size results (9 bytes a row), at least 1 MiB, at most 32 MiB
    assert filter_cache_budget(0) == 1 << 20
    assert filter_cache_budget(100_000) == (1 << 20) + 3_600_000
    assert filter_cache_budget(10_000_000) == 32 << 20
