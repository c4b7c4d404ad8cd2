"""Types shared by every layer: metrics, attribute types, collection schema, search results."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from vecstore.errors import InvalidArgument

METRICS = ("l2", "ip", "cosine")
#: Integer codes the Numba kernels use for each metric.
METRIC_CODES = {"l2": 0, "ip": 1, "cosine": 2}

#: Attribute type names users write -> Arrow storage type.
ATTRIBUTE_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "timestamp": pa.timestamp("us"),
    "string": pa.large_string(),
    "list<string>": pa.large_list(pa.large_string()),
    "bool": pa.bool_(),
}
#: Attribute types a window filter (sorted segments) can run on.
#: hnsw parameters and their allowed ranges. The window tree (buckets of a segment sorted by the window
#: attribute, each with a graph) splits every bucket into window_tree_beta, down to
#: window_tree_leaf_rows rows per bucket; the top window_tree_straddle_levels levels also get straddle
#: graphs across their bucket boundaries, over every two neighbouring buckets and over a bucket and a
#: half starting every half bucket (0: none).
HNSW_LIMITS = {
    "m": (2, 4096),
    "ef_construction": (2, 4096),
    "ef": (2, 4096),
    "window_tree_beta": (2, 64),
    "window_tree_leaf_rows": (64, 1 << 24),
    "window_tree_straddle_levels": (0, 16),
    "term_graph_min_rows": (64, 1 << 24),
}
#: hnsw option naming the attributes whose large terms get graphs of their own (``term_graphs``); a
#: numeric attribute gets range graphs over runs of its value order instead
TERM_GRAPHS = "term_graphs"
TERM_GRAPH_TYPES = ("string", "list<string>", "int64", "float64", "timestamp")
ORDERED_TYPES = ("int64", "float64", "timestamp", "string")

RESERVED_NAMES = frozenset({"id", "vector", "_distance", "query", "rank"})
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_DIM = 65_536
MAX_NAME_LENGTH = 128


QUANTIZATION_KEYS = {
    "binary": ("kind", "oversampling"),
    "sq8": ("kind", "oversampling"),
    "pq": ("kind", "oversampling", "pq_m", "pq_nbits"),
}
MAX_OVERSAMPLING = 100.0


def default_pq_m(dim: int) -> int:
    """PQ sub-quantisers when not given: one code byte per 8 dimensions (384-d: 48, 1536-d: 192), or
    the largest divisor of ``dim`` below that."""
    target = max(1, dim // 8)
    return max(d for d in range(1, target + 1) if dim % d == 0)


def check_oversampling(value: object, what: str) -> float:
    """Candidates per result a quantised search rescores: a number between 1 and ``MAX_OVERSAMPLING``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not 1 <= float(value) <= MAX_OVERSAMPLING
    ):
        raise InvalidArgument(f"{what} must be a number between 1 and {MAX_OVERSAMPLING:g}, got {value!r}")
    return float(value)


