"""The engine: the only layer that composes storage, filters, indexes and kernels."""

from vecstore.engine.collection import Collection
from vecstore.engine.database import Database, connect

__all__ = ["Collection", "Database", "connect"]
