"""A small, safe filter language compiled to a ``pyarrow.compute.Expression``.

Filters arrive from command lines and config files, so they are parsed by a hand-written
tokenizer and recursive-descent parser — never ``eval``, never Python's ``ast``: the only things
a filter can do are the ones in the grammar below, and anything else is a :class:`UsageError`
that points at the offending position. The compiled expression is pushed into the Parquet
reader (row-group statistics pruning, late materialisation).

Grammar (keywords are case-insensitive)::

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | predicate
    predicate  := operand ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
                | column "is" ["not"] "null"
                | column ["not"] "in" "(" literal ("," literal)* [","] ")"
    operand    := column | literal            (at least one side is a column)
    column     := identifier | `back quoted`  (`` `` `` inside back quotes is one back quote)
    literal    := ["-"] integer | ["-"] float | 'string' | "string" | true | false | null

Semantics are SQL's three-valued logic (a row passes when the filter is *true*; a comparison
with a null value is unknown, so neither ``x > 1`` nor ``not x > 1`` passes a null ``x``), the
same answers DuckDB gives. ``x == null`` means ``x is null`` and ``x != null`` means
``x is not null``. Floating-point NaN compares as IEEE 754 says (it is not null). With a schema,
literals are checked against column types and strings are converted for date/time columns
(``time_hour >= '2013-06-01'``; a time zone-aware column reads a literal without an offset in
its own zone).

>>> parse_filter("dep_delay > 30 and carrier in ('UA', 'AA')")
<pyarrow.compute.Expression ((dep_delay > 30) and is_in(carrier, {value_set=string:[
  "UA",
  "AA"
], null_matching_behavior=MATCH}))>
>>> sorted(filter_columns("not (`arr delay` is null or origin == 'JFK')"))
['arr delay', 'origin']
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from analytics.errors import UsageError

__all__ = ["filter_columns", "parse_filter"]

#: Deeper nesting than this is refused instead of exhausting the interpreter's stack.
MAX_DEPTH = 64
#: Longer filters are refused: a filter is a line typed by a person, not a data file.
MAX_LENGTH = 10_000

_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_HINTS = {
    "=": "use '==' to compare",
    "&": "use 'and'",
    "|": "use 'or'",
    "~": "use 'not'",
    "!": "use 'not' or '!='",
    ".": "attribute access is not allowed; back-quote column names that contain dots",
    "[": "indexing is not allowed",
    "]": "indexing is not allowed",
}


# --------------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # name, number, string, op, keyword, ( ) , - . eof
    value: Any
    pos: int


def _error(text: str, pos: int, message: str) -> UsageError:
    """A UsageError for ``text`` at ``pos``; the hint shows the position with a caret."""
    shown = text if len(text) <= 200 else text[:200] + "..."
    hint = f"  {shown}\n  {' ' * min(pos, len(shown))}^"
    return UsageError(f"invalid filter: {message} at position {pos}", hint=hint)


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"  # not str.isdigit: that accepts '²' and other digits int() refuses


def _is_name_start(ch: str) -> bool:
    return ch == "_" or ch.isalpha()


def _is_name_char(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def _tokenize(text: str) -> list[_Token]:
    """Split ``text`` into tokens; anything outside the grammar is an error with a position."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif _is_name_start(ch):
            start = i
            while i < n and _is_name_char(text[i]):
                i += 1
            word = text[start:i]
            if word.lower() in _KEYWORDS:
                tokens.append(_Token("keyword", word.lower(), start))
            else:
                tokens.append(_Token("name", word, start))
        elif ch == "`":
            start, i, chars = i, i + 1, []
            while True:
                if i >= n:
                    raise _error(text, start, "unterminated back-quoted name")
                if text[i] == "`":
                    if i + 1 < n and text[i + 1] == "`":
                        chars.append("`")
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            if not chars:
                raise _error(text, start, "empty back-quoted name")
            tokens.append(_Token("name", "".join(chars), start))
        elif ch in "'\"":
            start, i, chars = i, i + 1, []
            escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
            while True:
                if i >= n:
                    raise _error(text, start, "unterminated string")
                if text[i] == "\\" and i + 1 < n:
                    chars.append(escapes.get(text[i + 1], text[i + 1]))
                    i += 2
                    continue
                if text[i] == ch:
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            tokens.append(_Token("string", "".join(chars), start))
        elif _is_digit(ch) or (ch == "." and i + 1 < n and _is_digit(text[i + 1])):
            start = i
            while i < n and _is_digit(text[i]):
                i += 1
            is_float = False
            if i < n and text[i] == ".":
                is_float = True
                i += 1
                while i < n and _is_digit(text[i]):
                    i += 1
            if i < n and text[i] in "eE":
                j = i + 1
                if j < n and text[j] in "+-":
                    j += 1
                if j < n and _is_digit(text[j]):
                    is_float = True
                    i = j
                    while i < n and _is_digit(text[i]):
                        i += 1
            if i < n and (_is_name_char(text[i]) or text[i] == "."):
                raise _error(text, start, f"malformed number {text[start : i + 1]!r}")
            literal = text[start:i]
            tokens.append(_Token("number", float(literal) if is_float else int(literal), start))
        elif text.startswith(_COMPARISONS, i):
            op = next(op for op in _COMPARISONS if text.startswith(op, i))
            tokens.append(_Token("op", op, i))
            i += len(op)
        elif ch in "(),-.":
            tokens.append(_Token(ch, ch, i))
            i += 1
        else:
            hint = _HINTS.get(ch)
            raise _error(text, i, f"unexpected character {ch!r}" + (f" ({hint})" if hint else ""))
    tokens.append(_Token("eof", None, n))
    return tokens


