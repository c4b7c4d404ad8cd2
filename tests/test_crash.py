"""Durability with real processes: kill -9 a writer at random moments; nothing acknowledged is lost
and no operation is half applied."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.crash_child import NEW_ROWS_PER_OP, open_collection, operation

CHILD = Path(__file__).with_name("crash_child.py")


def model_after(last_op: int) -> dict[int, tuple[np.ndarray, int]]:
    """Expected rows (vector, op) after operations 0..last_op."""
    state: dict[int, tuple[np.ndarray, int]] = {}
    for n in range(last_op + 1):
        kind, ids, vectors = operation(n)
        for i, external_id in enumerate(ids.tolist()):
            if kind == "delete":
                state.pop(external_id, None)
            else:
                state[external_id] = (vectors[i], n)
    return state


def live_rows_report(col, returned: set[int]) -> str:
    """Where the live rows that ``get`` did not return are (a failure message, so a rare one explains
    itself): per segment, its live rows, the ids ``get`` missed, and ids live in more than one place."""
    lines = [f"count() {col.count()} != get() {len(returned)}"]
    seen: dict[int, int] = {}
    for view in col._snapshot():
        ids = np.asarray(view.ids)
        live = ids if view.live is None else ids[view.live]
        missed = sorted(set(live.tolist()) - returned)
        lines.append(f"segment {view.segment_id}: {live.shape[0]} live of {ids.shape[0]}, missed by get: {missed[:25]}")
        for i in live.tolist():
            seen[i] = seen.get(i, 0) + 1
    lines.append(f"live in more than one segment: {sorted(i for i, n in seen.items() if n > 1)[:25]}")
    lines.append(f"WAL records: {[record.seq for record in col._store.wal_records()]}")
    return "\n".join(lines)


def stored_state(path: Path, last_op: int) -> dict[int, tuple[np.ndarray, int]]:
    db, col = open_collection(path)
    try:
        table = col.get(np.arange(0, (last_op + 2) * NEW_ROWS_PER_OP))
        vectors = table.column("vector").to_pylist()
        ops = table.column("op").to_pylist()
        assert col.count() == table.num_rows, live_rows_report(col, set(table.column("id").to_pylist()))
        return {
            i: (np.asarray(v, dtype=np.float32), o)
            for i, v, o in zip(table.column("id").to_pylist(), vectors, ops, strict=True)
        }
    finally:
        db.close()


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k][1] == b[k][1] and np.array_equal(a[k][0], b[k][0]) for k in a)


def run_and_kill(path: Path, first_op: int, rng: random.Random) -> int:
    """Start a writer at ``first_op``, kill -9 it at a random moment; return the last acknowledged op."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(first_op)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    first = child.stdout.readline()  # start the clock once the writer is warm (first write done)
    time.sleep(rng.uniform(0.0, 0.3))
    acks = acks_after_kill(child, first)
    return acks[-1] if acks else first_op - 1


def acks_after_kill(child: subprocess.Popen, first: str) -> list[int]:
    """Kill -9 the writer and return every op it acknowledged, ``first`` (a line already read) included.

    The rest is read through the same buffered stream: ``communicate(timeout=...)`` reads the raw pipe
    and drops lines ``readline`` had already buffered. A lost ``ack`` made the test expect one op too
    few, and fail once in a fresh clone: the op in flight had committed too.
    """
    assert child.stdout is not None
    child.send_signal(signal.SIGKILL)
    rest = child.stdout.read()
    child.wait(timeout=60)
    return [int(line.split()[1]) for line in [first, *rest.splitlines()] if line.startswith("ack")]


def test_acks_after_kill_keeps_the_lines_readline_buffered():
    # both acks arrive in one write, so reading the first line buffers the second
    script = "import time\nprint('ack 1\\nack 2', flush=True)\ntime.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    first = child.stdout.readline()
    assert acks_after_kill(child, first) == [1, 2]


@pytest.mark.parametrize(
    "kills",
    [
        int(os.environ.get("VECSTORE_CRASH_KILLS", "24")),
        pytest.param(150, marks=pytest.mark.slow, id="soak-150"),
    ],
)
def test_kill_9_loses_no_acknowledged_write(tmp_path, kills):
    path = tmp_path / "db"
    rng = random.Random(1234)
    last = -1
    for _ in range(kills):
        last = run_and_kill(path, last + 1, rng)
        stored = stored_state(path, last)
        # Every acknowledged operation is there; the one in flight is wholly there or wholly absent.
        if same(stored, model_after(last)):
            continue
        assert same(stored, model_after(last + 1)), f"state after kill matches neither op {last} nor op {last + 1}"
        last += 1  # the in-flight operation committed before its acknowledgement was printed
    assert last > kills, "the writer made too little progress to exercise crashes"


GRAPH_CHILD = Path(__file__).with_name("graph_crash_child.py")


def test_kill_9_during_graph_builds_leaves_a_consistent_collection(tmp_path, graphs_priced_in):
    """Kill a writer whose segments are being given graphs in the background: every acknowledged
    batch is there, every published graph opens and verifies, and no unpublished file survives."""
    from tests.graph_crash_child import batch, open_collection

    path = tmp_path / "db"
    rng = random.Random(99)
    next_batch = 0
    for _ in range(int(os.environ.get("VECSTORE_GRAPH_CRASH_KILLS", "6"))):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = subprocess.Popen(
            [sys.executable, str(GRAPH_CHILD), str(path), str(next_batch)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        first = child.stdout.readline()
        time.sleep(rng.uniform(0.0, 1.5))
        acks = acks_after_kill(child, first)
        db, col = open_collection(path)
        try:
            assert col.stats().get("graph_files_rebuilt", 0) == 0  # a published graph is never torn
            segments_dir = path / "collections" / "graphs" / "segments"
            known = {name for s in col._sealed.values() for name in s.file_names()}
            assert {p.name for p in segments_dir.iterdir()} == known  # orphans removed on open
            rows = col.count()
            assert rows >= (acks[-1] + 1) * len(batch(0)[0])
            next_batch = rows // len(batch(0)[0])
            assert rows == next_batch * len(batch(0)[0])  # the in-flight batch is all there or absent
        finally:
            db.close()
    db, col = open_collection(path)
    try:
        assert col.wait_for_indexes(timeout=300)
        ids, vectors = batch(0)
        res = col.search(vectors[:20], k=1, explain=True)
        assert res.strategy in ("hnsw", "mixed")  # mixed: a replayed batch waits in the appendable segment
        sealed_plans = [p for p in res.plan[0]["segments"] if p["segment"] != "appendable"]
        assert sealed_plans and all(p["strategy"] == "hnsw" for p in sealed_plans)
        assert (res.ids[:, 0] == ids[:20]).mean() >= 0.95  # each row finds itself through the graph
    finally:
        db.close()
