"""Attribute columns of a bench dataset: compact numpy forms that filter fast and store in HDF5.

- ``int64`` / ``float64``: the values; ``timestamp``: int64 unix seconds.
- ``string``: int32 codes into ``categories`` (-1 is null).
- ``list<string>``: int32 codes of every element (``values``) and row ``offsets`` [n + 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KINDS = ("int64", "float64", "timestamp", "string", "list<string>")


@dataclass
class Column:
    kind: str
    values: np.ndarray
    categories: np.ndarray | None = None  # object array of str
    offsets: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.offsets) - 1 if self.kind == "list<string>" else len(self.values)

    def code_of(self, value: str) -> int:
        hits = np.flatnonzero(self.categories == value)
        return int(hits[0]) if len(hits) else -2  # -2 matches no row

    def rows_of_tag(self, value: str) -> np.ndarray:
        """Rows whose list holds ``value``."""
        positions = np.flatnonzero(self.values == self.code_of(value))
        return np.unique(np.searchsorted(self.offsets, positions, side="right") - 1)

    def take(self, rows: np.ndarray) -> Column:
        if self.kind != "list<string>":
            return Column(self.kind, self.values[rows], self.categories)
        lengths = np.diff(self.offsets)[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        pieces = [self.values[self.offsets[r] : self.offsets[r + 1]] for r in rows]
        flat = np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)
        return Column(self.kind, flat, self.categories, offsets)

    def to_arrow(self) -> pa.Array:
        """The column as vecstore stores it (``timestamp`` as seconds)."""
        if self.kind in ("int64", "float64"):
            return pa.array(self.values)
        if self.kind == "timestamp":
            return pa.array(self.values.astype("datetime64[s]"))
        dictionary = pa.array(list(self.categories), type=pa.string())
        if self.kind == "string":
            codes = pa.array(self.values, mask=self.values < 0)
            return dictionary.take(codes)
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), dictionary.take(pa.array(self.values)))

    def to_hdf5(self, group) -> None:
        group.attrs["kind"] = self.kind
        group.create_dataset("values", data=self.values)
        if self.categories is not None:
            import h5py

            group.create_dataset("categories", data=list(self.categories), dtype=h5py.string_dtype())
        if self.offsets is not None:
            group.create_dataset("offsets", data=self.offsets)

    @staticmethod
    def from_hdf5(group) -> Column:
        categories = None
        if "categories" in group:
            categories = np.array(group["categories"].asstr()[:], dtype=object)
        offsets = group["offsets"][:] if "offsets" in group else None
        return Column(str(group.attrs["kind"]), group["values"][:], categories, offsets)


def column_from_arrow(array: pa.Array | pa.ChunkedArray, kind: str) -> Column:
    """Encode an Arrow column of ``kind`` (strings are dictionary-coded by frequency rank)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if kind == "int64":
        return Column(kind, np.asarray(pc.fill_null(array.cast(pa.int64()), 0)))
    if kind == "float64":
        return Column(kind, np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64))
    if kind == "timestamp":
        if pa.types.is_timestamp(array.type):
            array = array.cast(pa.timestamp("s")).cast(pa.int64())
        return Column(kind, np.asarray(pc.fill_null(array.cast(pa.int64()), 0)))
    if kind == "string":
        encoded = array.cast(pa.string()).dictionary_encode()
        codes = np.asarray(pc.fill_null(encoded.indices, -1)).astype(np.int32)
        return Column(kind, codes, np.array(encoded.dictionary.to_pylist(), dtype=object))
    if kind == "list<string>":
        array = array.cast(pa.list_(pa.string()))
        array = pc.fill_null(array, pa.scalar([], pa.list_(pa.string())))
        flat = pc.list_flatten(array).dictionary_encode()
        offsets = np.asarray(array.offsets).astype(np.int64)
        offsets = offsets - offsets[0]
        codes = np.asarray(flat.indices).astype(np.int32)
        return Column(kind, codes, np.array(flat.dictionary.to_pylist(), dtype=object), offsets)
    raise ValueError(f"unknown column kind {kind!r}; choose one of {KINDS}")
