"""The window search tree: bucket layout, covers and splits of windows, persistence, and search
through bucket graphs against exact search over the window (subset test)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.oracles import exact_search
from vecstore.core import tree_geometry
from vecstore.errors import DataCorruption, InvalidArgument
from vecstore.index.hnsw import HnswIndex
from vecstore.index.window_tree import (
    WindowTree,
    bucket_bounds,
    check_parameters,
    straddle_bounds,
    straddle_keys,
    tree_depth,
)

N, DIM = 3000, 6
VECTORS = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
ROOT = HnswIndex.build(VECTORS, "l2", m=8, ef_construction=60, seed=1)
TREE = WindowTree.build(ROOT, beta=4, leaf_rows=64, seed=2)


def test_layout():
    assert TREE.depth == tree_depth(N, 4, 64) == 2  # buckets of 750 and 187 rows; 46 would be under 64
    for level in range(TREE.depth + 1):
        bounds = [bucket_bounds(N, 4, level, i) for i in range(4**level)]
        assert bounds[0][0] == 0 and bounds[-1][1] == N
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert len(TREE.graphs) == 4 + 16
    # the default: straddles of level 1, six starting every half bucket (375 rows), 1.5 buckets long,
    # then three over neighbouring buckets
    assert TREE.straddle_levels == 1 and sorted(TREE.straddles) == [(1, i) for i in range(9)]
    assert TREE.nbytes == sum(index.graph.nbytes for index in (*TREE.graphs.values(), *TREE.straddles.values()))
    assert [straddle_bounds(N, 4, 1, i) for i in range(6)] == [(375 * i, 375 * i + 1125) for i in range(6)]
    assert [straddle_bounds(N, 4, 1, i) for i in range(6, 9)] == [(0, 1500), (750, 2250), (1500, 3000)]
    assert np.shares_memory(TREE.straddles[(1, 1)].vectors, ROOT.vectors)
    assert TREE.straddles[(1, 1)].graph.n == 1125 and TREE.straddles[(1, 7)].graph.n == 1500
    # beta 2: the two children of one parent would be the parent, so only pairs across parents
    assert straddle_keys(2, 3, 2) == [(1, 0), (1, 1)] + [(2, i) for i in range(6)] + [(2, 7)]
    assert straddle_keys(4, 1, 2) == [(1, i) for i in range(9)]  # no deeper than the tree
    child = TREE.graphs[(2, 5)]
    start, stop = bucket_bounds(N, 4, 2, 5)
    assert np.shares_memory(child.vectors, ROOT.vectors) and child.vectors.shape[0] == stop - start


windows = st.integers(0, N - 1).flatmap(lambda lo: st.tuples(st.just(lo), st.integers(lo + 1, N)))


@settings(max_examples=300, deadline=None)
@given(windows)
def test_cover_and_three_split_partition_the_window(window):
    lo, hi = window
    holder = TREE.smallest_holding(lo, hi)
    assert holder.start <= lo and hi <= holder.stop
    assert all(not (c.start <= lo and hi <= c.stop) for c in TREE.children(holder))  # no child holds it
    buckets, ranges = TREE.cover(lo, hi)
    pieces = sorted([(b.start, b.stop) for b in buckets] + ranges)
    assert pieces[0][0] == lo and pieces[-1][1] == hi
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))  # disjoint, no gap
    assert all(b.index is not None for b in buckets)
    assert sum(stop - start for start, stop in ranges) < 2 * N / 4**TREE.depth + 2  # at most two leaf buckets' worth
    whole, parts = TREE.three_split(lo, hi)
    if holder.level < TREE.depth:
        pieces = sorted([(b.start, b.stop) for b in whole] + [(s, e) for _, s, e in parts])
        assert pieces[0][0] == lo and pieces[-1][1] == hi and len(parts) <= 2
        assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
        assert all(b.start <= s and e <= b.stop for b, s, e in parts)


DEEP = WindowTree.build(ROOT, beta=4, leaf_rows=64, seed=2, straddle_levels=2)


@settings(max_examples=300, deadline=None)
@given(windows)
def test_postfilter_holder_is_the_fewest_rows_holding_the_window(window):
    lo, hi = window
    for tree in (TREE, DEEP):
        bucket = tree.postfilter_bucket(lo, hi)
        assert bucket.start <= lo and hi <= bucket.stop and bucket.index is not None
        assert bucket.index.graph.n == bucket.rows
        regular = [tree.bucket(lv, i) for lv in range(tree.depth + 1) for i in range(4**lv)]
        joined = [tree.straddle(*key) for key in tree.straddles]
        holding = [b for b in regular + joined if b.start <= lo and hi <= b.stop]
        assert bucket.rows == min(b.rows for b in holding)
        if hi - lo <= N // 4 and tree.straddles:  # no longer than a level-1 bucket: at most 1.5 of them
            assert bucket.rows <= 3 * N // 8
        if lo < N // 2 < hi and hi - lo <= N // 2 and lo >= N // 4 and hi <= 3 * N // 4 and tree.straddles:
            assert bucket.rows <= N // 2  # within the middle two level-1 buckets: their pair holds it


@settings(max_examples=300, deadline=None)
@given(st.integers(200, 5000), st.sampled_from([2, 3, 4, 5]), st.integers(1, 2), st.data())
def test_a_window_no_longer_than_a_bucket_lies_in_a_straddle_of_its_level(n, beta, level, data):
    """Over any row count and beta: the straddle starting in the half bucket holding lo reaches past any
    window of at most a bucket's length (their bounds round as the buckets' do)."""
    halves = 2 * beta**level
    shortest = min(stop - start for start, stop in (bucket_bounds(n, beta, level, i) for i in range(beta**level)))
    lo = data.draw(st.integers(0, n - 1))
    hi = min(n, lo + data.draw(st.integers(1, shortest)))
    number = min(lo * halves // n, halves - 3)
    while number + 1 <= halves - 3 and straddle_bounds(n, beta, level, number + 1)[0] <= lo:
        number += 1
    while straddle_bounds(n, beta, level, number)[0] > lo:
        number -= 1
    start, stop = straddle_bounds(n, beta, level, number)
    assert (level, number) in straddle_keys(beta, level, level) and number < halves - 2
    assert start <= lo and hi <= stop


@settings(max_examples=400, deadline=None)
@given(st.integers(64, 20_000), st.sampled_from([2, 3, 4, 5, 8]), st.integers(16, 400), st.integers(0, 3), st.data())
def test_compiled_geometry_matches_every_bucket_listed(n, beta, leaf_rows, straddle_levels, data):
    """``tree_geometry.holders`` against a listing of every bucket and straddle bucket of the layout:
    the deepest bucket holding the window, and a graph holding it with the fewest rows of them all
    (the bucket itself on a tie)."""
    depth = tree_depth(n, beta, leaf_rows)
    levels = min(straddle_levels, depth)
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo + 1, n))
    level, number, at, held, straddle, rows = tree_geometry.holders(n, beta, depth, levels, lo, hi)
    buckets = [(lv, i, *bucket_bounds(n, beta, lv, i)) for lv in range(depth + 1) for i in range(beta**lv)]
    holding = [(lv, i) for lv, i, start, stop in buckets if start <= lo and hi <= stop]
    assert (level, number) == max(holding)  # the deepest (one bucket a level can hold it)
    assert tree_geometry.holder(n, beta, depth, lo, hi) == (level, number)
    graphs = {(lv, i, False): (start, stop) for lv, i, start, stop in buckets}
    graphs.update({(lv, i, True): straddle_bounds(n, beta, lv, i) for lv, i in straddle_keys(beta, depth, levels)})
    fewest = min(stop - start for start, stop in graphs.values() if start <= lo and hi <= stop)
    start, stop = graphs[(at, held, straddle)]
    assert start <= lo and hi <= stop and rows == stop - start == fewest
    if not straddle:
        assert (at, held) == (level, number)
    else:
        assert rows < bucket_bounds(n, beta, level, number)[1] - bucket_bounds(n, beta, level, number)[0]


def test_straddle_postfilter_finds_the_windows_neighbours():
    """Subset test through a straddle bucket: a window astride the middle, masked in its graph."""
    lo, hi = 1200, 1900
    bucket = TREE.postfilter_bucket(lo, hi)
    assert bucket.straddle and (bucket.start, bucket.stop) == (1125, 2250)
    # 1.6 level-1 buckets across the middle: too long for the shorter straddles, held by the pair
    assert (TREE.postfilter_bucket(900, 2100).start, TREE.postfilter_bucket(900, 2100).stop) == (750, 2250)
    queries = np.random.default_rng(4).standard_normal((30, DIM)).astype(np.float32)
    mask = np.zeros(bucket.rows, dtype=bool)
    mask[lo - bucket.start : hi - bucket.start] = True
    ids, _ = bucket.index.search(queries, 10, ef=64, mask=mask)
    got = np.where(ids >= 0, ids + bucket.start, -1)
    want, _ = exact_search("l2", queries, VECTORS[lo:hi], np.arange(lo, hi), 10)
    assert np.all((got >= lo) & (got < hi))
    assert np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)]) >= 0.95


def _search_window(lo: int, hi: int, queries: np.ndarray, k: int) -> np.ndarray:
    """Cover: every covering bucket searched unfiltered, the ends exactly, merged by distance."""
    buckets, ranges = TREE.cover(lo, hi)
    found = []
    for b in buckets:
        ids, dists = b.index.search(queries, k, ef=64)
        found.append((np.where(ids >= 0, ids + b.start, -1), dists))
    for start, stop in ranges:
        ids, dists = exact_search("l2", queries, VECTORS[start:stop], np.arange(start, stop), k)
        found.append((ids, dists))
    ids = np.concatenate([f[0] for f in found], axis=1)
    dists = np.concatenate([f[1] for f in found], axis=1)
    order = np.argsort(np.where(ids >= 0, dists, np.inf), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(ids, order, axis=1)


@pytest.mark.parametrize(("lo", "hi"), [(0, N), (700, 800), (740, 1510), (5, 2990), (1499, 1502)])
def test_cover_search_finds_the_windows_neighbours(lo, hi):
    queries = np.random.default_rng(3).standard_normal((20, DIM)).astype(np.float32)
    got = _search_window(lo, hi, queries, 10)
    want, _ = exact_search("l2", queries, VECTORS[lo:hi], np.arange(lo, hi), 10)
    assert np.all((got >= lo) & (got < hi) | (got == -1))  # never a row outside the window
    hits = [len(set(g[g >= 0]) & set(w[w >= 0])) / max(1, (w >= 0).sum()) for g, w in zip(got, want, strict=True)]
    assert np.mean(hits) >= 0.95


def test_persisted_tree_is_the_same_tree():
    meta, arrays = TREE.to_arrays()
    again = WindowTree.from_arrays(ROOT, meta, arrays)
    assert again.depth == TREE.depth and set(again.graphs) == set(TREE.graphs)
    assert set(again.straddles) == set(TREE.straddles) and again.straddle_levels == 1
    queries = VECTORS[:5] + 0.01
    for key in [(1, 2), (2, 11)]:
        np.testing.assert_array_equal(
            again.graphs[key].search(queries, 5, 32)[0], TREE.graphs[key].search(queries, 5, 32)[0]
        )
    np.testing.assert_array_equal(
        again.straddles[(1, 1)].search(queries, 5, 32)[0], TREE.straddles[(1, 1)].search(queries, 5, 32)[0]
    )
    # a tree of the first layout (straddles over two whole buckets) is refused, to be built again
    with pytest.raises(DataCorruption, match="written in layout version 1, this build reads 2"):
        WindowTree.from_arrays(ROOT, {**meta, "version": 1}, arrays)
    with pytest.raises(DataCorruption, match="window tree is damaged"):
        WindowTree.from_arrays(ROOT, {**meta, "rows": N + 1}, arrays)
    with pytest.raises(DataCorruption, match="window tree is damaged"):
        WindowTree.from_arrays(ROOT, {**meta, "buckets": meta["buckets"][:-1]}, arrays)


def test_parameters_are_checked():
    for beta, leaf in [(1, 64), (65, 64), (4, 10), (True, 64), (4, 2.5)]:
        with pytest.raises(InvalidArgument, match="window tree"):
            check_parameters(beta, leaf)
    for straddle_levels in (-1, 17, True, 1.0):
        with pytest.raises(InvalidArgument, match="straddle_levels"):
            check_parameters(4, 64, straddle_levels)
    assert (
        tree_depth(100, 4, 2048) == 0 and WindowTree.build(HnswIndex.build(VECTORS[:100], "l2"), 4, 2048).graphs == {}
    )
