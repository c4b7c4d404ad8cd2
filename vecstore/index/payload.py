"""Payload indexes of one sealed segment: the rows holding each attribute value, found without a scan.

- numeric, timestamp and bool attributes: the non-null values sorted, with their row offsets beside
  them, so a range is two binary searches and its exact row count a subtraction;
- string and list<string> attributes: the distinct terms sorted, with the ascending rows holding each
  term in one flat array (CSR), so equality, IN and ``contains`` read lists whose lengths are exact
  counts, and a string range is one contiguous run of that array.

Null rows are listed per attribute: a comparison with null is unknown, not false, and the caller must
keep the two apart for ``not`` to follow three-valued logic. The index knows nothing of the filter
language; ``vecstore.engine.filtering`` evaluates filters with it.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecstore.errors import DataCorruption

NUMERIC = "numeric"
TERMS = "terms"
FORMAT_VERSION = 1


def _offsets(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class NumericIndex:
    """Sorted non-null values of one column and the row of each (ties in row order)."""

    values: np.ndarray  # int64 (integers, bools, timestamps in ``unit``) or float64
    rows: np.ndarray  # int64 [non-null rows], in value order
    nulls: np.ndarray  # int64, ascending
    unit: str | None = None  # the timestamp unit ("s", "ms", "us", "ns"); None for other types

    kind = NUMERIC

    def span(
        self, low: Any = None, low_inclusive: bool = True, high: Any = None, high_inclusive: bool = True
    ) -> tuple[int, int]:
        """[start, stop) positions in ``values`` / ``rows`` of the values inside the interval."""
        start = 0 if low is None else int(np.searchsorted(self.values, low, "left" if low_inclusive else "right"))
        stop = self.values.shape[0]
        if high is not None:
            stop = int(np.searchsorted(self.values, high, "right" if high_inclusive else "left"))
        return start, max(start, stop)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.rows.nbytes + self.nulls.nbytes)


@dataclass(frozen=True, eq=False)
class TermIndex:
    """Distinct terms of a string or list<string> column, sorted, and the rows holding each."""

    terms: list[str]  # sorted by code point (UTF-8 byte order, as Arrow compares strings)
    starts: np.ndarray  # int64 [len(terms) + 1]: term t's rows are rows[starts[t]:starts[t + 1]]
    rows: np.ndarray  # int64, ascending within each term
    nulls: np.ndarray  # int64, ascending: rows whose value (or list) is null

    kind = TERMS

    @cached_property
    def position(self) -> dict[str, int]:
        return {term: i for i, term in enumerate(self.terms)}

    def term_span(self, term: str) -> tuple[int, int]:
        """[start, stop) in ``rows`` of the rows holding ``term`` (empty when no row does)."""
        t = self.position.get(term)
        if t is None:
            return 0, 0
        return int(self.starts[t]), int(self.starts[t + 1])

    def range_span(
        self, low: str | None, low_inclusive: bool, high: str | None, high_inclusive: bool
    ) -> tuple[int, int]:
        """[start, stop) in ``rows`` of the rows whose term lies in the interval (string columns only)."""
        first = 0 if low is None else (bisect.bisect_left if low_inclusive else bisect.bisect_right)(self.terms, low)
        last = len(self.terms)
        if high is not None:
            last = (bisect.bisect_right if high_inclusive else bisect.bisect_left)(self.terms, high)
        last = max(first, last)
        return int(self.starts[first]), int(self.starts[last])

    @property
    def nbytes(self) -> int:
        return int(self.starts.nbytes + self.rows.nbytes + self.nulls.nbytes + sum(len(t) for t in self.terms))


ColumnIndex = NumericIndex | TermIndex


def _numeric_index(column: pa.ChunkedArray) -> NumericIndex:
    array = column.combine_chunks()
    valid = np.asarray(array.is_valid(), dtype=bool) if array.null_count else None
    unit = None
    if pa.types.is_timestamp(array.type):
        unit = array.type.unit
        array = array.cast(pa.int64())
    elif pa.types.is_boolean(array.type):
        array = array.cast(pa.int64())
    values = np.asarray(array.drop_null() if valid is not None else array, dtype=None)
    if values.dtype.kind not in "if":
        raise TypeError(f"cannot index values of type {array.type}")
    values = values.astype(np.float64 if values.dtype.kind == "f" else np.int64, copy=False)
    rows = np.flatnonzero(valid) if valid is not None else np.arange(values.shape[0])
    order = np.argsort(values, kind="stable")
    nulls = np.flatnonzero(~valid) if valid is not None else np.empty(0, dtype=np.int64)
    return NumericIndex(np.ascontiguousarray(values[order]), _offsets(rows[order]), _offsets(nulls), unit)


def _term_index(column: pa.ChunkedArray) -> TermIndex:
    array = column.combine_chunks()
    n = len(array)
    nulls = np.flatnonzero(np.asarray(array.is_null(), dtype=bool)) if array.null_count else np.empty(0, np.int64)
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        flat = pc.list_flatten(array)
        parents = np.asarray(pc.list_parent_indices(array), dtype=np.int64)
    else:
        flat = array
        parents = np.arange(n, dtype=np.int64)
    encoded = flat.dictionary_encode()
    dictionary = encoded.dictionary
    codes = encoded.indices
    present = np.asarray(codes.is_valid(), dtype=bool) if codes.null_count else None
    codes = np.asarray(codes.fill_null(0), dtype=np.int64)
    if present is not None:  # a null element of a list holds no term
        codes, parents = codes[present], parents[present]
    order = np.asarray(pc.sort_indices(dictionary), dtype=np.int64)
    rank = np.empty(order.shape[0], dtype=np.int64)
    rank[order] = np.arange(order.shape[0])
    keys = np.unique(rank[codes] * max(n, 1) + parents)  # one entry per (term, row), sorted by term then row
    term_of, rows = np.divmod(keys, max(n, 1))
    counts = np.bincount(term_of, minlength=order.shape[0])
    starts = np.zeros(order.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    terms = dictionary.take(pa.array(order)).to_pylist()
    return TermIndex(terms, starts, _offsets(rows), _offsets(nulls))


@dataclass(frozen=True, eq=False)
class PayloadIndex:
    """The column indexes of one segment's attributes."""

    num_rows: int
    columns: Mapping[str, ColumnIndex]

    @staticmethod
    def build(table: pa.Table, attributes: Mapping[str, str]) -> PayloadIndex:
        """Index every attribute of ``table`` (attribute name -> type name, as in the schema)."""
        columns: dict[str, ColumnIndex] = {}
        for name, type_name in attributes.items():
            column = table.column(name)
            columns[name] = _term_index(column) if type_name in ("string", "list<string>") else _numeric_index(column)
        return PayloadIndex(table.num_rows, columns)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.columns.values())

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(metadata, named arrays) for an array file; arrays are named by column position."""
        meta: dict[str, Any] = {"version": FORMAT_VERSION, "num_rows": self.num_rows, "columns": []}
        arrays: dict[str, np.ndarray] = {}
        for i, (name, index) in enumerate(self.columns.items()):
            meta["columns"].append({"name": name, "kind": index.kind, "unit": getattr(index, "unit", None)})
            arrays[f"{i}.rows"] = index.rows
            arrays[f"{i}.nulls"] = index.nulls
            if isinstance(index, NumericIndex):
                arrays[f"{i}.values"] = index.values
            else:
                terms = pa.array(index.terms, type=pa.large_string())
                arrays[f"{i}.starts"] = index.starts
                arrays[f"{i}.term_offsets"] = np.frombuffer(terms.buffers()[1], dtype=np.int64)[: len(terms) + 1]
                data = terms.buffers()[2]
                arrays[f"{i}.term_bytes"] = np.frombuffer(data, dtype=np.uint8) if data else np.empty(0, np.uint8)
        return meta, arrays

    @staticmethod
    def from_arrays(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> PayloadIndex:
        """The index from ``to_arrays``' output (arrays may be read-only mappings); DataCorruption if torn."""
        try:
            if meta["version"] != FORMAT_VERSION:
                raise ValueError(f"format version {meta['version']}, expected {FORMAT_VERSION}")
            num_rows = int(meta["num_rows"])
            columns: dict[str, ColumnIndex] = {}
            for i, column in enumerate(meta["columns"]):
                rows, nulls = arrays[f"{i}.rows"], arrays[f"{i}.nulls"]
                if column["kind"] == NUMERIC:
                    values = arrays[f"{i}.values"]
                    if values.shape != rows.shape or rows.shape[0] + nulls.shape[0] != num_rows:
                        raise ValueError(f"column {column['name']!r} does not cover {num_rows} rows")
                    columns[column["name"]] = NumericIndex(values, rows, nulls, column["unit"])
                else:
                    offsets = arrays[f"{i}.term_offsets"]
                    data = arrays[f"{i}.term_bytes"]
                    terms = pa.LargeStringArray.from_buffers(
                        offsets.shape[0] - 1, pa.py_buffer(offsets), pa.py_buffer(data)
                    ).to_pylist()
                    starts = arrays[f"{i}.starts"]
                    if starts.shape[0] != len(terms) + 1 or int(starts[-1]) != rows.shape[0]:
                        raise ValueError(f"column {column['name']!r} has inconsistent term lists")
                    columns[column["name"]] = TermIndex(terms, starts, rows, nulls)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataCorruption(f"payload index is damaged: {exc}") from None
        return PayloadIndex(num_rows, columns)
