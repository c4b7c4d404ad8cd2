"""Window filters on the sort column are answered by binary search; they must equal the evaluator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vecstore
from vecstore.engine.allowed import Allowed, allowed_offsets
from vecstore.filters import And, Between, Compare, InList, IsNull, Not, Or, evaluate


@pytest.fixture(scope="module")
def sorted_views(tmp_path_factory):
    db = vecstore.connect(tmp_path_factory.mktemp("win") / "db")
    rng = np.random.default_rng(4)
    n = 400
    years = rng.integers(0, 30, n).astype(float)
    years[rng.random(n) < 0.1] = np.nan  # stored as null: sorts last, never inside a window
    stamps = (np.datetime64("2024-01-01") + rng.integers(0, 50, n).astype("timedelta64[h]")).astype("datetime64[us]")
    views = {}
    kinds = np.array(["a", "b", "c", None], dtype=object)[rng.integers(0, 4, n)]
    for name, attrs, window, values in [
        ("f", {"w": "float64", "kind": "string"}, "w", years),
        ("t", {"w": "timestamp", "kind": "string"}, "w", stamps),
    ]:
        col = db.create_collection(name, dim=2, metric="l2", attributes=attrs, window=window)
        col.upsert(np.arange(n), rng.standard_normal((n, 2)), {"w": values, "kind": list(kinds)})
        col.seal()
        col.delete(np.arange(0, n, 9))  # tombstones inside the slices
        (view,) = col._snapshot()
        assert view.sorted_by == "w" and view.live is not None
        views[name] = view
    yield views
    db.close()


numbers = st.one_of(st.integers(-2, 32), st.sampled_from([3.5, 10.0, 29.99, -0.5]))
stamps = st.sampled_from(["2024-01-01", "2024-01-01T05:00:00", "2024-01-02T01:30:00", "2024-01-03", "2023-12-31"])
ops = st.sampled_from(["=", "<", "<=", ">", ">="])


def windows(values):
    single = st.one_of(st.builds(Compare, st.just("w"), ops, values), st.builds(Between, st.just("w"), values, values))
    return st.one_of(single, st.lists(single, min_size=2, max_size=3).map(lambda c: And(tuple(c))))


def _check(view, node, found_by="window_slice"):
    got, how = allowed_offsets(view, node)
    assert how == found_by
    want = np.flatnonzero(evaluate(node, view.columns(), view.num_rows) & view.live)
    np.testing.assert_array_equal(got, want)


kinds = st.sampled_from(["a", "b", "c", "zz"])
leaves = st.one_of(
    st.builds(Compare, st.just("kind"), st.sampled_from(["=", "!="]), kinds),
    st.builds(InList, st.just("kind"), st.lists(kinds, min_size=1, max_size=3).map(tuple), st.booleans()),
    st.builds(IsNull, st.just("kind"), st.booleans()),
    st.builds(Compare, st.just("id"), ops, st.integers(-5, 405)),
)
others = st.recursive(
    leaves,
    lambda inner: st.one_of(st.builds(Not, inner), st.lists(inner, min_size=2, max_size=3).map(lambda c: Or(tuple(c)))),
    max_leaves=4,
)


@settings(max_examples=200, deadline=None)
@given(windows(numbers), st.lists(others, min_size=1, max_size=2))
def test_window_and_other_filters_equal_evaluator(sorted_views, window, rest):
    """``window and rest``: the rest's rows cut to the window's slice, as the evaluator says (nulls,
    negations and deleted rows included)."""
    _check(sorted_views["f"], And.of(window, *rest), found_by="payload_index")
    _check(sorted_views["f"], And.of(*rest, window), found_by="payload_index")


@settings(max_examples=200, deadline=None)
@given(windows(numbers))
def test_numeric_window_slice_equals_evaluator(sorted_views, node):
    _check(sorted_views["f"], node)


@settings(max_examples=100, deadline=None)
@given(windows(stamps))
def test_timestamp_window_slice_equals_evaluator(sorted_views, node):
    _check(sorted_views["t"], node)


def test_other_filters_on_a_sealed_segment_use_its_payload_index(sorted_views):
    view = sorted_views["f"]
    for text in ["w > 3 or w < 1", "not w > 3", "w in (1, 2)", "w is null", "w > 3 and id < 50"]:
        node = vecstore.parse_filter(text)
        assert allowed_offsets(view, node)[1] == "payload_index"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60).flatmap(lambda n: st.lists(st.integers(0, 59), max_size=n, unique=True)))
def test_allowed_mask_equals_its_offsets(rows):
    """A run of offsets (a window) is masked by a slice, anything else by a scatter: same mask."""
    offsets = np.array(sorted(rows), dtype=np.int64)
    mask = Allowed(offsets, "window_slice").mask(60)
    np.testing.assert_array_equal(np.flatnonzero(mask), offsets)
    run = np.arange(7, 7 + len(rows), dtype=np.int64)
    np.testing.assert_array_equal(np.flatnonzero(Allowed(run, "window_slice").mask(70)), run)
    # the same run told by its bounds: same count, span, mask and (listed on demand) offsets
    told = Allowed.run(7, 7 + len(rows))
    listed = Allowed(run, "window_slice")
    assert told.count == listed.count == len(rows) and told.found_by == "window_slice"
    if len(rows):
        assert told.bounds == listed.bounds == (7, 7 + len(rows))
    np.testing.assert_array_equal(told.mask(70), listed.mask(70))
    np.testing.assert_array_equal(told.offsets, run)
    assert Allowed.run(0, 70).covers(70) and not Allowed.run(1, 70).covers(70)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 80), st.integers(0, 80), st.integers(0, 80), st.integers(0, 80))
def test_a_mask_within_a_bucket_is_the_slice_of_the_whole_mask(lo, length, start, width):
    """What a window-tree bucket [start, stop) is walked with: a run masks only the bucket's rows, a
    list of offsets slices its mask; both as the whole segment's mask sliced."""
    hi, stop = min(80, lo + length), min(80, start + width)
    run, listed = Allowed.run(lo, hi), Allowed(np.arange(lo, hi, dtype=np.int64)[::2], "payload_index")
    for allowed in (run, listed):
        within = allowed.mask_within(80, start, stop)
        assert within.dtype == np.bool_
        np.testing.assert_array_equal(within, allowed.mask(80)[start:stop])
