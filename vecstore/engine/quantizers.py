"""Segment codes on disk: a collection's quantiser (binary, sq8 or PQ) per sealed segment, written beside
the segment as an array file and memory-mapped on open.

Codes are derived data like graphs: the optimizer builds them in the background after a seal or
merge, the planner uses them once they exist, and a damaged file is dropped and rebuilt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vecstore.errors import DataCorruption
from vecstore.index.quantization import BinaryQuantizer, ProductQuantizer, Quantizer, ScalarQuantizer
from vecstore.storage import open_array_file, verify_file, write_array_file
from vecstore.types import default_pq_m

CODES_SUFFIX = ".codes"
#: PQ learns 256 centroids per sub-space, so smaller segments get no codes (and are scanned exactly)
MIN_CODE_ROWS = 256
#: candidates per result (k x this many rows rescored) when neither the collection nor the query says
DEFAULT_OVERSAMPLING = 4.0
#: scalar codes rank rows nearly as the float rows do, and a walk over them rescores all of its ef
#: results anyway (``planner.walk_candidates``): more candidates would only raise the walk's ef
SCALAR_DEFAULT_OVERSAMPLING = 1.0
QUANTIZERS: dict[str, type] = {"binary": BinaryQuantizer, "pq": ProductQuantizer, "sq8": ScalarQuantizer}


@dataclass(frozen=True)
class QuantizationParams:
    """A collection's quantisation settings with their defaults filled in."""

    kind: str  # binary | pq | sq8
    oversampling: float
    pq_m: int = 0

    @staticmethod
    def from_schema(dim: int, spec: Mapping[str, Any] | None) -> QuantizationParams | None:
        if not spec:
            return None
        kind = str(spec["kind"])
        default = SCALAR_DEFAULT_OVERSAMPLING if kind == "sq8" else DEFAULT_OVERSAMPLING
        oversampling = float(spec.get("oversampling", default))
        pq_m = int(spec.get("pq_m") or default_pq_m(dim)) if kind == "pq" else 0
        return QuantizationParams(kind, oversampling, pq_m)


def build_codes(
    vectors: np.ndarray,
    metric: str,
    params: QuantizationParams,
    seed: int,
    should_stop: Callable[[], bool] | None = None,
) -> Quantizer:
    if params.kind == "binary":
        return BinaryQuantizer.fit(vectors, metric, should_stop)
    if params.kind == "sq8":
        return ScalarQuantizer.fit(vectors, metric, seed=seed, should_stop=should_stop)
    return ProductQuantizer.train(vectors, metric, params.pq_m, seed=seed, should_stop=should_stop)


def build_codes_file(
    directory: Path,
    segment_id: int,
    vectors: np.ndarray,
    metric: str,
    params: QuantizationParams,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[dict[str, Any], Quantizer]:
    """Encode a segment, write its codes, and return (manifest entry, quantiser served from the file).
    ``should_stop`` is polled while encoding (raises BuildCancelled)."""
    quantizer = build_codes(vectors, metric, params, seed=segment_id, should_stop=should_stop)
    meta, arrays = quantizer.to_arrays()
    name = f"seg-{segment_id:08d}-{uuid.uuid4().hex[:8]}{CODES_SUFFIX}"
    size, digest = write_array_file(directory / name, meta, arrays)
    entry = {"file": name, "bytes": size, "sha256": digest, "kind": params.kind}
    return entry, open_codes(directory / name, entry, vectors.shape[0], verify=False)


def open_codes(path: Path, entry: dict[str, Any], num_rows: int, *, verify: bool) -> Quantizer:
    """A segment's persisted codes, memory-mapped; DataCorruption if damaged or not the segment's size."""
    if verify:
        verify_file(path, entry["bytes"], entry["sha256"], "codes file")
    meta, arrays = open_array_file(path)
    kind = meta.get("kind")
    if kind not in QUANTIZERS:
        raise DataCorruption(f"codes file {path} names no known quantiser ({kind!r})")
    quantizer = QUANTIZERS[kind].from_arrays(meta, arrays)
    if quantizer.codes.shape[0] != num_rows:
        raise DataCorruption(f"codes file {path} has {quantizer.codes.shape[0]} rows, its segment {num_rows}")
    return quantizer
