"""Child process for the graph crash test: upserts batches that each seal a segment big enough for a
graph, so the background builder is building, writing or publishing when the parent kills us.

Run as ``python tests/graph_crash_child.py DB_DIR FIRST_BATCH``; prints ``ack N`` after batch N.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DIM = 8


def batch_rows() -> int:
    from vecstore.engine.graphs import MIN_GRAPH_ROWS

    return MIN_GRAPH_ROWS


def batch(n: int) -> tuple[np.ndarray, np.ndarray]:
    rows = batch_rows()
    rng = np.random.default_rng(n)
    return np.arange(n * rows, (n + 1) * rows, dtype=np.int64), rng.standard_normal((rows, DIM)).astype(np.float32)


def open_collection(path: Path):
    import vecstore

    db = vecstore.connect(path)
    if "graphs" not in db.list_collections():
        db.create_collection("graphs", dim=DIM, metric="l2", seal_rows=batch_rows(), hnsw={"ef_construction": 64})
    return db, db.collection("graphs")


def apply_batch(col, n: int) -> None:
    ids, vectors = batch(n)
    col.upsert(ids, vectors)  # reaches seal_rows: seals, and wakes the optimizer


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.crash_child import acknowledge_forever

    acknowledge_forever(open_collection, apply_batch)
