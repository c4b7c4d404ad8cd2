"""Named numpy arrays in one file, memory-mapped on open: the on-disk form of derived index structures.

Layout: an 8-byte magic, a little-endian u64 header length, a JSON header (caller's metadata plus name,
dtype, shape and byte offset of every array), then each array's bytes at a 64-byte aligned offset, so
the arrays can be read in place from the mapping. Like segment files, the file is written tmp + fsync +
rename and the caller records its size and sha256 in the manifest.

Storage knows nothing of what the arrays mean; the engine decides what goes in.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from vecstore.errors import DataCorruption
from vecstore.storage.files import TMP_SUFFIX, publish, sha256_file

MAGIC = b"VSARR01\0"
_ALIGN = 64
_LENGTH = struct.Struct("<Q")


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def write_array_file(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[int, str]:
    """Write ``arrays`` and ``meta`` to ``path`` atomically; returns (size in bytes, sha256)."""
    contiguous = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    entries = []
    offset = 0
    for name, array in contiguous.items():
        entries.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
        offset = _aligned(offset + array.nbytes)
    header = json.dumps({"meta": meta, "arrays": entries}).encode()
    data_start = _aligned(len(MAGIC) + _LENGTH.size + len(header))
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "wb") as handle:
        handle.write(MAGIC + _LENGTH.pack(len(header)) + header)
        for entry, array in zip(entries, contiguous.values(), strict=True):
            handle.seek(data_start + entry["offset"])
            handle.write(array.tobytes())
        handle.truncate(data_start + offset)
    publish(tmp, path)
    return path.stat().st_size, sha256_file(path)


def open_array_file(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, read-only arrays mapped from ``path``); DataCorruption naming the file if unreadable."""
    try:
        # a plain ndarray over the mapping (the memmap stays alive as its base): Numba types a memmap
        # argument on its slow path, about 0.7 us per array per call, and a graph walk passes five
        mapped = np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray)
        if bytes(mapped[: len(MAGIC)]) != MAGIC:
            raise ValueError("not a vecstore array file (bad magic)")
        (length,) = _LENGTH.unpack(bytes(mapped[len(MAGIC) : len(MAGIC) + _LENGTH.size]))
        header_start = len(MAGIC) + _LENGTH.size
        header = json.loads(bytes(mapped[header_start : header_start + length]))
        data_start = _aligned(header_start + length)
        arrays = {}
        for entry in header["arrays"]:
            dtype = np.dtype(entry["dtype"])
            shape = tuple(entry["shape"])
            start = data_start + entry["offset"]
            stop = start + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
            if stop > mapped.shape[0]:
                raise ValueError(f"array {entry['name']!r} runs past the end of the file")
            arrays[entry["name"]] = mapped[start:stop].view(dtype).reshape(shape)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataCorruption(f"index file {path} cannot be read: {exc}") from None
    return header["meta"], arrays
