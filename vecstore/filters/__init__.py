"""The filter language: one parser, one AST, a builder, a binder and the reference evaluator."""

from vecstore.filters.ast import (
    And,
    Between,
    Compare,
    Contains,
    FieldRef,
    InList,
    IsNull,
    Node,
    Not,
    Or,
    field,
)
from vecstore.filters.bind import bind, field_types, to_filter
from vecstore.filters.evaluate import evaluate
from vecstore.filters.parser import parse_filter
from vecstore.filters.ranges import Interval, interval_on

__all__ = [
    "And",
    "Between",
    "Compare",
    "Contains",
    "FieldRef",
    "InList",
    "Interval",
    "IsNull",
    "Node",
    "Not",
    "Or",
    "bind",
    "evaluate",
    "field",
    "field_types",
    "interval_on",
    "parse_filter",
    "to_filter",
]
