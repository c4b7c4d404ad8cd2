"""The one parser of the filter language: text -> AST.

Grammar (keywords are case-insensitive; ``not`` binds tighter than ``and``, ``and`` than ``or``)::

    expr      := and_expr ("or" and_expr)*
    and_expr  := not_expr ("and" not_expr)*
    not_expr  := "not" not_expr | "(" expr ")" | predicate
    predicate := field op literal | field "between" literal "and" literal
               | field ["not"] "in" list | field "contains" literal
               | field "contains" ("any" | "all") list | field "is" ["not"] "null"
               | field                       -- a bool field alone means field = true
    list      := "(" literal ("," literal)* ")"
    literal   := integer | float | 'string' ('' escapes a quote) | true | false
    field     := identifier | `quoted identifier`
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vecstore.errors import FilterSyntaxError
from vecstore.filters.ast import (
    KEYWORDS,
    And,
    Between,
    Compare,
    Contains,
    InList,
    IsNull,
    Node,
    Not,
    Or,
    Value,
)

MAX_FILTER_LENGTH = 1 << 20
MAX_NESTING = 200

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<badstring>'(?:[^']|'')*$)
  | (?P<quoted>`(?:[^`]|``)+`)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><>|!=|<=|>=|==|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, ident, keyword, op, punct, end
    text: str
    value: object
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise FilterSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = match.lastgroup
        raw = match.group()
        if kind == "badstring":
            raise FilterSyntaxError("string is not closed; end it with a single quote", text, pos)
        if kind == "number":
            is_float = any(c in raw for c in ".eE")
            value: object = float(raw) if is_float else int(raw)
            tokens.append(Token("number", raw, value, pos))
        elif kind == "string":
            tokens.append(Token("string", raw, raw[1:-1].replace("''", "'"), pos))
        elif kind == "quoted":
            tokens.append(Token("ident", raw, raw[1:-1].replace("``", "`"), pos))
        elif kind == "ident":
            lowered = raw.lower()
            if lowered in KEYWORDS:
                tokens.append(Token("keyword", raw, lowered, pos))
            else:
                tokens.append(Token("ident", raw, raw, pos))
        elif kind == "op":
            op = {"==": "=", "<>": "!="}.get(raw, raw)
            tokens.append(Token("op", raw, op, pos))
        elif kind == "punct":
            tokens.append(Token("punct", raw, raw, pos))
        pos = match.end()
    tokens.append(Token("end", "", None, len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # -- helpers --------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, expected: str, tok: Token | None = None) -> FilterSyntaxError:
        tok = tok or self.tok
        found = "the end of the filter" if tok.kind == "end" else repr(tok.text)
        return FilterSyntaxError(f"expected {expected}, found {found}", self.text, tok.pos)

    def keyword(self, word: str) -> bool:
        if self.tok.kind == "keyword" and self.tok.value == word:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str, expected: str) -> None:
        if not self.keyword(word):
            raise self.fail(expected)

    def punct(self, char: str) -> bool:
        if self.tok.kind == "punct" and self.tok.value == char:
            self.i += 1
            return True
        return False

    # -- grammar --------------------------------------------------------------------------
    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.fail("a filter expression such as year >= 2000")
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.fail("'and', 'or' or the end of the filter")
        return node

    def or_expr(self) -> Node:
        nodes = [self.and_expr()]
        while self.keyword("or"):
            nodes.append(self.and_expr())
        return Or.of(*nodes)

    def and_expr(self) -> Node:
        nodes = [self.not_expr()]
        while self.keyword("and"):
            nodes.append(self.not_expr())
        return And.of(*nodes)

    def not_expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise FilterSyntaxError(f"filter nests deeper than {MAX_NESTING} levels", self.text, self.tok.pos)
        try:
            if self.keyword("not"):
                return Not(self.not_expr())
            if self.punct("("):
                node = self.or_expr()
                if not self.punct(")"):
                    raise self.fail("')' to close the parenthesis")
                return node
            return self.predicate()
        finally:
            self.depth -= 1

    def predicate(self) -> Node:
        tok = self.tok
        if tok.kind != "ident":
            if tok.kind == "keyword" and tok.value not in ("true", "false", "null"):
                raise self.fail("a field name (quote a field named like a keyword with backticks: `all`)")
            raise self.fail("a field name")
        name = str(tok.value)
        self.i += 1
        nxt = self.tok
        if nxt.kind == "op":
            self.i += 1
            return Compare(name, str(nxt.value), self.literal())
        if self.keyword("between"):
            low = self.literal()
            self.expect_keyword("and", "'and' between the two bounds of 'between'")
            return Between(name, low, self.literal())
        if self.keyword("in"):
            return InList(name, self.value_list())
        if nxt.kind == "keyword" and nxt.value == "not":
            after = self.tokens[self.i + 1]
            if after.kind == "keyword" and after.value == "in":
                self.i += 2
                return InList(name, self.value_list(), negated=True)
            raise self.fail("'in' after 'not' (field not in (...))", after)
        if self.keyword("contains"):
            if self.keyword("any"):
                return Contains(name, "any", self.value_list())
            if self.keyword("all"):
                return Contains(name, "all", self.value_list())
            return Contains(name, "one", (self.literal(),))
        if self.keyword("is"):
            negated = self.keyword("not")
            self.expect_keyword("null", "'null' after 'is' / 'is not'")
            return IsNull(name, negated)
        # A field on its own: a bool attribute, true when set (checked against the schema in bind).
        return Compare(name, "=", True)

    def literal(self) -> Value:
        tok = self.tok
        if tok.kind in ("number", "string"):
            self.i += 1
            return tok.value  # type: ignore[return-value]
        if tok.kind == "keyword" and tok.value in ("true", "false"):
            self.i += 1
            return tok.value == "true"
        if tok.kind == "keyword" and tok.value == "null":
            raise self.fail("a value; to test for missing values write 'field is null'")
        raise self.fail("a value (a number, a 'quoted string', true or false)")

    def value_list(self) -> tuple[Value, ...]:
        if not self.punct("("):
            raise self.fail("'(' to start a list of values")
        values = [self.literal()]
        while self.punct(","):
            values.append(self.literal())
        if not self.punct(")"):
            raise self.fail("',' or ')' in the list of values")
        return tuple(values)


def parse_filter(text: str) -> Node:
    """Parse a filter string into its AST; raises FilterSyntaxError naming the position."""
    if not isinstance(text, str):
        raise FilterSyntaxError(f"a filter must be a string, got {type(text).__name__}", "", 0)
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(f"filter is longer than {MAX_FILTER_LENGTH} characters", text[:40], 0)
    return _Parser(text).parse()
