"""Filter workloads over a bench dataset, with exact filtered ground truth (cached in its HDF5 file).

- ``unfiltered``: the dataset's own test queries and neighbours.
- ``window 2^-e``: per query, a random contiguous interval of ``2^-e * n`` label ranks, turned into a
  ``between`` on the window column (so the window follows the label distribution; ties at its ends
  can make it a little wider). On the adversarial set the interval lies inside a cluster other than
  the query's own.
- categorical: equality / IN / tag-contains with values drawn by row frequency (their natural
  selectivity); empty and null values are never drawn.
- ``<column> 2^-e``: the same random rank intervals on another numeric column (movie rating and votes),
  which no window tree serves: the payload index's sorted values find its rows.
- conjunction: a ``2^-3`` window AND the dataset's first categorical predicate.

Predicates are regenerated from the seed; only the ground truth is cached.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.annfile import BenchDataset
from bench.columns import Column
from bench.groundtruth import Searcher, check_against_numpy
from bench.predicates import AllOf, HasTag, OneOf, Predicate, Window

K = 10
CONJUNCTION_WINDOW_EXPONENT = 3


@dataclass
class Workload:
    name: str
    kind: str  # unfiltered | window | range | categorical | conjunction
    fraction: float  # mean fraction of train rows the filters allow
    predicates: list[Predicate | None]
    neighbors: np.ndarray  # int64 [q, K], -1 padded
    distances: np.ndarray  # float64 [q, K], +inf padded
    exponent: int | None = None  # window and range workloads: the fraction is 2^-exponent

    def masks(self, dataset: BenchDataset) -> list[np.ndarray | None]:
        return [None if p is None else p.mask(dataset.columns) for p in self.predicates]


def _draw_value(column: Column, rng: np.random.Generator) -> str:
    """A category drawn by row frequency, never null or empty."""
    codes = column.values
    for _ in range(1000):
        code = int(codes[rng.integers(0, len(codes))]) if len(codes) else -1
        if code >= 0 and column.categories[code] != "":
            return str(column.categories[code])
    raise ValueError("column has no non-empty values to draw")


def _draw_values(column: Column, rng: np.random.Generator, count: int) -> tuple[str, ...]:
    values: list[str] = []
    while len(values) < min(count, len(column.categories)):
        value = _draw_value(column, rng)
        if value not in values:
            values.append(value)
    return tuple(values)


CategoricalMaker = Callable[[dict[str, Column], np.random.Generator], Predicate]


def _eq(col: str) -> tuple[str, CategoricalMaker]:
    return f"{col} =", lambda cols, rng: OneOf(col, (_draw_value(cols[col], rng),))


def _in(col: str, count: int) -> tuple[str, CategoricalMaker]:
    return f"{col} in ({count})", lambda cols, rng: OneOf(col, _draw_values(cols[col], rng, count))


def _tag(col: str) -> tuple[str, CategoricalMaker]:
    return f"{col} contains", lambda cols, rng: HasTag(col, _draw_value(cols[col], rng))


CATEGORICAL: dict[str, list[tuple[str, CategoricalMaker]]] = {
    "fashion-mnist": [_eq("class"), _in("class", 2)],
    "git-commits": [_eq("repo"), _in("repo", 2), _eq("area"), _tag("top_dirs")],
    "movies": [_tag("genres"), _eq("mpaa")],
    "jeopardy": [_eq("category"), _in("category", 3), _eq("round")],
    "clustered": [_eq("cluster")],
    "adversarial": [],
}
#: numeric columns besides the window column that get range workloads at the window exponents
RANGE_COLUMNS: dict[str, tuple[str, ...]] = {"movies": ("rating", "votes")}


def _rng(dataset: BenchDataset, name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{dataset.name}/{name}".encode())])


def _rank_window(column: Column, ranks_sorted: np.ndarray, start: int, length: int, name: str) -> Window:
    lo, hi = ranks_sorted[start], ranks_sorted[start + length - 1]
    if column.kind == "float64":
        return Window(name, float(lo), float(hi))
    return Window(name, int(lo), int(hi))


def window_predicates(
    dataset: BenchDataset, exponent: int, n_queries: int, seed: int, column_name: str | None = None
) -> list[Predicate]:
    """Per query, a random interval of ``2^-exponent`` of the rows by rank on the window column (or on
    ``column_name``)."""
    name = column_name or dataset.window
    column = dataset.columns[name]
    ordered = np.sort(column.values)
    n = len(ordered)
    length = max(1, round(n * 2.0**-exponent))
    rng = _rng(dataset, f"window{exponent}" if column_name is None else f"{column_name}{exponent}", seed)
    if dataset.name != "adversarial" or column_name is not None:
        starts = rng.integers(0, n - length + 1, size=n_queries)
        return [_rank_window(column, ordered, int(s), length, name) for s in starts]
    # adversarial: a window inside another cluster's label range (cluster c owns labels [c, c + 1))
    query_cluster = dataset.test_columns["cluster"].values[:n_queries]
    n_clusters = len(dataset.columns["cluster"].categories)
    out: list[Predicate] = []
    for own in query_cluster:
        other = (int(own) + 1 + int(rng.integers(0, n_clusters - 1))) % n_clusters
        first, last = np.searchsorted(ordered, [other, other + 1])
        span = max(1, min(length, last - first))
        start = first + int(rng.integers(0, max(1, last - first - span + 1)))
        out.append(_rank_window(column, ordered, start, span, dataset.window))
    return out


def window_exponents_for(dataset: BenchDataset, exponents: list[int]) -> list[int]:
    """The adversarial set keeps windows inside one cluster, so fractions above a cluster's share go."""
    if dataset.name != "adversarial":
        return exponents
    n_clusters = len(dataset.columns["cluster"].categories)
    return [e for e in exponents if 2.0**-e <= 1.0 / n_clusters]


