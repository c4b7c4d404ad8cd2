"""Storage: Arrow segment files, the LMDB manifest + WAL of each collection, locks and atomic writes.

Knows nothing of indexes or search; the engine composes it with the other layers.
"""

from vecstore.storage.array_file import open_array_file, write_array_file
from vecstore.storage.files import DirectoryLock, fsync_dir, verify_file
from vecstore.storage.manifest import WAL_DELETE, WAL_UPSERT, CollectionStore, WalRecord
from vecstore.storage.segment_file import SegmentData, open_segment, verify_segment, write_segment

__all__ = [
    "WAL_DELETE",
    "WAL_UPSERT",
    "CollectionStore",
    "DirectoryLock",
    "SegmentData",
    "WalRecord",
    "fsync_dir",
    "open_array_file",
    "open_segment",
    "verify_file",
    "verify_segment",
    "write_array_file",
    "write_segment",
]