def check_quantization(spec: object, dim: int) -> dict[str, Any] | None:
    """A collection's quantisation settings, checked: None, ``{"kind": "binary", "oversampling": x}``,
    ``{"kind": "sq8", "oversampling": x}`` or ``{"kind": "pq", "pq_m": m, "pq_nbits": 8, "oversampling": x}``."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or spec.get("kind") not in QUANTIZATION_KEYS:
        raise InvalidArgument(
            "quantization must be None or a dict with kind 'binary', 'sq8' or 'pq', "
            "e.g. {'kind': 'sq8'} or {'kind': 'binary', 'oversampling': 4}"
        )
    kind = spec["kind"]
    out = dict(spec)
    unknown = sorted(set(out) - set(QUANTIZATION_KEYS[kind]))
    if unknown:
        raise InvalidArgument(
            f"unknown {kind} quantization parameter {unknown[0]!r}; use {', '.join(QUANTIZATION_KEYS[kind])}"
        )
    if "oversampling" in out:
        out["oversampling"] = check_oversampling(out["oversampling"], "quantization oversampling")
    if "pq_m" in out:
        m = out["pq_m"]
        if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1 or dim % int(m):
            raise InvalidArgument(
                f"pq_m must be a positive integer that divides dim={dim} (e.g. {default_pq_m(dim)}), got {m!r}"
            )
        out["pq_m"] = int(m)
    if "pq_nbits" in out and (isinstance(out["pq_nbits"], bool) or out["pq_nbits"] != 8):
        raise InvalidArgument(
            f"pq_nbits must be 8 (256 centroids per sub-quantiser; 4-bit codes are not supported yet), "
            f"got {out['pq_nbits']!r}"
        )
    return out


def parse_iso_datetime(text: str) -> dt.datetime:
    """ISO-8601 text -> naive UTC datetime (a zone suffix, ``Z`` included, is converted); ValueError if not ISO."""
    parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def check_name(name: object, what: str) -> str:
    """Validate a collection or attribute name: an identifier of at most 128 characters."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"{what} name {name!r} is not valid: use letters, digits and '_' (not starting with a digit), "
            f"at most {MAX_NAME_LENGTH} characters"
        )
    return name


def positive_int_option(value: object, name: str) -> int:
    """A collection option that must be a positive integer (``seal_rows``, ``max_segment_rows``)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidArgument(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def wait_timeout(value: object) -> float | None:
    """A ``wait_for_indexes`` timeout: None (no limit) or seconds >= 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0):
        raise InvalidArgument(f"timeout must be None (wait as long as it takes) or seconds >= 0, got {value!r}")
    return None if value is None else float(value)


