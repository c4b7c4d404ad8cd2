"""Shared fixtures: a fresh database per test and a helper that captures a collection's full state."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore

ATTRS = {
    "year": "int64",
    "price": "float64",
    "ts": "timestamp",
    "cat": "string",
    "tags": "list<string>",
    "open": "bool",
}


@pytest.fixture
def db(tmp_path):
    database = vecstore.connect(tmp_path / "db")
    yield database
    database.close()


def make_rows(n: int, dim: int, seed: int = 0, start_id: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Seeded rows with every attribute type (and some nulls)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(start_id, start_id + n, dtype=np.int64)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    cats = np.array(["a", "b", "c", "d"])
    attributes = {
        "year": rng.integers(1990, 2025, n),
        "price": np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 100),
        "ts": (np.datetime64("2024-01-01") + rng.integers(0, 366, n).astype("timedelta64[D]")).astype("datetime64[us]"),
        "cat": [None if rng.random() < 0.05 else str(c) for c in cats[rng.integers(0, 4, n)]],
        "tags": [[t for t in ("x", "y", "z") if rng.random() < 0.4] for _ in range(n)],
        "open": rng.random(n) < 0.5,
    }
    return ids, vectors, attributes


def state_of(col) -> dict:
    """Every live row of ``col`` (as Python values, keyed by id), for before/after comparisons."""
    table = col.get(np.arange(0, 10_000))
    return {row["id"]: row for row in table.to_pylist()} | {"__count__": col.count()}


@pytest.fixture
def graphs_priced_in(monkeypatch):
    """Price scanned rows as on a large segment, so the planner takes graph strategies on the small
    collections tests build (where a scan is rightly cheaper); for tests about the graph paths."""
    from vecstore.engine import planner

    monkeypatch.setattr(planner, "EXACT_NS_PER_ROW_DIM", 50.0)


def price_out_segment_walks(monkeypatch) -> None:
    """Price the segment graph's masked and two-hop walks (as plan_segment prices them) 100 times dearer,
    so that a test's filters run on the term, range or tree graphs that can answer them."""
    from vecstore.engine import planner

    segment_graph = planner.masked_graph_option

    def priced_out(*args, **kwargs):
        option = segment_graph(*args, **kwargs)
        return None if option is None else (option[0], option[1] * 100)

    monkeypatch.setattr(planner, "masked_graph_option", priced_out)
