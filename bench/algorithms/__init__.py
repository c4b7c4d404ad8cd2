"""The algorithms the bench runs, by name."""

from __future__ import annotations

from collections.abc import Callable

from bench.algorithms.base import Algorithm, LibraryMissing


def _factory(module: str, cls: str) -> Callable[..., Algorithm]:
    def make(**kwargs) -> Algorithm:
        import importlib

        return getattr(importlib.import_module(f"bench.algorithms.{module}"), cls)(**kwargs)

    return make


ALGORITHMS: dict[str, Callable[..., Algorithm]] = {
    "vecstore": _factory("vecstore_peer", "VecstoreEmbedded"),
    "vecstore-sq8": _factory("vecstore_peer", "VecstoreSq8"),
    "vecstore-grpc": _factory("vecstore_peer", "VecstoreGrpc"),
    "vecstore-hnsw-index": _factory("vecstore_hnsw", "VecstoreHnswIndex"),
    "numpy-exact": _factory("exact_numpy", "NumpyExact"),
    "hnswlib": _factory("hnswlib_peer", "Hnswlib"),
    "faiss-hnsw": _factory("faiss_peers", "FaissHNSW"),
    "faiss-ivfpq": _factory("faiss_peers", "FaissIVFPQ"),
    "usearch": _factory("usearch_peer", "Usearch"),
    "lancedb-flat": _factory("lancedb_peer", "LanceDBFlat"),
}
#: algorithms that take graph build parameters (m, ef_construction)
GRAPH_ALGORITHMS = {
    "vecstore",
    "vecstore-sq8",
    "vecstore-grpc",
    "vecstore-hnsw-index",
    "hnswlib",
    "faiss-hnsw",
    "usearch",
}


def unknown_algorithm_message(name: str) -> str:
    return f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}, or give module:Class of your own adapter"


def is_known(name: str) -> bool:
    return name in ALGORITHMS or ":" in name


def make_algorithm(name: str, **kwargs) -> Algorithm:
    """A registered algorithm by name, or ``module:Class`` for an adapter outside this package."""
    if name in ALGORITHMS:
        return ALGORITHMS[name](**kwargs)
    import importlib

    module, _, cls = name.partition(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = [
    "ALGORITHMS",
    "GRAPH_ALGORITHMS",
    "Algorithm",
    "LibraryMissing",
    "is_known",
    "make_algorithm",
    "unknown_algorithm_message",
]
