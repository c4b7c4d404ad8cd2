"""Bad input gets a precise, typed error and the collection holds exactly what it held before."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vecstore
from tests.conftest import ATTRS, make_rows, state_of


@pytest.fixture
def col(db):
    collection = db.create_collection("c", dim=4, metric="cosine", attributes=ATTRS, seal_rows=8)
    ids, vectors, attrs = make_rows(20, 4, seed=2)
    collection.upsert(ids, vectors, attrs)
    return collection


V = np.ones((2, 4), dtype=np.float32)

BAD_UPSERTS = [
    ("wrong dimension", lambda c: c.upsert([100, 101], np.ones((2, 5))), vecstore.InvalidArgument, "dim=4"),
    (
        "NaN",
        lambda c: c.upsert([100, 101], np.array([[1, 2, 3, np.nan], [1, 1, 1, 1]])),
        vecstore.InvalidArgument,
        "NaN",
    ),
    ("inf", lambda c: c.upsert([100], np.array([[1, 2, 3, np.inf]])), vecstore.InvalidArgument, "infinity"),
    ("overflow", lambda c: c.upsert([100], np.full((1, 4), 1e30)), vecstore.InvalidArgument, "too large"),
    ("zero vector under cosine", lambda c: c.upsert([100], np.zeros((1, 4))), vecstore.InvalidArgument, "all zeros"),
    ("float ids", lambda c: c.upsert([1.5, 2.0], V), vecstore.InvalidArgument, "integers"),
    ("string ids", lambda c: c.upsert(["a", "b"], V), vecstore.InvalidArgument, "integers"),
    ("negative id", lambda c: c.upsert([-3, 1], V), vecstore.InvalidArgument, ">= 0"),
    ("too large id", lambda c: c.upsert(np.array([2**63], dtype=np.uint64), V[:1]), vecstore.InvalidArgument, "int64"),
    ("duplicate ids", lambda c: c.upsert([5, 5], V), vecstore.InvalidArgument, "duplicate id 5"),
    ("count mismatch", lambda c: c.upsert([100, 101, 102], V), vecstore.InvalidArgument, "3 ids but 2 vectors"),
    ("2-D ids", lambda c: c.upsert([[1, 2]], V), vecstore.InvalidArgument, "1-D"),
    ("text vectors", lambda c: c.upsert([100], [["a", "b", "c", "d"]]), vecstore.InvalidArgument, "numeric"),
    ("ragged vectors", lambda c: c.upsert([100, 101], [[1, 2, 3, 4], [1, 2]]), vecstore.InvalidArgument, "vectors"),
    ("missing vectors", lambda c: c.upsert([100]), vecstore.InvalidArgument, "needs vectors"),
    (
        "unknown attribute",
        lambda c: c.upsert([100, 101], V, {"colour": ["r", "g"]}),
        vecstore.InvalidArgument,
        "unknown attribute 'colour'",
    ),
    (
        "attribute length",
        lambda c: c.upsert([100, 101], V, {"year": [1]}),
        vecstore.InvalidArgument,
        "1 values for 2 rows",
    ),
    (
        "int attribute gets floats",
        lambda c: c.upsert([100, 101], V, {"year": [1.5, 2.5]}),
        vecstore.InvalidArgument,
        "pass integers",
    ),
    (
        "string attribute gets ints",
        lambda c: c.upsert([100, 101], V, {"cat": [1, 2]}),
        vecstore.InvalidArgument,
        "pass strings",
    ),
    (
        "bool attribute gets ints",
        lambda c: c.upsert([100, 101], V, {"open": [0, 1]}),
        vecstore.InvalidArgument,
        "booleans",
    ),
    ("timestamp gets ints", lambda c: c.upsert([100, 101], V, {"ts": [1, 2]}), vecstore.InvalidArgument, "datetime64"),
    (
        "timestamp gets bad text",
        lambda c: c.upsert([100, 101], V, {"ts": ["2024-01-01", "soon"]}),
        vecstore.InvalidArgument,
        "ISO-8601",
    ),
    (
        "list gets strings",
        lambda c: c.upsert([100, 101], V, {"tags": ["x", "y"]}),
        vecstore.InvalidArgument,
        "lists of strings",
    ),
    ("mixed values", lambda c: c.upsert([100, 101], V, {"cat": ["a", 3]}), vecstore.InvalidArgument, "cat"),
    ("table without vector", lambda c: c.upsert(pa.table({"id": [1]})), vecstore.InvalidArgument, "no 'vector' column"),
    (
        "table with short vectors",
        lambda c: c.upsert(pa.table({"id": [100], "vector": [[1.0, 2.0]]})),
        vecstore.InvalidArgument,
        "2 dimensions",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "message"), BAD_UPSERTS, ids=[c[0] for c in BAD_UPSERTS])
def test_bad_upserts_are_rejected_and_change_nothing(col, case, call, error, message):
    before = state_of(col)
    with pytest.raises(error, match=message):
        call(col)
    assert state_of(col) == before


BAD_READS = [
    ("query dimension", lambda c: c.search(np.ones(5)), vecstore.InvalidArgument, "dim=4"),
    ("query NaN", lambda c: c.search([1, np.nan, 1, 1]), vecstore.InvalidArgument, "NaN"),
    ("zero query under cosine", lambda c: c.search(np.zeros(4)), vecstore.InvalidArgument, "all zeros"),
    # float32 single queries take a shorter check: the same errors
    ("float32 query NaN", lambda c: c.search(np.array([1, np.nan, 1, 1], np.float32)), vecstore.InvalidArgument, "NaN"),
    ("float32 query inf", lambda c: c.search(np.array([1, np.inf, 1, 1], np.float32)), vecstore.InvalidArgument, "NaN"),
    (
        "float32 query overflowing norm",
        lambda c: c.search(np.full(4, 3e38, np.float32)),
        vecstore.InvalidArgument,
        "too large",
    ),
    ("float32 zero query", lambda c: c.search(np.zeros(4, np.float32)), vecstore.InvalidArgument, "all zeros"),
    ("float32 query dimension", lambda c: c.search(np.ones(5, np.float32)), vecstore.InvalidArgument, "dim=4"),
    ("no queries", lambda c: c.search(np.empty((0, 4))), vecstore.InvalidArgument, "empty"),
    ("k = 0", lambda c: c.search(np.ones(4), k=0), vecstore.InvalidArgument, "at least 1"),
    ("k negative", lambda c: c.search(np.ones(4), k=-3), vecstore.InvalidArgument, "at least 1"),
    ("k float", lambda c: c.search(np.ones(4), k=2.5), vecstore.InvalidArgument, "integer"),
    ("k huge", lambda c: c.search(np.ones(4), k=10**9), vecstore.ResourceExhausted, "maximum"),
    ("malformed filter", lambda c: c.search(np.ones(4), filter="year >"), vecstore.FilterSyntaxError, "position 6"),
    (
        "unknown field",
        lambda c: c.search(np.ones(4), filter="yaer > 1"),
        vecstore.InvalidArgument,
        "did you mean 'year'",
    ),
    ("wrong value type", lambda c: c.search(np.ones(4), filter="year > 'x'"), vecstore.InvalidArgument, "number"),
    ("filter of wrong kind", lambda c: c.search(np.ones(4), filter=5), vecstore.InvalidArgument, "filter must be"),
    ("select unknown", lambda c: c.search(np.ones(4), select=["nope"]), vecstore.InvalidArgument, "cannot select"),
    ("bad ef", lambda c: c.search(np.ones(4), ef=0), vecstore.InvalidArgument, "ef"),
    ("exact not a bool", lambda c: c.search(np.ones(4), exact="yes"), vecstore.InvalidArgument, "exact must be"),
    ("exact a list", lambda c: c.search(np.ones(4), exact=[True]), vecstore.InvalidArgument, "exact must be"),
    (
        "exact not a bool, float32 query",
        lambda c: c.search(np.ones(4, np.float32), filter="year > 1", exact=1),
        vecstore.InvalidArgument,
        "exact must be",
    ),
    ("count bad filter", lambda c: c.count("cat = 5"), vecstore.InvalidArgument, "quote"),
    ("get float ids", lambda c: c.get([1.5]), vecstore.InvalidArgument, "integers"),
    ("delete string ids", lambda c: c.delete(["x"]), vecstore.InvalidArgument, "integers"),
]


@pytest.mark.parametrize(("case", "call", "error", "message"), BAD_READS, ids=[c[0] for c in BAD_READS])
def test_bad_reads_are_rejected_and_change_nothing(col, case, call, error, message):
    before = state_of(col)
    with pytest.raises(error, match=message):
        call(col)
    assert state_of(col) == before
    assert col.search(np.ones(4), k=3).ids.shape == (1, 3)  # still serving


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 0}, "dim must be"),
        ({"dim": "8"}, "dim must be"),
        ({"dim": 4, "metric": "hamming"}, "metric must be"),
        ({"dim": 4, "attributes": {"year": "int32"}}, "unknown type"),
        ({"dim": 4, "attributes": {"id": "int64"}}, "reserved"),
        ({"dim": 4, "attributes": {"bad name": "int64"}}, "not valid"),
        ({"dim": 4, "attributes": {"year": "int64"}, "window": "ts"}, "not among"),
        ({"dim": 4, "attributes": {"tags": "list<string>"}, "window": "tags"}, "window needs"),
        ({"dim": 4, "hnsw": {"m": 1}}, "between 2 and 4096"),
        ({"dim": 4, "hnsw": {"mm": 16}}, "unknown hnsw parameter"),
        ({"dim": 4, "quantization": {"kind": "lossy"}}, "quantization"),
        ({"dim": 4, "seal_rows": 0}, "seal_rows"),
    ],
)
def test_bad_collection_definitions(db, kwargs, message):
    with pytest.raises(vecstore.InvalidArgument, match=message):
        db.create_collection("x", **kwargs)
    assert db.list_collections() == []


def test_bad_collection_names(db):
    for name in ["", "a b", "../escape", ".hidden", "9lives", "x" * 200]:
        with pytest.raises(vecstore.InvalidArgument):
            db.create_collection(name, dim=2)
    db.create_collection("kept", dim=2)
    for name in ["../escape", ".tmp-x", "nope", "", ".", "kept/..", "kept/../kept", None, 5]:
        with pytest.raises(vecstore.NotFound):
            db.collection(name)
        with pytest.raises(vecstore.NotFound):
            db.drop_collection(name)
        with pytest.raises(vecstore.NotFound):
            db.repair(name)
    assert db.list_collections() == ["kept"]


def test_directory_that_is_not_a_database_is_refused(tmp_path):
    (tmp_path / "stuff.txt").write_text("mine")
    with pytest.raises(vecstore.FailedPrecondition, match="not a vecstore database"):
        vecstore.connect(tmp_path)
