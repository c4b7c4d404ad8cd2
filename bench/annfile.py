"""Bench datasets in the ann-benchmarks HDF5 layout, plus attribute columns, cached on disk.

File layout (one file per dataset and size): datasets ``train``, ``test``, ``neighbors`` (int32,
-1 padded), ``distances`` (float64 in ann-benchmarks units: euclidean, 1 - cosine); attributes
``distance`` (ann-benchmarks' name), ``metric`` (vecstore's), ``window``; groups ``attributes/<name>``
and ``test_attributes/<name>`` (see ``bench.columns``). Filtered workloads add ``workloads/<name>``
groups (see ``bench.workloads``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import datasets, synthetic
from bench.columns import Column, column_from_arrow
from bench.groundtruth import ANN_BENCHMARKS_DISTANCE, Searcher, check_against_numpy

BENCH_DIR = Path(__file__).resolve().parent
GROUND_TRUTH_K = 100


def bench_data_dir() -> Path:
    """``$VECSTORE_BENCH_DATA`` or ``bench/data`` (gitignored): where converted datasets are cached."""
    return Path(os.environ.get("VECSTORE_BENCH_DATA") or BENCH_DIR / "data")


@dataclass
class Source:
    """A dataset before ground truth: train/test vectors and attribute columns."""

    metric: str
    train: np.ndarray
    test: np.ndarray
    columns: dict[str, Column]
    window: str | None
    test_columns: dict[str, Column] = field(default_factory=dict)


@dataclass
class BenchDataset:
    name: str
    path: Path
    metric: str
    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray
    distances: np.ndarray
    columns: dict[str, Column]
    test_columns: dict[str, Column]
    window: str | None

    @property
    def schema(self) -> dict[str, str]:
        """vecstore attribute types of the columns."""
        return {name: col.kind for name, col in self.columns.items()}


def _split(n: int, n_queries: int, max_train: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded held-out query rows and (optionally subsampled) train rows, both in id order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    test_rows, train_rows = np.sort(order[:n_queries]), order[n_queries:]
    if max_train is not None and len(train_rows) > max_train:
        train_rows = train_rows[:max_train]
    return np.sort(train_rows), test_rows


def _held_out(
    vectors: np.ndarray,
    table: pa.Table,
    kinds: dict[str, str],
    window: str,
    n_queries: int,
    max_train: int | None,
    seed: int,
) -> Source:
    """A cosine dataset with no test split: seeded held-out rows become the queries."""
    columns = {name: column_from_arrow(table.column(name), kind) for name, kind in kinds.items()}
    train_rows, test_rows = _split(len(vectors), n_queries, max_train, seed)
    train_columns = {k: c.take(train_rows) for k, c in columns.items()}
    return Source("cosine", vectors[train_rows], vectors[test_rows], train_columns, window)


def _embedding_source(name: str, kinds: dict[str, str], window: str) -> Callable[..., Source]:
    def build(n_queries: int, max_train: int | None, seed: int) -> Source:
        data = datasets.load_embedding_dataset(name)
        return _held_out(data.vectors, data.attributes, kinds, window, n_queries, max_train, seed)

    return build


def _fashion_mnist(n_queries: int, max_train: int | None, seed: int) -> Source:
    train, train_labels, test, _ = datasets.load_fashion_mnist()
    rows = np.arange(len(train))
    if max_train is not None:
        rows = np.sort(np.random.default_rng(seed).permutation(len(train))[:max_train])
    rng = np.random.default_rng(seed + 1)
    classes = np.array(datasets.FASHION_MNIST_CLASSES, dtype=object)
    columns = {
        # the seeded random label the window workloads run on (the dataset has no numeric attribute)
        "label": Column("int64", rng.integers(0, 2**31, size=len(train)).astype(np.int64)[rows]),
        "class": Column("string", train_labels.astype(np.int32)[rows], classes),
    }
    return Source("l2", train[rows], test[:n_queries], columns, "label")


def _jeopardy(n_queries: int, max_train: int | None, seed: int) -> Source:
    vectors, table = datasets.load_jeopardy()
    kinds = {"air_date": "timestamp", "round": "string", "value": "int64", "category": "string"}
    return _held_out(vectors, table, kinds, "air_date", n_queries, max_train, seed)


def _clustered(n_queries: int, max_train: int | None, seed: int) -> Source:
    n = max_train or 100_000
    points, cluster = synthetic.clustered(n + n_queries, 64, 64, seed)
    rng = np.random.default_rng(seed + 1)
    label = rng.integers(0, 2**31, size=n).astype(np.int64)
    names = np.array([f"c{i:02d}" for i in range(64)], dtype=object)
    columns = {"label": Column("int64", label), "cluster": Column("string", cluster[:n].astype(np.int32), names)}
    return Source("l2", points[:n], points[n:], columns, "label")


def _adversarial(n_queries: int, max_train: int | None, seed: int) -> Source:
    n = max_train or 100_000
    train, label, cluster, test, query_cluster = synthetic.adversarial_windows(n, n_queries, 32, 32, seed)
    names = np.array([f"c{i:02d}" for i in range(32)], dtype=object)
    columns = {"label": Column("float64", label), "cluster": Column("string", cluster.astype(np.int32), names)}
    test_columns = {"cluster": Column("string", query_cluster.astype(np.int32), names)}
    return Source("l2", train, test, columns, "label", test_columns)


SOURCES: dict[str, Callable[..., Source]] = {
    "fashion-mnist": _fashion_mnist,
    "git-commits": _embedding_source(
        "git-commits",
        {"commit_time": "timestamp", "repo": "string", "area": "string", "top_dirs": "list<string>"},
        "commit_time",
    ),
    "movies": _embedding_source(
        "movies",
        {"year": "int64", "rating": "float64", "votes": "int64", "mpaa": "string", "genres": "list<string>"},
        "year",
    ),
    "jeopardy": _jeopardy,
    "clustered": _clustered,
    "adversarial": _adversarial,
}


def unknown_dataset_message(name: str) -> str:
    return f"unknown dataset {name!r}; choose from {', '.join(SOURCES)}"


def dataset_path(name: str, n_queries: int, max_train: int | None, seed: int) -> Path:
    size = "all" if max_train is None else str(max_train)
    return bench_data_dir() / f"{name}-{size}-q{n_queries}-s{seed}.hdf5"


def load(name: str, n_queries: int = 1000, max_train: int | None = None, seed: int = 42) -> BenchDataset:
    """The dataset from the cache, converting it (and computing ground truth) on first use."""
    import h5py

    if name not in SOURCES:
        raise datasets.DatasetMissing(unknown_dataset_message(name))
    path = dataset_path(name, n_queries, max_train, seed)
    if not path.exists():
        _write(path, SOURCES[name](n_queries, max_train, seed))
    with h5py.File(path, "r") as f:
        window = str(f.attrs["window"]) or None
        return BenchDataset(
            name=name,
            path=path,
            metric=str(f.attrs["metric"]),
            train=f["train"][:],
            test=f["test"][:],
            neighbors=f["neighbors"][:].astype(np.int64),
            distances=f["distances"][:],
            columns={k: Column.from_hdf5(g) for k, g in f["attributes"].items()},
            test_columns={k: Column.from_hdf5(g) for k, g in f["test_attributes"].items()},
            window=window,
        )


def _write(path: Path, source: Source) -> None:
    import h5py

    searcher = Searcher(source.train, source.metric)
    ids, dists = searcher.topk(source.test, min(GROUND_TRUTH_K, len(source.train)))
    check_against_numpy(source.train, source.test, source.metric, ids, dists)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with h5py.File(partial, "w") as f:
        f.attrs["distance"] = ANN_BENCHMARKS_DISTANCE[source.metric]
        f.attrs["metric"] = source.metric
        f.attrs["window"] = source.window or ""
        f.create_dataset("train", data=source.train)
        f.create_dataset("test", data=source.test)
        f.create_dataset("neighbors", data=ids.astype(np.int32))
        f.create_dataset("distances", data=dists)
        for group_name, columns in (("attributes", source.columns), ("test_attributes", source.test_columns)):
            group = f.create_group(group_name)
            for name, column in columns.items():
                column.to_hdf5(group.create_group(name))
    os.replace(partial, path)
