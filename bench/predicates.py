"""Filter predicates of the bench workloads, in every form a peer needs.

One predicate is rendered three ways from the same definition, so every system answers the same
question: a vecstore filter AST (vecstore evaluates it itself), a SQL ``where`` clause (LanceDB
evaluates it itself) and a boolean mask over the train rows (handed to the peers whose filter API is
a bitmap, an id list or a callback; computing it is not timed for them, which favours the peers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.columns import Column
from vecstore.filters import ast


def _sql_literal(value: object, column: Column) -> str:
    if column.kind == "timestamp":
        seconds = int(value)
        text = np.datetime_as_string(np.datetime64(seconds, "s"), unit="s").replace("T", " ")
        return f"arrow_cast('{text}', 'Timestamp(Second, None)')"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value.item() if isinstance(value, np.generic) else value)


def _vecstore_literal(value: object, column: Column) -> object:
    if column.kind == "timestamp":
        return np.datetime_as_string(np.datetime64(int(value), "s"), unit="s")
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Window:
    """``column between low and high`` (both inclusive) on a numeric or timestamp column."""

    column: str
    low: float
    high: float

    def mask(self, columns: dict[str, Column]) -> np.ndarray:
        values = columns[self.column].values
        return (values >= self.low) & (values <= self.high)

    def to_vecstore(self, columns: dict[str, Column]) -> ast.Node:
        col = columns[self.column]
        return ast.field(self.column).between(_vecstore_literal(self.low, col), _vecstore_literal(self.high, col))

    def to_sql(self, columns: dict[str, Column]) -> str:
        col = columns[self.column]
        return f"{self.column} BETWEEN {_sql_literal(self.low, col)} AND {_sql_literal(self.high, col)}"


@dataclass(frozen=True)
class OneOf:
    """``column = v`` (one value) or ``column in (v1, v2, ...)`` on a string column."""

    column: str
    values: tuple[str, ...]

    def mask(self, columns: dict[str, Column]) -> np.ndarray:
        col = columns[self.column]
        codes = [col.code_of(v) for v in self.values]
        return np.isin(col.values, np.array(codes, dtype=col.values.dtype))

    def to_vecstore(self, columns: dict[str, Column]) -> ast.Node:
        if len(self.values) == 1:
            return ast.field(self.column) == self.values[0]
        return ast.field(self.column).isin(self.values)

    def to_sql(self, columns: dict[str, Column]) -> str:
        col = columns[self.column]
        if len(self.values) == 1:
            return f"{self.column} = {_sql_literal(self.values[0], col)}"
        return f"{self.column} IN ({', '.join(_sql_literal(v, col) for v in self.values)})"


@dataclass(frozen=True)
class HasTag:
    """``column contains v`` on a list-of-strings column."""

    column: str
    value: str

    def mask(self, columns: dict[str, Column]) -> np.ndarray:
        col = columns[self.column]
        out = np.zeros(col.n_rows, dtype=bool)
        out[col.rows_of_tag(self.value)] = True
        return out

    def to_vecstore(self, columns: dict[str, Column]) -> ast.Node:
        return ast.field(self.column).contains(self.value)

    def to_sql(self, columns: dict[str, Column]) -> str:
        return f"array_has({self.column}, {_sql_literal(self.value, columns[self.column])})"


@dataclass(frozen=True)
class AllOf:
    """The conjunction of its parts."""

    parts: tuple[Window | OneOf | HasTag, ...]

    def mask(self, columns: dict[str, Column]) -> np.ndarray:
        out = self.parts[0].mask(columns)
        for part in self.parts[1:]:
            out &= part.mask(columns)
        return out

    def to_vecstore(self, columns: dict[str, Column]) -> ast.Node:
        node = self.parts[0].to_vecstore(columns)
        for part in self.parts[1:]:
            node = node & part.to_vecstore(columns)
        return node

    def to_sql(self, columns: dict[str, Column]) -> str:
        return " AND ".join(f"({part.to_sql(columns)})" for part in self.parts)


Predicate = Window | OneOf | HasTag | AllOf
