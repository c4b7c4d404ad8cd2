"""Sealed segments as Arrow IPC files: written once, verified on open, memory-mapped for search."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from vecstore.errors import DataCorruption
from vecstore.storage.files import TMP_SUFFIX, publish, sha256_file, verify_file

SEGMENT_SUFFIX = ".arrow"


def segment_file_name(segment_id: int) -> str:
    return f"seg-{segment_id:08d}{SEGMENT_SUFFIX}"


@dataclass(frozen=True)
class SegmentData:
    """A memory-mapped segment: the Arrow table and zero-copy numpy views of ids and vectors."""

    path: Path
    table: pa.Table
    ids: np.ndarray  # int64 [n], read-only
    vectors: np.ndarray  # float32 [n, dim], read-only

    @property
    def num_rows(self) -> int:
        return int(self.ids.shape[0])


def _single_batch(table: pa.Table) -> pa.RecordBatch:
    """One record batch, so that the vector column is one contiguous buffer in the file."""
    arrays = [col.combine_chunks() for col in table.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=table.schema)


def write_segment(directory: Path, segment_id: int, table: pa.Table) -> tuple[str, int, str]:
    """Write ``table`` as segment ``segment_id``; returns (file name, size in bytes, sha256)."""
    name = segment_file_name(segment_id)
    final = directory / name
    tmp = directory / (name + TMP_SUFFIX)
    batch = _single_batch(table)
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_batch(batch)
    publish(tmp, final)
    return name, final.stat().st_size, sha256_file(final)


def verify_segment(path: Path, size_bytes: int, sha256: str) -> None:
    """Raise DataCorruption naming the file when it is missing, truncated or altered."""
    verify_file(path, size_bytes, sha256, "segment file")


def open_segment(path: Path, dim: int) -> SegmentData:
    """Memory-map a segment file; the numpy views point into the mapping (no copy)."""
    try:
        source = pa.memory_map(str(path), "r")
        table = pa.ipc.open_file(source).read_all()
        if table.num_rows == 0:
            ids = np.empty(0, dtype=np.int64)
            vectors = np.empty((0, dim), dtype=np.float32)
        else:
            ids = table.column("id").chunk(0).to_numpy()
            vectors = table.column("vector").chunk(0).flatten().to_numpy().reshape(-1, dim)
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise DataCorruption(f"segment file {path} cannot be read: {exc}") from None
    return SegmentData(path, table, ids, vectors)
