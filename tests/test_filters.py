"""The filter language: parser, builder, binder and the reference evaluator."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ATTRS
from tests.oracles import filter_mask
from vecstore import FilterSyntaxError, InvalidArgument, field, parse_filter
from vecstore.filters import And, Between, Compare, Contains, InList, IsNull, Not, Or, bind, evaluate, to_filter

TYPES = ATTRS
ALL_TYPES = {"id": "int64", **TYPES}


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("year = 2000", Compare("year", "=", 2000)),
        ("year == 2000", Compare("year", "=", 2000)),
        ("year != 2000", Compare("year", "!=", 2000)),
        ("year <> 2000", Compare("year", "!=", 2000)),
        ("price < 2.5", Compare("price", "<", 2.5)),
        ("price <= -1e3", Compare("price", "<=", -1000.0)),
        ("year > -5", Compare("year", ">", -5)),
        ("year >= 7", Compare("year", ">=", 7)),
        ("year between 1 and 5", Between("year", 1, 5)),
        ("cat in ('a', 'b')", InList("cat", ("a", "b"))),
        ("cat not in ('a')", InList("cat", ("a",), negated=True)),
        ("tags contains 'x'", Contains("tags", "one", ("x",))),
        ("tags contains any ('x', 'y')", Contains("tags", "any", ("x", "y"))),
        ("tags contains all ('x', 'y')", Contains("tags", "all", ("x", "y"))),
        ("cat is null", IsNull("cat")),
        ("cat is not null", IsNull("cat", negated=True)),
        ("open", Compare("open", "=", True)),
        ("open = false", Compare("open", "=", False)),
        ("cat = 'it''s'", Compare("cat", "=", "it's")),
        ("`year` = 1", Compare("year", "=", 1)),
        ("YEAR = 1 AND Cat = 'x'", And((Compare("YEAR", "=", 1), Compare("Cat", "=", "x")))),
        ("id in (1, 2)", InList("id", (1, 2))),
    ],
)
def test_every_operator_parses(text, expected):
    assert parse_filter(text) == expected


def test_precedence_not_over_and_over_or():
    a, b, c = (Compare(n, "=", 1) for n in "abc")
    assert parse_filter("a = 1 or b = 1 and c = 1") == Or((a, And((b, c))))
    assert parse_filter("(a = 1 or b = 1) and c = 1") == And((Or((a, b)), c))
    assert parse_filter("not a = 1 and b = 1") == And((Not(a), b))
    assert parse_filter("not (a = 1 and b = 1)") == Not(And((a, b)))
    assert parse_filter("a = 1 and b = 1 and c = 1") == And((a, b, c))


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("year >", 6, "a value"),
        ("year >= 2000 and", 16, "a field name"),
        ("(year = 1", 9, "')'"),
        ("cat in ('a', ", 13, "a value"),
        ("cat in 'a'", 7, "'('"),
        ("year between 1 or 2", 15, "'and' between"),
        ("year = 1 year = 2", 9, "'and', 'or'"),
        ("cat = 'abc", 6, "not closed"),
        ("year = 1 # 2", 9, "unexpected character"),
        ("cat is nul", 7, "'null'"),
        ("cat not like 'a'", 8, "'in'"),
        ("= 5", 0, "a field name"),
        ("", 0, "a filter expression"),
        ("year = null", 7, "is null"),
    ],
)
def test_syntax_errors_name_position_and_expectation(text, position, expected):
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.position == position
    assert expected in str(info.value)


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(FilterSyntaxError, match="nests deeper"):
        parse_filter("(" * 500 + "a = 1" + ")" * 500)


# -- binding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yeer > 1", "did you mean 'year'"),
        ("year = 'x'", "compare it with a number"),
        ("cat = 5", "quote the value"),
        ("tags = 'x'", "use 'contains'"),
        ("cat contains 'x'", "needs a list<string> field"),
        ("open > true", "only = and !="),
        ("year", "only a bool field"),
        ("ts > 'yesterday'", "not a valid timestamp"),
        ("ts > 5", "ISO date string"),
        ("open = 1", "true or false"),
        ("price > 1e999", "finite"),
    ],
)
def test_binding_rejects_unknown_fields_and_wrong_types(text, message):
    with pytest.raises(InvalidArgument, match=message):
        to_filter(text, TYPES)


@pytest.mark.parametrize(
    ("text", "example"),
    [
        ("year between 'a' and 'b'", "e.g. year between 10 and 20 (got 'a')"),
        ("year in ('a')", "e.g. year in (10, 20) (got 'a')"),
        ("year >= 'a'", "e.g. year >= 10 (got 'a')"),
        ("cat between 1 and 2", "e.g. cat between 'a' and 'm' (got 1)"),
        ("tags contains 5", "e.g. tags contains 'a' (got 5)"),
    ],
)
def test_type_errors_show_a_well_formed_example(text, example):
    with pytest.raises(InvalidArgument) as info:
        bind(parse_filter(text), TYPES)
    assert example in str(info.value)


def test_builder_produces_the_parsers_ast():
    built = ((field("year") >= 2020) & field("cat").isin(["a", "b"])) | ~field("open").is_null()
    assert built == parse_filter("year >= 2020 and cat in ('a', 'b') or not open is null")
    assert field("tags").contains_all(["x"]) == parse_filter("tags contains all ('x')")
    assert field("ts").between(dt.date(2024, 1, 1), np.datetime64("2024-02-01")) == Between(
        "ts", "2024-01-01", "2024-02-01T00:00:00.000000"
    )
    with pytest.raises(TypeError):
        bool(field("year") > 1)


# -- evaluation against the row-by-row oracle ----------------------------------------------------

CATS = ["a", "b", "c", "it's"]
TAGS = ["x", "y", "z"]


def _rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)

    def maybe(value):
        return None if rng.random() < 0.15 else value

    base = dt.datetime(2024, 1, 1)
    return [
        {
            "id": i,
            "year": maybe(int(rng.integers(1990, 2001))),
            "price": maybe(float(rng.integers(0, 20)) / 4),
            "ts": maybe(base + dt.timedelta(days=int(rng.integers(0, 60)))),
            "cat": maybe(CATS[int(rng.integers(len(CATS)))]),
            "tags": maybe([t for t in TAGS if rng.random() < 0.4]),
            "open": maybe(bool(rng.random() < 0.5)),
        }
        for i in range(n)
    ]


def _columns(rows: list[dict]) -> dict[str, pa.Array]:
    types = {
        "id": pa.int64(),
        "year": pa.int64(),
        "price": pa.float64(),
        "ts": pa.timestamp("us"),
        "cat": pa.large_string(),
        "tags": pa.large_list(pa.large_string()),
        "open": pa.bool_(),
    }
    return {name: pa.array([r[name] for r in rows], type=t) for name, t in types.items()}


ROWS = _rows(300, seed=11)
COLUMNS = _columns(ROWS)

_years = st.integers(1988, 2002)
_prices = st.sampled_from([0.0, 0.25, 1.5, 2.0, 4.75, 5.5, -1.0])
_dates = st.sampled_from(["2024-01-01", "2024-01-15T12:00:00", "2024-02-10", "2023-12-31T23:00:00Z"])
_cats = st.sampled_from([*CATS, "zz"])
_tags = st.sampled_from([*TAGS, "w"])
_op = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])

_leaf = st.one_of(
    st.builds(Compare, st.just("year"), _op, _years),
    st.builds(Compare, st.just("year"), _op, st.sampled_from([1995.5, 1990.0])),
    st.builds(Compare, st.just("price"), _op, _prices),
    st.builds(Compare, st.just("price"), _op, st.integers(-1, 6)),
    st.builds(Compare, st.just("ts"), _op, _dates),
    st.builds(Compare, st.just("cat"), _op, _cats),
    st.builds(Compare, st.just("open"), st.sampled_from(["=", "!="]), st.booleans()),
    st.builds(Compare, st.just("id"), _op, st.integers(-1, 301)),
    st.builds(Between, st.just("year"), _years, _years),
    st.builds(Between, st.just("ts"), _dates, _dates),
    st.builds(InList, st.just("cat"), st.lists(_cats, min_size=1, max_size=3).map(tuple), st.booleans()),
    st.builds(InList, st.just("year"), st.lists(_years, min_size=1, max_size=4).map(tuple), st.booleans()),
    st.builds(InList, st.just("year"), st.tuples(st.sampled_from([1995.5, 1996.0])), st.booleans()),
    st.builds(Contains, st.just("tags"), st.just("one"), st.tuples(_tags)),
    st.builds(Contains, st.just("tags"), st.sampled_from(["any", "all"]), st.lists(_tags, min_size=1).map(tuple)),
    st.builds(IsNull, st.sampled_from(list(TYPES)), st.booleans()),
)
filters = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda c: And.of(*c)),
        st.lists(children, min_size=2, max_size=3).map(lambda c: Or.of(*c)),
        children.map(Not),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(filters)
def test_evaluator_equals_row_by_row_oracle_and_text_round_trips(node):
    assert parse_filter(str(node)) == node
    bind(node, TYPES)
    got = evaluate(node, COLUMNS, len(ROWS))
    want = filter_mask(node, ROWS, ALL_TYPES)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=200, deadline=None)
@given(filters)
def test_a_nodes_kept_hash_is_its_fields_hash_and_is_not_pickled(node):
    again = parse_filter(str(node))
    assert again is not node and hash(again) == hash(node) and {node: 1}[again] == 1
    assert hash(node) == hash(node)  # the kept hash, the second time
    restored = pickle.loads(pickle.dumps(node))
    assert "_hash" not in restored.__dict__  # string hashes differ between processes: recomputed there
    assert restored == node and hash(restored) == hash(node)


def test_evaluator_on_chunked_columns_and_empty_tables():
    chunked = {name: pa.chunked_array([col.slice(0, 100), col.slice(100)]) for name, col in COLUMNS.items()}
    node = parse_filter("tags contains any ('x') and year between 1990 and 1995 or cat in ('a')")
    np.testing.assert_array_equal(evaluate(node, chunked, len(ROWS)), filter_mask(node, ROWS, ALL_TYPES))
    empty = {name: col.slice(0, 0) for name, col in COLUMNS.items()}
    assert evaluate(node, empty, 0).shape == (0,)