def check_term_graphs(value: object, attributes: Mapping[str, str], window: str | None = None) -> list[str]:
    """The ``term_graphs`` hnsw option: distinct names of string, list<string> or numeric attributes,
    not the window (its window tree serves its ranges)."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidArgument(f"hnsw term_graphs must be a list of attribute names, got {value!r}")
    fields: list[str] = []
    for name in value:
        if not isinstance(name, str) or name not in attributes:
            raise InvalidArgument(
                f"hnsw term_graphs names {name!r}, which is not among the attributes {list(attributes)}"
            )
        if attributes[name] not in TERM_GRAPH_TYPES:
            raise InvalidArgument(
                f"hnsw term_graphs names {name!r} of type {attributes[name]}; term graphs index "
                f"{', '.join(TERM_GRAPH_TYPES)} attributes (filter a bool with = instead)"
            )
        if name == window:
            raise InvalidArgument(
                f"hnsw term_graphs names the window attribute {name!r}, whose window tree already serves its "
                "ranges; leave it out"
            )
        if name in fields:
            raise InvalidArgument(f"hnsw term_graphs names {name!r} twice; list each attribute once")
        fields.append(name)
    return fields


@dataclass(frozen=True)
class CollectionSchema:
    """What a collection stores: vector dimension and metric, typed attributes, window attribute."""

    dim: int
    metric: str
    attributes: Mapping[str, str]
    window: str | None = None
    hnsw: Mapping[str, Any] = field(default_factory=dict)
    quantization: Mapping[str, Any] | None = None

    @staticmethod
    def validated(
        dim: object,
        metric: object,
        attributes: Mapping[str, str] | None,
        window: str | None,
        hnsw: Mapping[str, Any] | None,
        quantization: Mapping[str, Any] | None,
    ) -> CollectionSchema:
        """Check every field and return a schema, or raise InvalidArgument saying what to fix."""
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 1 <= int(dim) <= MAX_DIM:
            raise InvalidArgument(f"dim must be an integer between 1 and {MAX_DIM}, got {dim!r}")
        if metric not in METRICS:
            raise InvalidArgument(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
        attributes = dict(attributes or {})
        for name, type_name in attributes.items():
            check_name(name, "attribute")
            if name in RESERVED_NAMES:
                raise InvalidArgument(
                    f"attribute name {name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))}); rename it"
                )
            if type_name not in ATTRIBUTE_TYPES:
                raise InvalidArgument(
                    f"attribute {name!r} has unknown type {type_name!r}; use one of {', '.join(ATTRIBUTE_TYPES)}"
                )
        if window is not None:
            if window not in attributes:
                raise InvalidArgument(f"window attribute {window!r} is not among the attributes {list(attributes)}")
            if attributes[window] not in ORDERED_TYPES:
                raise InvalidArgument(
                    f"window attribute {window!r} has type {attributes[window]}; "
                    f"a window needs one of {', '.join(ORDERED_TYPES)}"
                )
        hnsw = dict(hnsw or {})
        if TERM_GRAPHS in hnsw:
            hnsw[TERM_GRAPHS] = check_term_graphs(hnsw[TERM_GRAPHS], attributes, window)
        for key, value in hnsw.items():
            if key == TERM_GRAPHS:
                continue
            if key not in HNSW_LIMITS:
                raise InvalidArgument(f"unknown hnsw parameter {key!r}; use {', '.join((*HNSW_LIMITS, TERM_GRAPHS))}")
            low, high = HNSW_LIMITS[key]
            no_tree = key == "window_tree_beta" and value == 0
            if isinstance(value, bool) or not isinstance(value, int) or not (low <= value <= high or no_tree):
                off = " (0: no window tree)" if key == "window_tree_beta" else ""
                raise InvalidArgument(
                    f"hnsw parameter {key} must be an integer between {low} and {high}{off}, got {value!r}"
                )
        quantization = check_quantization(quantization, int(dim))
        return CollectionSchema(int(dim), str(metric), attributes, window, hnsw, quantization)

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema of a stored row: id, vector, then the attributes in declaration order."""
        fields = [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), self.dim), nullable=False),
        ]
        fields += [pa.field(name, ATTRIBUTE_TYPES[t]) for name, t in self.attributes.items()]
        return pa.schema(fields)

    def to_json(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "metric": self.metric,
            "attributes": dict(self.attributes),
            "window": self.window,
            "hnsw": dict(self.hnsw),
            "quantization": dict(self.quantization) if self.quantization else None,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> CollectionSchema:
        return CollectionSchema(
            int(data["dim"]),
            data["metric"],
            dict(data["attributes"]),
            data.get("window"),
            dict(data.get("hnsw") or {}),
            data.get("quantization"),
        )


@dataclass
class SearchResult:
    """Answer to ``Collection.search``.

    ``ids`` is int64 ``[q, k]`` padded with -1 where fewer than k rows match, ``distances`` float32
    ``[q, k]`` padded with +inf (smaller is closer: squared L2, negative inner product, or
    1 - cosine similarity). ``plan`` holds one entry per query when ``explain=True``.
    """

    ids: np.ndarray
    distances: np.ndarray
    plan: list[dict[str, Any]] | None = None
    selected: dict[str, pa.ChunkedArray | pa.Array] | None = None
    #: the strategy that ran ("exact_scan", "empty", "mixed", ...), set even without ``explain``
    strategy: str | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to_arrow(self) -> pa.Table:
        """One table: query, rank, id, _distance and the selected attributes; padding rows left out."""
        q, k = self.ids.shape
        keep = (self.ids >= 0).ravel()
        columns: dict[str, Any] = {
            "query": pa.array(np.repeat(np.arange(q, dtype=np.int32), k)[keep]),
            "rank": pa.array(np.tile(np.arange(k, dtype=np.int32), q)[keep]),
            "id": pa.array(self.ids.ravel()[keep]),
            "_distance": pa.array(self.distances.ravel()[keep]),
        }
        for name, values in (self.selected or {}).items():
            columns[name] = values
        return pa.table(columns)