# ------------------------------------------------------------------------------------ AST


@dataclass(frozen=True)
class _Column:
    name: str
    pos: int


@dataclass(frozen=True)
class _Literal:
    value: Any  # int, float, str, bool or None
    pos: int


@dataclass(frozen=True)
class _Compare:
    op: str
    column: _Column
    other: _Column | _Literal
    pos: int


@dataclass(frozen=True)
class _IsNull:
    column: _Column


@dataclass(frozen=True)
class _In:
    column: _Column
    values: tuple[_Literal, ...]


@dataclass(frozen=True)
class _Not:
    child: _Node


@dataclass(frozen=True)
class _BoolOp:
    op: str  # "and" | "or"
    children: tuple[_Node, ...]


_Node = _Compare | _IsNull | _In | _Not | _BoolOp


class _Parser:
    """Recursive descent over the token list; every method consumes one grammar rule."""

    def __init__(self, text: str) -> None:
        if len(text) > MAX_LENGTH:
            raise UsageError(f"invalid filter: longer than {MAX_LENGTH} characters")
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, value: Any = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (value is None or tok.value == value)

    def fail(self, message: str, tok: _Token | None = None) -> UsageError:
        return _error(self.text, (tok or self.tok).pos, message)

    def describe(self, tok: _Token) -> str:
        if tok.kind == "eof":
            return "end of filter"
        if tok.kind == "string":
            return f"string {tok.value!r}"
        if tok.kind == "name":
            return f"column {tok.value!r}"
        return repr(self.text[tok.pos : tok.pos + max(1, len(str(tok.value)))])

    def expect(self, kind: str, what: str) -> _Token:
        if not self.at(kind):
            raise self.fail(f"expected {what}, found {self.describe(self.tok)}")
        return self.advance()

    def parse(self) -> _Node:
        if self.at("eof"):
            raise self.fail("empty filter")
        node = self.or_expr()
        if not self.at("eof"):
            raise self.fail(f"unexpected {self.describe(self.tok)}")
        return node

    def or_expr(self) -> _Node:
        children = [self.and_expr()]
        while self.at("keyword", "or"):
            self.advance()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else _BoolOp("or", tuple(children))

    def and_expr(self) -> _Node:
        children = [self.not_expr()]
        while self.at("keyword", "and"):
            self.advance()
            children.append(self.not_expr())
        return children[0] if len(children) == 1 else _BoolOp("and", tuple(children))

    def not_expr(self) -> _Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
        try:
            if self.at("keyword", "not"):
                self.advance()
                return _Not(self.not_expr())
            if self.at("("):
                self.advance()
                node = self.or_expr()
                self.expect(")", "')'")
                return node
            return self.predicate()
        finally:
            self.depth -= 1

    def operand(self) -> _Column | _Literal:
        tok = self.tok
        if tok.kind == "name":
            self.advance()
            if self.at("("):
                raise self.fail("function calls are not allowed", tok)
            if self.at("."):
                raise self.fail("attribute access is not allowed", self.tok)
            return _Column(tok.value, tok.pos)
        return self.literal()

    def literal(self) -> _Literal:
        tok = self.tok
        if tok.kind == "-":
            self.advance()
            if not self.at("number"):
                raise self.fail("expected a number after '-'")
            return _Literal(-self.advance().value, tok.pos)
        if tok.kind in ("number", "string"):
            self.advance()
            return _Literal(tok.value, tok.pos)
        if tok.kind == "keyword" and tok.value in ("true", "false", "null"):
            self.advance()
            return _Literal({"true": True, "false": False, "null": None}[tok.value], tok.pos)
        raise self.fail(f"expected a column or a literal, found {self.describe(tok)}")

    def predicate(self) -> _Node:
        start = self.tok
        left = self.operand()
        tok = self.tok
        if tok.kind == "op":
            self.advance()
            right = self.operand()
            if isinstance(left, _Column):
                return _Compare(tok.value, left, right, tok.pos)
            if isinstance(right, _Column):
                return _Compare(_FLIP[tok.value], right, left, tok.pos)
            raise self.fail("a comparison needs a column on one side", start)
        if tok.kind == "keyword" and tok.value in ("is", "in", "not"):
            if not isinstance(left, _Column):
                raise self.fail(f"expected a column before '{tok.value}'", start)
            if tok.value == "is":
                self.advance()
                negated = self.at("keyword", "not")
                if negated:
                    self.advance()
                if not self.at("keyword", "null"):
                    raise self.fail("expected 'null' after 'is'")
                self.advance()
                node: _Node = _IsNull(left)
                return _Not(node) if negated else node
            negated = tok.value == "not"
            if negated:
                self.advance()
                if not self.at("keyword", "in"):
                    raise self.fail("expected 'in' after 'not'")
            self.advance()
            node = _In(left, self.literal_list())
            return _Not(node) if negated else node
        if isinstance(left, _Column):
            raise self.fail(f"expected a comparison after column {left.name!r}", tok)
        raise self.fail("expected a column", start)

    def literal_list(self) -> tuple[_Literal, ...]:
        self.expect("(", "'(' after 'in'")
        values: list[_Literal] = []
        while not self.at(")"):
            value = self.literal()
            if value.value is None:
                raise self.fail("null is not allowed in an 'in' list (use 'is null')", value)
            values.append(value)
            if not self.at(","):
                break
            self.advance()
        self.expect(")", "',' or ')'")
        if not values:
            raise self.fail("an 'in' list needs at least one value")
        return tuple(values)


