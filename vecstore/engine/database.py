"""A database: a locked directory of collections, each created and dropped atomically."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vecstore.engine.collection import (
    DEFAULT_COMPACT_DEAD_FRACTION,
    DEFAULT_SEAL_ROWS,
    SEGMENTS_DIR,
    Collection,
)
from vecstore.engine.merging import DEFAULT_MAX_SEGMENT_ROWS
from vecstore.errors import AlreadyExists, DataCorruption, FailedPrecondition, InvalidArgument, NotFound
from vecstore.storage import CollectionStore, DirectoryLock, fsync_dir, verify_segment
from vecstore.types import CollectionSchema, check_name, positive_int_option

FORMAT_VERSION = 1
COLLECTIONS_DIR = "collections"
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
QUARANTINE_DIR = "quarantine"


def _is_collection_name(name: object) -> bool:
    """Only names create_collection accepts can reach the file system (no '', '..', '/', '.tmp-')."""
    try:
        check_name(name, "collection")
    except InvalidArgument:
        return False
    return True


class Database:
    """An embedded vecstore database rooted at a directory. Use :func:`vecstore.connect`."""

    def __init__(self, path: str | os.PathLike[str], *, verify_checksums: bool = True) -> None:
        self.path = Path(path).resolve()
        self.verify_checksums = verify_checksums
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FailedPrecondition(f"cannot create database directory {self.path}: {exc}") from None
        self._check_format()
        self._lock = DirectoryLock(self.path)
        self._lock.acquire()
        self._mutex = threading.RLock()
        self._open: dict[str, Collection] = {}
        self._closed = False
        self._collections_dir.mkdir(exist_ok=True)
        self._remove_leftovers()

    @property
    def _collections_dir(self) -> Path:
        return self.path / COLLECTIONS_DIR

    def _check_format(self) -> None:
        marker = self.path / "VECSTORE"
        if marker.exists():
            try:
                version = json.loads(marker.read_text())["format"]
            except (ValueError, KeyError, OSError) as exc:
                raise DataCorruption(f"{marker} is unreadable ({exc}); is this a vecstore directory?") from None
            if version != FORMAT_VERSION:
                raise FailedPrecondition(
                    f"{self.path} holds format {version}; this vecstore reads format {FORMAT_VERSION}"
                )
            return
        if any(p.name not in ("LOCK",) for p in self.path.iterdir()):
            raise FailedPrecondition(
                f"{self.path} is not empty and is not a vecstore database; choose an empty or new directory"
            )
        marker.write_text(json.dumps({"format": FORMAT_VERSION}))
        fsync_dir(self.path)

    def _remove_leftovers(self) -> None:
        """Collections half-created or half-dropped by a crash."""
        for child in self._collections_dir.iterdir():
            if child.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
                shutil.rmtree(child, ignore_errors=True)

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("the database is closed; open it again with vecstore.connect(path)")

    # -- collections -----------------------------------------------------------------------
    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        attributes: Mapping[str, str] | None = None,
        *,
        window: str | None = None,
        hnsw: Mapping[str, Any] | None = None,
        quantization: Mapping[str, Any] | None = None,
        seal_rows: int = DEFAULT_SEAL_ROWS,
        compact_dead_fraction: float = DEFAULT_COMPACT_DEAD_FRACTION,
        max_segment_rows: int = DEFAULT_MAX_SEGMENT_ROWS,
    ) -> Collection:
        """Create a collection; attribute types: int64, float64, timestamp, string, list<string>, bool.

        New rows are sealed into a segment every ``seal_rows``; segments smaller than half of
        ``max_segment_rows`` are merged in the background, up to that size (1 turns merging off).
        """
        check_name(name, "collection")
        schema = CollectionSchema.validated(dim, metric, attributes, window, hnsw, quantization)
        seal_rows = positive_int_option(seal_rows, "seal_rows")
        max_segment_rows = positive_int_option(max_segment_rows, "max_segment_rows")
        if not 0 < compact_dead_fraction <= 1:
            raise InvalidArgument(f"compact_dead_fraction must be in (0, 1], got {compact_dead_fraction!r}")
        with self._mutex:
            self._check_open()
            final = self._collections_dir / name
            if final.exists():
                raise AlreadyExists(f"collection {name!r} already exists; use db.collection({name!r}) or drop it first")
            staging = self._collections_dir / f"{_TMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
            staging.mkdir()
            (staging / SEGMENTS_DIR).mkdir()
            (staging / "manifest").mkdir()
            store = CollectionStore(staging / "manifest", create=True)
            options = {
                "seal_rows": seal_rows,
                "compact_dead_fraction": compact_dead_fraction,
                "max_segment_rows": max_segment_rows,
            }
            store.initialise({"schema": schema.to_json(), "options": options})
            store.close()
            fsync_dir(staging)
            os.rename(staging, final)
            fsync_dir(self._collections_dir)
            return self.collection(name)

    def list_collections(self) -> list[str]:
        """Names of the collections, sorted."""
        self._check_open()
        return sorted(p.name for p in self._collections_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def collection(self, name: str) -> Collection:
        """Open (or return the already open) collection ``name``."""
        with self._mutex:
            self._check_open()
            if name in self._open:
                return self._open[name]
            if not _is_collection_name(name) or not (self._collections_dir / name).is_dir():
                names = self.list_collections()
                close = difflib.get_close_matches(str(name), names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; existing collections: {names}"
                raise NotFound(f"collection {name!r} does not exist{hint}")
            col = Collection(name, self._collections_dir / name, verify_checksums=self.verify_checksums)
            self._open[name] = col
            return col

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all of its data."""
        with self._mutex:
            self._check_open()
            path = self._collections_dir / str(name)
            if not _is_collection_name(name) or not path.is_dir():
                raise NotFound(f"collection {name!r} does not exist")
            col = self._open.pop(name, None)
            if col is not None:
                col.close()
            trash = self._collections_dir / f"{_TRASH_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
            os.rename(path, trash)
            fsync_dir(self._collections_dir)
            shutil.rmtree(trash, ignore_errors=True)

    def repair(self, name: str) -> dict[str, Any]:
        """Set aside unreadable segment files of ``name`` and forget their rows.

        Returns what was moved to the collection's ``quarantine/`` folder and how many rows were lost.
        Data still in the write-ahead log is kept.
        """
        with self._mutex:
            self._check_open()
            if name in self._open:
                return {"quarantined": [], "lost_rows": 0}
            path = self._collections_dir / str(name)
            if not _is_collection_name(name) or not path.is_dir():
                raise NotFound(f"collection {name!r} does not exist")
            store = CollectionStore(path / "manifest")
            quarantined: list[str] = []
            lost = 0
            try:
                for segment_id, entry in store.segments().items():
                    file_path = path / SEGMENTS_DIR / entry["file"]
                    try:
                        verify_segment(file_path, entry["bytes"], entry["sha256"])
                    except DataCorruption:
                        lost += len(store.drop_segment_entry(segment_id))
                        if file_path.exists():
                            (path / QUARANTINE_DIR).mkdir(exist_ok=True)
                            os.replace(file_path, path / QUARANTINE_DIR / file_path.name)
                        quarantined.append(entry["file"])
            finally:
                store.close()
            return {"quarantined": quarantined, "lost_rows": lost}

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close every collection and release the directory lock."""
        with self._mutex:
            if self._closed:
                return
            for col in self._open.values():
                col.close()
            self._open.clear()
            self._closed = True
            self._lock.release()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"


def connect(path: str | os.PathLike[str], *, verify_checksums: bool = True) -> Database:
    """Open (creating if needed) the embedded database at ``path``; one process may hold it at a time."""
    return Database(path, verify_checksums=verify_checksums)
