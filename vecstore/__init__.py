"""vecstore: a vector database with filtered nearest-neighbour search.

>>> import vecstore
>>> db = vecstore.connect("./data")
>>> col = db.create_collection("papers", dim=384, metric="cosine", attributes={"year": "int64"})
>>> res = col.search(query, k=10, filter="year >= 2020")
"""

import os

# Numba's OpenMP threads spin after each parallel region by default; on a 2-core machine that starves
# the BLAS threads of batch search (and vice versa), costing up to 40%. Sleep instead, unless the
# user chose a policy. Must be set before Numba starts its thread pool, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vecstore import errors
from vecstore.engine import Collection, Database, connect
from vecstore.errors import (
    AlreadyExists,
    DataCorruption,
    DeadlineExceeded,
    FailedPrecondition,
    FilterSyntaxError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    VecstoreError,
)
from vecstore.filters import field, parse_filter
from vecstore.types import SearchResult

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "Collection",
    "DataCorruption",
    "Database",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FilterSyntaxError",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "SearchResult",
    "Unauthenticated",
    "Unavailable",
    "VecstoreError",
    "connect",
    "errors",
    "field",
    "parse_filter",
]


def __getattr__(name: str) -> object:
    # vecstore.Client lives in client/ (it needs grpc); load it only when asked for
    if name == "Client":
        from client import Client

        return Client
    raise AttributeError(f"module 'vecstore' has no attribute {name!r}")
