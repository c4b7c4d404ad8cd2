"""The background optimizer of a collection: one thread that builds segment graphs and merges segments.

Writes never wait for it. The collection hands it jobs (``Job``): the expensive part runs without the
collection's lock, then the result is published under the lock with one manifest transaction, or
discarded (its files removed) when it no longer applies, e.g. a segment was compacted meanwhile.
A crash before a publish leaves only orphan files, which the next open removes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vecstore.errors import VecstoreError
from vecstore.index.hnsw import BuildCancelled

log = logging.getLogger("vecstore.optimizer")


@dataclass(frozen=True)
class Job:
    """One unit of background work over some sealed segments."""

    kind: str  # "graph" | "tree" | "terms" | "codes" | "merge"
    segment_ids: tuple[int, ...]
    execute: Callable[[Callable[[], bool]], Any]  # without the lock; polls its argument, may raise BuildCancelled
    publish: Callable[[Any], bool]  # under the lock; False when the result no longer applies
    discard: Callable[[Any], None]  # removes the files of a result that was not published

    @property
    def key(self) -> tuple:
        return (self.kind, *self.segment_ids)


class Optimizer:
    """Runs the jobs ``next_job`` offers, one at a time, on a daemon thread sharing the collection's lock.

    ``next_job(skip)`` (lock held) returns the next job whose key is not in ``skip`` (jobs that failed
    since the last ``notify``), or None. ``superseded(job)`` (lock held) says whether a running job is
    no longer worth finishing (a graph for a segment that is about to be merged away); it is then
    cancelled at its next poll. ``stop`` cancels the running job and joins the thread.
    """

    def __init__(
        self,
        name: str,
        lock: threading.RLock,
        next_job: Callable[[set[tuple]], Job | None],
        superseded: Callable[[Job], bool],
    ) -> None:
        self._name = name
        self._wake = threading.Condition(lock)
        self._next_job = next_job
        self._superseded = superseded
        self._stopping = threading.Event()
        self._cancel_running = threading.Event()
        self._thread: threading.Thread | None = None
        self.running: Job | None = None
        self.failures: dict[tuple, str] = {}  # job key -> error of its last attempt
        self.seconds: dict[str, float] = {}  # job kind -> seconds its published jobs took to execute

    def notify(self) -> None:
        """Call with the lock held after segments change: wakes (or starts) the thread, retries failures."""
        if self._stopping.is_set():
            return
        self.failures.clear()
        if self.running is not None and self._superseded(self.running):
            self._cancel_running.set()
        if self._thread is None or not self._thread.is_alive():
            if self._next_job(set()) is None:
                return
            self._thread = threading.Thread(target=self._run, name=f"vecstore-optimizer-{self._name}", daemon=True)
            self._thread.start()
        self._wake.notify_all()

    def idle(self) -> bool:
        """True when nothing runs and nothing is waiting (lock held)."""
        return self.running is None and self._next_job(set(self.failures)) is None

    def wait(self, timeout: float | None) -> bool:
        """Block until idle or ``timeout`` seconds pass; True when idle with no failed job."""
        with self._wake:
            self._wake.wait_for(lambda: self._stopping.is_set() or self.idle(), timeout)
            return self.idle() and not self.failures

    def stop(self) -> None:
        """Cancel the running job and wait for the thread; call without holding the lock."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _should_stop(self) -> bool:
        return self._stopping.is_set() or self._cancel_running.is_set()

    def _run(self) -> None:
        while True:
            with self._wake:
                job = None
                while not self._stopping.is_set():
                    job = self._next_job(set(self.failures))
                    if job is not None:
                        break
                    self._wake.notify_all()  # idle: release waiters
                    self._wake.wait()
                if job is None:
                    return
                self.running = job
                self._cancel_running.clear()
            started = time.perf_counter()
            try:
                result = job.execute(self._should_stop)
            except BuildCancelled:
                with self._wake:
                    self.running = None
                    if self._stopping.is_set():
                        return
                continue
            except Exception as exc:  # any other error is a bug, but must not kill the thread
                # a dead thread would leave ``running`` set: waiters would block forever and no other
                # segment would get its graph; recorded, the failure shows in describe() and wait() says so
                if not isinstance(exc, (OSError, MemoryError, VecstoreError)):
                    log.exception("%s job %s failed", job.kind, job.segment_ids)
                with self._wake:
                    self.failures[job.key] = f"{type(exc).__name__}: {exc}"
                    self.running = None
                    self._wake.notify_all()
                continue
            with self._wake:
                self.running = None
                try:
                    published = job.publish(result)
                except (OSError, VecstoreError) as exc:
                    self.failures[job.key] = f"{type(exc).__name__}: {exc}"
                    published = False
                if published:
                    self.seconds[job.kind] = self.seconds.get(job.kind, 0.0) + time.perf_counter() - started
                else:
                    job.discard(result)
                self._wake.notify_all()
