"""The engine on real embeddings with real attributes (../shared/data/movies)."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from bench.datasets import MOVIES_ATTRIBUTES, DatasetMissing, load_embedding_dataset
from tests.oracles import assert_same_neighbours, exact_search, filter_mask
from vecstore.filters import field_types, to_filter


@pytest.fixture(scope="module")
def movies():
    try:
        return load_embedding_dataset("movies")
    except DatasetMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def movie_rows(movies):
    return movies.attributes.to_pylist()


@pytest.fixture(scope="module")
def movie_collection(movies, tmp_path_factory):
    db = vecstore.connect(tmp_path_factory.mktemp("movies") / "db")
    col = db.create_collection("movies", dim=384, metric="cosine", attributes=MOVIES_ATTRIBUTES, window="year")
    n = movies.vectors.shape[0]
    for start in range(0, n, 20_000):  # several sealed segments and an appendable tail
        batch = movies.attributes.slice(start, 20_000)
        col.upsert(
            batch.column("id"),
            movies.vectors[start : start + 20_000],
            {name: batch.column(name) for name in MOVIES_ATTRIBUTES},
        )
        if start == 0:
            col.seal()
    yield col
    db.close()


def test_every_movie_is_stored(movies, movie_collection):
    assert movie_collection.count() == movies.vectors.shape[0]
    got = movie_collection.get([0, 31_000, 58_787])
    assert got.column("title").to_pylist() == movies.attributes.take([0, 31_000, 58_787]).column("title").to_pylist()


def test_a_title_finds_itself_and_respects_the_year_filter(movies, movie_collection):
    titles = movies.attributes.column("title").to_pylist()
    years = np.asarray(movies.attributes.column("year"))
    row = titles.index("Star Wars")
    res = movie_collection.search(movies.vectors[row], k=10, filter="year < 1990", select=["title", "year"])
    table = res.to_arrow()
    assert table.column("id")[0].as_py() == row
    assert all(y < 1990 for y in table.column("year").to_pylist())
    assert all(years[i] < 1990 for i in res.ids[0])


@pytest.mark.parametrize(
    "text",
    [
        None,
        "year between 1990 and 1999",
        "genres contains 'Animation'",
        "year >= 2000 and genres contains any ('Documentary', 'Short') and rating > 7",
        "mpaa in ('R', 'PG-13') and votes > 1000",
        "budget is not null and length < 80",
    ],
)
def test_filtered_search_equals_exact_search_over_the_subset(movies, movie_rows, movie_collection, text):
    rng = np.random.default_rng(7)
    queries = movies.vectors[rng.choice(movies.vectors.shape[0], 12, replace=False)]
    allowed = filter_mask(to_filter(text, MOVIES_ATTRIBUTES), movie_rows, field_types(MOVIES_ATTRIBUTES))
    assert movie_collection.count(text) == allowed.sum()
    ids = np.flatnonzero(allowed)  # row i has id i
    want_ids, want_d = exact_search("cosine", queries, movies.vectors[ids], ids, 10)
    for batch in (queries, queries[:1]):
        res = movie_collection.search(batch, k=10, filter=text, exact=True)
        assert_same_neighbours(res.ids, res.distances, want_ids[: len(batch)], want_d[: len(batch)], atol=1e-4)


@pytest.mark.parametrize("text", [None, "year >= 1990", "genres contains 'Drama'", "rating > 7"])
def test_graph_search_on_real_data_keeps_recall_and_the_filter(movies, movie_rows, movie_collection, text):
    """The approximate path: once the sealed segment's graph is published, searches use it where the
    planner finds it cheaper; recall@10 >= 0.95 against exact search over the allowed rows, and no
    returned row fails the filter."""
    assert movie_collection.wait_for_indexes(timeout=300)
    rng = np.random.default_rng(11)
    queries = movies.vectors[rng.choice(movies.vectors.shape[0], 50, replace=False)]
    allowed = filter_mask(to_filter(text, MOVIES_ATTRIBUTES), movie_rows, field_types(MOVIES_ATTRIBUTES))
    ids = np.flatnonzero(allowed)
    want_ids, _ = exact_search("cosine", queries, movies.vectors[ids], ids, 10)
    res = movie_collection.search(queries, k=10, filter=text, explain=True)
    strategies = {segment["strategy"] for segment in res.plan[0]["segments"]}
    if text is None:
        assert "hnsw" in strategies
    assert allowed[res.ids[res.ids >= 0]].all()
    hits = [len(set(g) & set(w[w >= 0])) / max(1, (w >= 0).sum()) for g, w in zip(res.ids, want_ids, strict=True)]
    assert np.mean(hits) >= 0.95
