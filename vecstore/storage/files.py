"""File-system helpers: atomic publication (tmp + fsync + rename) and a directory lock."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path

from vecstore.errors import DataCorruption, FailedPrecondition

TMP_SUFFIX = ".tmp"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp_path: Path, final_path: Path) -> None:
    """fsync ``tmp_path``, rename it to ``final_path`` and fsync the directory."""
    fsync_file(tmp_path)
    os.replace(tmp_path, final_path)
    fsync_dir(final_path.parent)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_file(path: Path, size_bytes: int, sha256: str, what: str = "file") -> None:
    """Raise DataCorruption naming ``path`` when it is missing, truncated or altered."""
    if not path.exists():
        raise DataCorruption(f"{what} {path} is missing")
    actual = path.stat().st_size
    if actual != size_bytes:
        raise DataCorruption(f"{what} {path} has {actual} bytes, the manifest recorded {size_bytes}")
    if sha256_file(path) != sha256:
        raise DataCorruption(f"{what} {path} fails its sha256 checksum")


class DirectoryLock:
    """An exclusive advisory lock (flock) on ``<dir>/LOCK``, held while a database is open.

    flock locks belong to the open file description, so a second open of the same directory is
    refused in another process and in the same process alike.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "LOCK"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = self._holder()
            raise FailedPrecondition(
                f"database directory {self.path.parent} is locked by another open database{holder}; "
                "close that one (or stop its process) first, or open a different directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            return ""
        return f" (process {pid})" if pid else ""

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
