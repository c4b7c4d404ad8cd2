"""vecstore: a vector database with filtered nearest-neighbour search.

>>> import vecstore
>>> db = vecstore.connect("./data")
>>> col = db.create_collection("papers", dim=384, metric="cosine", attributes={"year": "int64"})
>>> res = col.search(query, k=10, filter="year >= 2020")
"""

from vecstore import errors
from vecstore.engine import Collection, Database, connect
from vecstore.errors import (
    AlreadyExists,
    DataCorruption,
    FailedPrecondition,
    FilterSyntaxError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
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
    "FailedPrecondition",
    "FilterSyntaxError",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "SearchResult",
    "VecstoreError",
    "connect",
    "errors",
    "field",
    "parse_filter",
]
