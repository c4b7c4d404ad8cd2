"""Payload indexes: filters answered from them equal the reference evaluator, row for row, and their
cardinality bounds hold the exact count."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_filters import COLUMNS, ROWS, TYPES, filters
from vecstore.engine.filtering import cardinality, matching_rows
from vecstore.errors import DataCorruption
from vecstore.filters import And, Compare, Contains, InList, Not, bind, evaluate, parse_filter
from vecstore.index.payload import NumericIndex, PayloadIndex, TermIndex
from vecstore.storage import open_array_file, write_array_file

INDEXED = {"id": "int64", **TYPES}
TABLE = pa.table(COLUMNS)
PAYLOAD = PayloadIndex.build(TABLE, INDEXED)
LIVE = np.random.default_rng(4).random(len(ROWS)) < 0.8


@settings(max_examples=400, deadline=None)
@given(filters, st.booleans())
def test_index_answers_equal_the_reference_evaluator(node, with_deletes):
    bind(node, TYPES)
    want = evaluate(node, COLUMNS, len(ROWS))
    live = LIVE if with_deletes else None
    if live is not None:
        want = want & live
    got = matching_rows(node, PAYLOAD, live)
    np.testing.assert_array_equal(got, np.flatnonzero(want))  # the same rows, and ascending
    assert got.dtype == np.int64
    bounds = cardinality(node, PAYLOAD)
    exact = int(evaluate(node, COLUMNS, len(ROWS)).sum())
    assert bounds.low <= exact <= bounds.high, (str(node), bounds, exact)
    assert bounds.low <= bounds.expected <= bounds.high
    one_leaf = not isinstance(node, And | Not) and not isinstance(node, Contains) and not hasattr(node, "children")
    if one_leaf:
        assert bounds.exact and bounds.low == exact


def test_index_layout():
    year = PAYLOAD.columns["year"]
    assert isinstance(year, NumericIndex)
    assert np.all(np.diff(year.values) >= 0)
    assert year.rows.shape[0] + year.nulls.shape[0] == len(ROWS)
    cat = PAYLOAD.columns["cat"]
    assert isinstance(cat, TermIndex) and cat.terms == sorted(cat.terms)
    for t, term in enumerate(cat.terms):
        rows = cat.rows[cat.starts[t] : cat.starts[t + 1]]
        assert all(ROWS[r]["cat"] == term for r in rows) and np.all(np.diff(rows) > 0)
    tags = PAYLOAD.columns["tags"]
    assert sum(len(r["tags"] or []) for r in ROWS) == tags.rows.shape[0]  # one entry per (term, row)


@pytest.mark.parametrize("text", ["cat < 'c'", "cat between 'a' and 'c'", "cat >= 'b'", "cat in ('c', 'a')"])
def test_term_ranges_come_back_ascending(text):
    """Rows of several terms are ascending within each term's list only; callers rely on the whole
    answer ascending (window-tree bounds, run detection), so several terms go through a mask."""
    got = matching_rows(parse_filter(text), PAYLOAD, None)
    assert np.all(np.diff(got) > 0)
    np.testing.assert_array_equal(got, np.flatnonzero(evaluate(parse_filter(text), COLUMNS, len(ROWS))))


def test_single_term_answers_without_a_mask_and_in_lists_count_exactly():
    node = parse_filter("cat = 'b'")
    rows = matching_rows(node, PAYLOAD, None)
    assert rows.tolist() == [i for i, r in enumerate(ROWS) if r["cat"] == "b"]
    assert cardinality(InList("cat", ("a", "b", "a")), PAYLOAD).high == sum(r["cat"] in ("a", "b") for r in ROWS)
    assert cardinality(Compare("cat", "=", "missing"), PAYLOAD).high == 0


def test_persisted_index_answers_the_same(tmp_path):
    meta, arrays = PAYLOAD.to_arrays()
    write_array_file(tmp_path / "p", meta, arrays)
    reopened = PayloadIndex.from_arrays(*open_array_file(tmp_path / "p"))
    for text in ["year between 1991 and 1995 and cat in ('a', 'it''s')", "tags contains all ('x', 'y')",
                 "not (price > 2 or ts < '2024-01-20')", "open = true and id < 150"]:  # fmt: skip
        node = parse_filter(text)
        np.testing.assert_array_equal(matching_rows(node, reopened, LIVE), matching_rows(node, PAYLOAD, LIVE))
    assert reopened.nbytes == PAYLOAD.nbytes


def test_empty_and_all_null_columns():
    table = pa.table({"id": pa.array([], pa.int64()), "cat": pa.array([], pa.large_string())})
    empty = PayloadIndex.build(table, {"id": "int64", "cat": "string"})
    assert matching_rows(parse_filter("cat = 'a' or id > 3"), empty, None).shape == (0,)
    nulls = pa.table({"cat": pa.nulls(5, pa.large_string()), "n": pa.nulls(5, pa.int64())})
    index = PayloadIndex.build(nulls, {"cat": "string", "n": "int64"})
    assert matching_rows(parse_filter("cat is null and n is null"), index, None).tolist() == [0, 1, 2, 3, 4]
    assert matching_rows(parse_filter("not (cat = 'a')"), index, None).shape == (0,)


def test_a_torn_index_is_reported_as_damaged():
    meta, arrays = PAYLOAD.to_arrays()
    arrays = dict(arrays)
    arrays["1.values"] = arrays["1.values"][:-1]
    with pytest.raises(DataCorruption, match="payload index is damaged"):
        PayloadIndex.from_arrays(meta, arrays)
    with pytest.raises(DataCorruption, match="format version"):
        PayloadIndex.from_arrays({**meta, "version": 99}, PAYLOAD.to_arrays()[1])
