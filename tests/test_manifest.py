"""The LMDB manifest under threads: growing the map must not break transactions running beside it."""

from __future__ import annotations

import threading

import numpy as np

from vecstore.storage.manifest import CollectionStore


def test_the_map_grows_while_other_threads_read_and_write(tmp_path):
    # A 1 MiB map fills after a few WAL records, so the writer grows it many times (to 64 MiB) while
    # readers and a second writer (a background build allocating segment ids) run beside it.
    store = CollectionStore(tmp_path, create=True, map_bytes=1 << 20)
    store.initialise({"schema": {}})
    errors: list[str] = []
    stop = threading.Event()

    def guarded(body):
        def run() -> None:
            try:
                while not stop.is_set():
                    body()
            except Exception as exc:  # any failure is what the test reports
                errors.append(f"{type(exc).__name__}: {exc}")

        return threading.Thread(target=run)

    allocated: list[int] = []
    threads = [
        guarded(lambda: (store.locate(np.arange(100)), store.segments(), list(store.wal_records()))),
        guarded(lambda: allocated.append(store.allocate_segment_id())),
    ]
    for thread in threads:
        thread.start()
    try:
        for i in range(300):
            store.commit_write(b"U", b"x" * 200_000, np.arange(i, i + 1), {})
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert store.env.info()["map_size"] > 1 << 20
    assert [record.seq for record in store.wal_records()] == list(range(1, 301))
    assert allocated == list(range(1, len(allocated) + 1))  # every id handed out once, in order
    store.close()