def _parse(text: str) -> _Node:
    if not isinstance(text, str):
        raise UsageError(f"a filter must be a string, not {type(text).__name__}")
    return _Parser(text).parse()


# ------------------------------------------------------------------------------ compiling


def _walk_columns(node: _Node) -> list[_Column]:
    if isinstance(node, _Compare):
        return [node.column] + ([node.other] if isinstance(node.other, _Column) else [])
    if isinstance(node, _IsNull | _In):
        return [node.column]
    if isinstance(node, _Not):
        return _walk_columns(node.child)
    return [c for child in node.children for c in _walk_columns(child)]


def _kind(type_: pa.DataType) -> str:
    """The comparison family of an Arrow type: which literals it can be compared with."""
    if pa.types.is_dictionary(type_):
        return _kind(type_.value_type)
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "number"
    if (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_string_view(type_)
    ):
        return "string"
    if pa.types.is_boolean(type_):
        return "bool"
    if pa.types.is_temporal(type_):
        return "temporal"
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        return "binary"
    return "other"


def _literal_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


class _Compiler:
    """Turns the AST into an Arrow expression; with a schema, checks columns and literal types."""

    def __init__(self, text: str, schema: pa.Schema | None) -> None:
        self.text = text
        self.schema = schema

    def type_of(self, column: _Column) -> pa.DataType | None:
        if self.schema is None:
            return None
        index = self.schema.get_field_index(column.name)
        if index < 0:
            names = self.schema.names
            close = difflib.get_close_matches(column.name, names, n=3)
            message = f"unknown column {column.name!r}"
            if close:
                message += f" (did you mean {', '.join(map(repr, close))}?)"
            error = _error(self.text, column.pos, message)
            shown = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
            error.hint = f"{error.hint}\ncolumns: {shown}"
            raise error
        return self.schema.field(index).type

    def scalar(self, column: _Column, literal: _Literal) -> pa.Scalar:
        """``literal`` as an Arrow scalar comparable with ``column``."""
        type_ = self.type_of(column)
        value = literal.value
        if type_ is None:
            try:
                return pa.scalar(value)
            except (OverflowError, pa.ArrowException):
                raise _error(self.text, literal.pos, f"literal {value!r} is out of range") from None
        column_kind, value_kind = _kind(type_), _literal_kind(value)
        shown = f"{value!r}" if not isinstance(value, bool) else str(value).lower()
        mismatch = _error(
            self.text, literal.pos, f"cannot compare column {column.name!r} ({type_}) with {shown}"
        )
        if column_kind == "temporal" and value_kind == "string":
            return self.temporal(type_, literal, mismatch)
        if column_kind == "binary" and value_kind == "string":
            return pa.scalar(value.encode(), type_)
        if column_kind != value_kind:
            raise mismatch
        if value_kind == "string":
            value_type = type_.value_type if pa.types.is_dictionary(type_) else type_
            return pa.scalar(value, value_type)
        try:
            return pa.scalar(value)
        except (OverflowError, pa.ArrowException):
            raise _error(self.text, literal.pos, f"literal {value!r} is out of range") from None

    def temporal(self, type_: pa.DataType, literal: _Literal, mismatch: UsageError) -> pa.Scalar:
        text = pa.scalar(literal.value, pa.string())
        try:
            return text.cast(type_)
        except pa.ArrowException:
            pass
        try:  # no offset in the literal: it is local time in the column's zone
            if pa.types.is_timestamp(type_) and type_.tz is not None:
                naive = text.cast(pa.timestamp(type_.unit))
                return pc.assume_timezone(naive, type_.tz)
        except pa.ArrowException:
            pass
        raise mismatch

    def column_pair(self, node: _Compare) -> None:
        assert isinstance(node.other, _Column)
        left, right = self.type_of(node.column), self.type_of(node.other)
        if left is not None and right is not None and _kind(left) != _kind(right):
            raise _error(
                self.text,
                node.pos,
                f"cannot compare column {node.column.name!r} ({left}) "
                f"with column {node.other.name!r} ({right})",
            )

    def compile(self, node: _Node, negate: bool = False) -> pc.Expression:
        """The expression that is true exactly where SQL's ``node`` (or ``NOT node``) is true.

        Negation is pushed to the leaves (De Morgan) because Arrow's ``is_in`` answers
        ``false`` rather than ``null`` for a null input: ``not x in (...)`` must not pass nulls.
        """
        if isinstance(node, _Not):
            return self.compile(node.child, not negate)
        if isinstance(node, _BoolOp):
            parts = [self.compile(child, negate) for child in node.children]
            use_and = (node.op == "and") != negate
            result = parts[0]
            for part in parts[1:]:
                result = (result & part) if use_and else (result | part)
            return result
        if isinstance(node, _IsNull):
            self.type_of(node.column)
            field = pc.field(node.column.name)
            return field.is_valid() if negate else field.is_null()
        if isinstance(node, _In):
            field = pc.field(node.column.name)
            values = self.value_set(node)
            return (~field.isin(values) & field.is_valid()) if negate else field.isin(values)
        field = pc.field(node.column.name)
        if isinstance(node.other, _Column):
            self.column_pair(node)
            other: Any = pc.field(node.other.name)
        elif node.other.value is None:
            self.type_of(node.column)
            if node.op not in ("==", "!="):
                raise _error(self.text, node.pos, f"cannot use '{node.op}' with null")
            is_null = (node.op == "==") != negate
            return field.is_null() if is_null else field.is_valid()
        else:
            other = self.scalar(node.column, node.other)
        expression = {
            "==": field.__eq__,
            "!=": field.__ne__,
            "<": field.__lt__,
            "<=": field.__le__,
            ">": field.__gt__,
            ">=": field.__ge__,
        }[node.op](other)
        # Arrow comparisons give null for null inputs, so inverting keeps SQL's answer.
        return ~expression if negate else expression

    def value_set(self, node: _In) -> pa.Array:
        scalars = [self.scalar(node.column, value) for value in node.values]
        type_ = self.type_of(node.column)
        if type_ is not None and _kind(type_) == "number":
            if pa.types.is_integer(type_):
                # A fractional value never equals an integer; integral floats are integers.
                values = [s.as_py() for s in scalars]
                ints = [int(v) for v in values if float(v).is_integer()]
                return pa.array(ints, pa.int64())
            return pa.array([s.as_py() for s in scalars], pa.float64())
        if type_ is None:
            values = [s.as_py() for s in scalars]
            kinds = {_literal_kind(v) for v in values}
            if len(kinds) > 1:
                raise _error(self.text, node.values[0].pos, "mixed types in an 'in' list")
            try:
                return pa.array(values)
            except (OverflowError, pa.ArrowException):
                raise _error(self.text, node.values[0].pos, "literal out of range") from None
        return pa.array([s.as_py() for s in scalars], scalars[0].type)


def parse_filter(text: str, schema: pa.Schema | None = None) -> pc.Expression:
    """Parse ``text`` into an Arrow expression; with ``schema``, also check columns and types.

    Raises :class:`UsageError` (with the position) for anything outside the grammar, unknown
    columns (listing close matches) and literals that cannot be compared with their column.

    >>> parse_filter("origin == 'JFK' and not distance < 100")
    <pyarrow.compute.Expression ((origin == "JFK") and invert((distance < 100)))>
    """
    return _Compiler(text, schema).compile(_parse(text))


def filter_columns(text: str) -> set[str]:
    """The column names ``text`` refers to: a reader must read them even if not projected.

    >>> sorted(filter_columns("a > 1 or (b is null and `c d` in ('x'))"))
    ['a', 'b', 'c d']
    """
    return {column.name for column in _walk_columns(_parse(text))}
