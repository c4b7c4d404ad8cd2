"""Plain-numpy and plain-Python oracles the engine is checked against."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from vecstore.filters import And, Between, Compare, Contains, InList, IsNull, Node, Not, Or


def distances(metric: str, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """[q, n] distances in float64 (smaller is closer), the engine's definitions."""
    q = queries.astype(np.float64)
    x = vectors.astype(np.float64)
    if metric == "l2":
        return ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    dots = q @ x.T
    if metric == "ip":
        return -dots
    return 1.0 - dots / np.linalg.norm(q, axis=1)[:, None] / np.linalg.norm(x, axis=1)[None, :]


def exact_search(
    metric: str, queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k by (distance, id); padded with -1 / inf."""
    nq = queries.shape[0]
    out_ids = np.full((nq, k), -1, dtype=np.int64)
    out_d = np.full((nq, k), np.inf)
    if vectors.shape[0] == 0:
        return out_ids, out_d
    d = distances(metric, queries, vectors)
    for i in range(nq):
        order = np.lexsort((ids, d[i]))[:k]
        out_ids[i, : order.size] = ids[order]
        out_d[i, : order.size] = d[i, order]
    return out_ids, out_d


def assert_same_neighbours(got_ids, got_d, want_ids, want_d, rtol=1e-4, atol=1e-4) -> None:
    """Equal up to float rounding: same padding, close distances, and every neighbour that is not
    tied with the k-th one present (rows tied at the boundary may be swapped)."""
    got_ids = np.asarray(got_ids)
    got_d = np.asarray(got_d, dtype=np.float64)
    np.testing.assert_array_equal(got_ids < 0, want_ids < 0)
    found = want_ids >= 0
    np.testing.assert_allclose(got_d[found], want_d[found], rtol=rtol, atol=atol)
    for i in range(want_ids.shape[0]):
        if not found[i].any():
            continue
        kth = want_d[i][found[i]].max()
        sure = found[i] & (want_d[i] < kth - (atol + rtol * abs(kth)))
        missing = set(want_ids[i][sure].tolist()) - set(got_ids[i].tolist())
        assert not missing, f"query {i}: ids {sorted(missing)} missing from {got_ids[i].tolist()}"


# -- filters, evaluated one row at a time with SQL three-valued logic ------------------------


def _ts(value: Any) -> Any:
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        return parsed
    return value


def _cmp(op: str, a: Any, b: Any) -> bool:
    return {
        "=": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


def row_matches(node: Node, row: dict[str, Any], types: dict[str, str]) -> bool | None:
    """True / False / None (unknown) for one row given as a dict of Python values."""
    if isinstance(node, And):
        values = [row_matches(c, row, types) for c in node.children]
        if any(v is False for v in values):
            return False
        return None if any(v is None for v in values) else True
    if isinstance(node, Or):
        values = [row_matches(c, row, types) for c in node.children]
        if any(v is True for v in values):
            return True
        return None if any(v is None for v in values) else False
    if isinstance(node, Not):
        v = row_matches(node.child, row, types)
        return None if v is None else not v
    value = row[node.field]  # type: ignore[attr-defined]
    conv = _ts if types.get(node.field) == "timestamp" else (lambda x: x)  # type: ignore[attr-defined]
    if isinstance(node, IsNull):
        return (value is not None) if node.negated else (value is None)
    if value is None:
        return None
    if isinstance(node, Compare):
        return _cmp(node.op, value, conv(node.value))
    if isinstance(node, Between):
        return conv(node.low) <= value <= conv(node.high)
    if isinstance(node, InList):
        hit = value in {conv(v) for v in node.values}
        return not hit if node.negated else hit
    if isinstance(node, Contains):
        present = set(value)
        if node.mode == "all":
            return all(v in present for v in node.values)
        return any(v in present for v in node.values)
    raise TypeError(node)


def filter_mask(node: Node | None, rows: list[dict[str, Any]], types: dict[str, str]) -> np.ndarray:
    if node is None:
        return np.ones(len(rows), dtype=bool)
    return np.array([row_matches(node, r, types) is True for r in rows], dtype=bool)