def build(
    dataset: BenchDataset,
    window_exponents: list[int],
    n_queries: int,
    categorical: bool = True,
    conjunction: bool = True,
    seed: int = 7,
) -> list[Workload]:
    """The workloads of ``dataset``: unfiltered, windows and ranges at ``2^-e`` for each exponent,
    categorical, conjunctions."""
    n_queries = min(n_queries, len(dataset.test))
    out = [
        Workload("unfiltered", "unfiltered", 1.0, [None] * n_queries, dataset.neighbors[:n_queries, :K],
                 dataset.distances[:n_queries, :K])
    ]  # fmt: skip
    specs: list[tuple[str, str, list[Predicate], int | None]] = []
    if dataset.window:
        for e in window_exponents_for(dataset, window_exponents):
            specs.append((f"window 2^-{e}", "window", window_predicates(dataset, e, n_queries, seed), e))
    for column in RANGE_COLUMNS.get(dataset.name, ()):
        for e in window_exponents:
            specs.append((f"{column} 2^-{e}", "range", window_predicates(dataset, e, n_queries, seed, column), e))
    makers = CATEGORICAL.get(dataset.name, []) if categorical else []
    for name, maker in makers:
        rng = _rng(dataset, name, seed)
        specs.append((name, "categorical", [maker(dataset.columns, rng) for _ in range(n_queries)], None))
    if conjunction and makers and dataset.window:
        name, maker = makers[0]
        windows = window_predicates(dataset, CONJUNCTION_WINDOW_EXPONENT, n_queries, seed)
        rng = _rng(dataset, "conjunction", seed)
        preds = [AllOf((w, maker(dataset.columns, rng))) for w in windows]
        specs.append((f"window 2^-{CONJUNCTION_WINDOW_EXPONENT} & {name}", "conjunction", preds, None))
    for name, kind, predicates, exponent in specs:
        neighbors, distances, fractions = _ground_truth(dataset, name, predicates)
        out.append(Workload(name, kind, float(fractions.mean()), predicates, neighbors, distances, exponent))
    return out


def _ground_truth(dataset: BenchDataset, name: str, predicates: list[Predicate]) -> tuple[np.ndarray, ...]:
    """Exact filtered answers, read from the dataset file when this workload was computed before."""
    import h5py

    key = f"workloads/{name}/q{len(predicates)}"
    with h5py.File(dataset.path, "r") as f:
        if key in f:
            g = f[key]
            return g["neighbors"][:].astype(np.int64), g["distances"][:], g["fractions"][:]
    searcher = Searcher(dataset.train, dataset.metric)
    masks = [p.mask(dataset.columns) for p in predicates]
    queries = dataset.test[: len(predicates)]
    neighbors = np.full((len(masks), K), -1, dtype=np.int64)
    distances = np.full((len(masks), K), np.inf)
    for i, mask in enumerate(masks):
        neighbors[i : i + 1], distances[i : i + 1] = searcher.topk(queries[i : i + 1], K, mask)
    check_against_numpy(dataset.train, queries, dataset.metric, neighbors, distances, masks)
    fractions = np.array([m.mean() for m in masks])
    with h5py.File(dataset.path, "a") as f:
        g = f.require_group(key)
        g.create_dataset("neighbors", data=neighbors.astype(np.int32))
        g.create_dataset("distances", data=distances)
        g.create_dataset("fractions", data=fractions)
    return neighbors, distances, fractions
