"""Recognise filters that are one interval on one field (the shape a sorted segment answers by slicing)."""

from __future__ import annotations

from dataclasses import dataclass

from vecstore.filters.ast import And, Between, Compare, Node, Value


@dataclass(frozen=True)
class Interval:
    """``low <(=) field <(=) high``; a None bound is open. Null values never fall inside."""

    low: Value | None = None
    low_inclusive: bool = True
    high: Value | None = None
    high_inclusive: bool = True


def _bounds(node: Node, field: str) -> list[Interval] | None:
    if isinstance(node, Between) and node.field == field:
        return [Interval(node.low, True, node.high, True)]
    if isinstance(node, Compare) and node.field == field and not isinstance(node.value, bool):
        v = node.value
        return {
            "=": [Interval(v, True, v, True)],
            ">": [Interval(low=v, low_inclusive=False)],
            ">=": [Interval(low=v)],
            "<": [Interval(high=v, high_inclusive=False)],
            "<=": [Interval(high=v)],
        }.get(node.op)
    if isinstance(node, And):
        parts: list[Interval] = []
        for child in node.children:
            bounds = _bounds(child, field)
            if bounds is None:
                return None
            parts += bounds
        return parts
    return None


def interval_on(node: Node | None, field: str) -> list[Interval] | None:
    """The intervals whose intersection is exactly ``node``, when ``node`` only bounds ``field``."""
    if node is None:
        return None
    return _bounds(node, field)
