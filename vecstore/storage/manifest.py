"""The LMDB environment of one collection: manifest, id map, tombstones and write-ahead log.

Every state change is one synced LMDB write transaction, so it is either wholly durable or absent:

- ``meta``:       schema, options, counters (next WAL sequence number, next segment id);
- ``segments``:   segment id -> JSON entry (file name, rows, bytes, sha256, and its index files) of each
                  sealed segment;
- ``tombstones``: segment id -> packed bitmap of deleted rows;
- ``idmap``:      external id -> (segment id, offset) of every live row in a sealed segment;
- ``wal``:        sequence number -> upsert batch (Arrow IPC stream) or delete (int64 ids) not yet sealed.

Rows that are only in the WAL are not in the id map; the engine rebuilds them by replaying the WAL.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import numpy as np

from vecstore.errors import DataCorruption, FailedPrecondition

T = TypeVar("T")

WAL_UPSERT = b"U"
WAL_DELETE = b"D"
_INITIAL_MAP_BYTES = 1 << 30
_U64 = struct.Struct(">Q")
_LOCATION = np.dtype([("segment", "<u4"), ("offset", "<u4")])


def _u64(value: int) -> bytes:
    return _U64.pack(value)


def id_keys(ids: np.ndarray) -> list[bytes]:
    """Big-endian keys, so the id map iterates in id order."""
    raw = np.ascontiguousarray(ids, dtype=">u8").tobytes()
    return [raw[i : i + 8] for i in range(0, len(raw), 8)]


def _unpack_deleted(raw: bytes | None, num_rows: int) -> np.ndarray:
    """A stored tombstone bitmap as a bool mask (no bitmap: nothing deleted)."""
    if raw is None:
        return np.zeros(num_rows, dtype=bool)
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=num_rows, bitorder="little").astype(bool)


@dataclass(frozen=True)
class WalRecord:
    seq: int
    kind: bytes
    payload: bytes


class CollectionStore:
    """Typed access to a collection's LMDB environment; writes are single synced transactions."""

    def __init__(self, path: Path, *, create: bool = False, map_bytes: int = _INITIAL_MAP_BYTES) -> None:
        self.path = path
        if not create and not (path / "data.mdb").exists():
            raise DataCorruption(f"collection manifest {path / 'data.mdb'} is missing")
        try:
            self.env = lmdb.open(str(path), map_size=map_bytes, max_dbs=8, sync=True, metasync=True, create=create)
        except lmdb.Error as exc:
            raise DataCorruption(f"collection manifest in {path} cannot be opened: {exc}") from None
        self._meta = self.env.open_db(b"meta")
        self._segments = self.env.open_db(b"segments")
        self._tombstones = self.env.open_db(b"tombstones")
        self._idmap = self.env.open_db(b"idmap")
        self._wal = self.env.open_db(b"wal")
        # Growing the map closes every transaction this process has open, so no transaction may run
        # beside it: every one (a background build allocating a segment id, say) takes this lock.
        self._txn_lock = threading.RLock()

    def close(self) -> None:
        with self._txn_lock:
            self.env.close()

    # -- transactions ----------------------------------------------------------------------
    def _write(self, body: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``body`` in one synced write transaction, growing the map when it is full."""
        with self._txn_lock:
            while True:
                try:
                    with self.env.begin(write=True) as txn:
                        return body(txn)
                except lmdb.MapFullError:
                    pass
                except lmdb.Error as exc:
                    raise FailedPrecondition(f"write to {self.path} failed: {exc}") from None
                try:
                    self.env.set_mapsize(self.env.info()["map_size"] * 2)
                except lmdb.Error as exc:
                    raise FailedPrecondition(f"{self.path} is full and cannot grow: {exc}") from None

    @contextmanager
    def _read(self) -> Iterator[lmdb.Transaction]:
        """A read transaction, held under the same lock as writes and map growth."""
        with self._txn_lock, self.env.begin() as txn:
            yield txn

    # -- meta ------------------------------------------------------------------------------
    def initialise(self, meta: dict[str, Any]) -> None:
        def body(txn: lmdb.Transaction) -> None:
            txn.put(b"config", json.dumps(meta).encode(), db=self._meta)
            txn.put(b"next_seq", _u64(1), db=self._meta)
            txn.put(b"next_segment", _u64(1), db=self._meta)

        self._write(body)

    def config(self) -> dict[str, Any]:
        with self._read() as txn:
            raw = txn.get(b"config", db=self._meta)
        if raw is None:
            raise DataCorruption(f"collection manifest in {self.path} has no configuration")
        return json.loads(raw)

    def _next(self, txn: lmdb.Transaction, key: bytes) -> int:
        value = _U64.unpack(txn.get(key, db=self._meta))[0]
        txn.put(key, _u64(value + 1), db=self._meta)
        return value

    def allocate_segment_id(self) -> int:
        return self._write(lambda txn: self._next(txn, b"next_segment"))

    # -- reads -----------------------------------------------------------------------------
    def segments(self) -> dict[int, dict[str, Any]]:
        with self._read() as txn:
            return {_U64.unpack(k)[0]: json.loads(v) for k, v in txn.cursor(db=self._segments).iternext()}

    def deleted_mask(self, segment_id: int, num_rows: int) -> np.ndarray:
        with self._read() as txn:
            raw = txn.get(_u64(segment_id), db=self._tombstones)
        return _unpack_deleted(raw, num_rows)

    def wal_records(self) -> Iterator[WalRecord]:
        with self._read() as txn:
            for key, value in txn.cursor(db=self._wal).iternext():
                yield WalRecord(_U64.unpack(key)[0], value[:1], value[1:])

    def locate(self, ids: np.ndarray) -> dict[int, tuple[int, int]]:
        """Sealed location (segment, offset) of each id that has one."""
        found: dict[int, tuple[int, int]] = {}
        with self._read() as txn:
            cursor = txn.cursor(db=self._idmap)
            for key, value in cursor.getmulti(id_keys(ids)):
                loc = np.frombuffer(value, dtype=_LOCATION)[0]
                found[_U64.unpack(key)[0]] = (int(loc["segment"]), int(loc["offset"]))
        return found

    def idmap_size(self) -> int:
        with self._read() as txn:
            return txn.stat(self._idmap)["entries"]

    # -- writes ----------------------------------------------------------------------------
    def _tombstone(self, txn: lmdb.Transaction, ids: np.ndarray, rows: dict[int, int]) -> dict[int, np.ndarray]:
        """Remove ``ids`` from the id map and mark their sealed rows deleted; returns offsets by segment."""
        keys = id_keys(ids)
        cursor = txn.cursor(db=self._idmap)
        hits: dict[int, list[int]] = {}
        for key, value in cursor.getmulti(keys):
            loc = np.frombuffer(value, dtype=_LOCATION)[0]
            hits.setdefault(int(loc["segment"]), []).append(int(loc["offset"]))
            txn.delete(key, db=self._idmap)
        out: dict[int, np.ndarray] = {}
        for segment_id, offsets in hits.items():
            key = _u64(segment_id)
            raw = txn.get(key, db=self._tombstones)
            deleted = _unpack_deleted(raw, rows[segment_id])
            offsets_array = np.asarray(offsets, dtype=np.int64)
            deleted[offsets_array] = True
            txn.put(key, np.packbits(deleted, bitorder="little").tobytes(), db=self._tombstones)
            out[segment_id] = offsets_array
        return out

    def commit_write(
        self, kind: bytes, payload: bytes, ids: np.ndarray, rows: dict[int, int]
    ) -> tuple[int, dict[int, np.ndarray]]:
        """Append one WAL record and tombstone the sealed rows it replaces or deletes, atomically.

        ``rows`` gives the row count of each sealed segment. Returns the record's sequence number and
        the sealed offsets that became dead, by segment.
        """

        def body(txn: lmdb.Transaction) -> tuple[int, dict[int, np.ndarray]]:
            seq = self._next(txn, b"next_seq")
            txn.put(_u64(seq), kind + payload, db=self._wal, append=True)
            return seq, self._tombstone(txn, ids, rows)

        return self._write(body)

    def commit_seal(self, segment_id: int, entry: dict[str, Any] | None, ids: np.ndarray, last_seq: int) -> None:
        """Publish a sealed segment (or none, when every row was dead) and trim the WAL up to ``last_seq``."""

        def body(txn: lmdb.Transaction) -> None:
            if entry is not None:
                txn.put(_u64(segment_id), json.dumps(entry).encode(), db=self._segments)
                self._put_locations(txn, segment_id, ids)
            cursor = txn.cursor(db=self._wal)
            if cursor.first():
                while cursor.key() and _U64.unpack(cursor.key())[0] <= last_seq:
                    if not cursor.delete():
                        break

        self._write(body)

    def update_segment_entry(self, segment_id: int, entry: dict[str, Any]) -> bool:
        """Replace the entry of a segment still in the manifest (e.g. to attach its index file).

        Returns False, changing nothing, when the segment is gone (compacted or dropped meanwhile).
        """

        def body(txn: lmdb.Transaction) -> bool:
            key = _u64(segment_id)
            if txn.get(key, db=self._segments) is None:
                return False
            txn.put(key, json.dumps(entry).encode(), db=self._segments)
            return True

        return self._write(body)

    def commit_replace_segments(
        self,
        old_ids: tuple[int, ...],
        new_id: int | None,
        entry: dict[str, Any] | None,
        ids: np.ndarray,
        dead: np.ndarray | None = None,
    ) -> None:
        """Replace segments ``old_ids`` by their rewrite ``new_id`` in one transaction: a compaction
        (one segment) or a merge (several); ``new_id`` None drops them (every row had died).

        ``dead`` marks rows of the rewrite that died after it was made (a merge runs beside writes):
        they get tombstones and no id-map entry (their ids are elsewhere now, or deleted).
        """
        dead = np.zeros(ids.shape[0], dtype=bool) if dead is None else dead

        def body(txn: lmdb.Transaction) -> None:
            for old in old_ids:
                txn.delete(_u64(old), db=self._segments)
                txn.delete(_u64(old), db=self._tombstones)
            if new_id is None or entry is None:
                return
            txn.put(_u64(new_id), json.dumps(entry).encode(), db=self._segments)
            self._put_locations(txn, new_id, ids, ~dead)
            if dead.any():
                txn.put(_u64(new_id), np.packbits(dead, bitorder="little").tobytes(), db=self._tombstones)

        self._write(body)

    def _put_locations(
        self, txn: lmdb.Transaction, segment_id: int, ids: np.ndarray, live: np.ndarray | None = None
    ) -> None:
        """Point the id map at rows of ``segment_id`` (only the ``live`` ones, when given)."""
        locations = np.empty(ids.shape[0], dtype=_LOCATION)
        locations["segment"] = segment_id
        locations["offset"] = np.arange(ids.shape[0], dtype=np.uint32)
        raw = locations.tobytes()
        keys = id_keys(ids)
        rows = range(len(keys)) if live is None else np.flatnonzero(live).tolist()
        txn.cursor(db=self._idmap).putmulti([(keys[i], raw[8 * i : 8 * i + 8]) for i in rows])

    def drop_segment_entry(self, segment_id: int) -> list[int]:
        """Forget a segment that cannot be read (repair): its entry, tombstones and id-map rows."""

        def body(txn: lmdb.Transaction) -> list[int]:
            txn.delete(_u64(segment_id), db=self._segments)
            txn.delete(_u64(segment_id), db=self._tombstones)
            lost: list[int] = []
            cursor = txn.cursor(db=self._idmap)
            more = cursor.first()
            while more:
                loc = np.frombuffer(cursor.value(), dtype=_LOCATION)[0]
                if int(loc["segment"]) == segment_id:
                    lost.append(_U64.unpack(cursor.key())[0])
                    more = cursor.delete() and bool(cursor.key())
                else:
                    more = cursor.next()
            return lost

        return self._write(body)
