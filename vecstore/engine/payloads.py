"""Segment payload indexes on disk: written beside their segment at seal, compaction and merge, as
array files memory-mapped on open. Like graphs they are derived data: a missing or damaged one is
rebuilt from the segment's columns, never fatal."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from vecstore.errors import DataCorruption
from vecstore.index.payload import PayloadIndex
from vecstore.storage import open_array_file, verify_file, write_array_file

PAYLOAD_SUFFIX = ".payload"


def indexed_fields(attributes: Mapping[str, str]) -> dict[str, str]:
    """Every field a filter can name: the point id and the attributes."""
    return {"id": "int64", **attributes}


def write_payload(directory: Path, segment_id: int, table: pa.Table, attributes: Mapping[str, str]) -> dict[str, Any]:
    """Build and persist the payload index of a segment's ``table``; returns its manifest entry."""
    meta, arrays = PayloadIndex.build(table, indexed_fields(attributes)).to_arrays()
    name = f"seg-{segment_id:08d}-{uuid.uuid4().hex[:8]}{PAYLOAD_SUFFIX}"
    size, digest = write_array_file(directory / name, meta, arrays)
    return {"file": name, "bytes": size, "sha256": digest}


def open_payload(path: Path, entry: Mapping[str, Any], num_rows: int, *, verify: bool) -> PayloadIndex:
    """The persisted payload index, memory-mapped; DataCorruption if damaged or not this segment's."""
    if verify:
        verify_file(path, entry["bytes"], entry["sha256"], "payload index file")
    index = PayloadIndex.from_arrays(*open_array_file(path))
    if index.num_rows != num_rows:
        raise DataCorruption(f"payload index file {path} covers {index.num_rows} rows, its segment {num_rows}")
    return index
