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
