"""Child process for the crash test: applies a deterministic sequence of writes, acknowledging each.

Run as ``python tests/crash_child.py DB_DIR FIRST_OP``; prints ``ack N`` after operation N returns.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DIM = 8
NEW_ROWS_PER_OP = 20


def operation(n: int) -> tuple[str, np.ndarray, np.ndarray | None]:
    """Operation ``n``: every fifth one deletes, the others upsert new rows plus replacements."""
    rng = np.random.default_rng(n)
    earlier = max(1, n * NEW_ROWS_PER_OP)
    if n % 5 == 4:
        return "delete", np.unique(rng.integers(0, earlier, 12)), None
    new_ids = np.arange(n * NEW_ROWS_PER_OP, (n + 1) * NEW_ROWS_PER_OP)
    replaced = np.setdiff1d(np.unique(rng.integers(0, earlier, 6)), new_ids)
    ids = np.concatenate([new_ids, replaced]).astype(np.int64)
    vectors = rng.standard_normal((ids.shape[0], DIM)).astype(np.float32)
    return "upsert", ids, vectors


def open_collection(path: Path):
    import vecstore

    db = vecstore.connect(path)
    if "crash" not in db.list_collections():
        db.create_collection(
            "crash", dim=DIM, metric="l2", attributes={"op": "int64"}, seal_rows=50, compact_dead_fraction=0.15
        )
    return db, db.collection("crash")


def acknowledge_forever(open_collection_at, apply) -> None:
    """The writer loop both crash children share: open the collection at ``argv[1]``, then apply
    operation ``argv[2]``, ``argv[2] + 1``, ... printing ``ack N`` after each one returns."""
    path, first = Path(sys.argv[1]), int(sys.argv[2])
    _, col = open_collection_at(path)
    print("ready", flush=True)
    n = first
    while True:
        apply(col, n)
        print(f"ack {n}", flush=True)
        n += 1


def apply_operation(col, n: int) -> None:
    kind, ids, vectors = operation(n)
    if kind == "delete":
        col.delete(ids)
    else:
        col.upsert(ids, vectors, {"op": np.full(ids.shape[0], n)})


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    acknowledge_forever(open_collection, apply_operation)
