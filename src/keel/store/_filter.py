r"""Parse run-search filters and orderings into a small typed AST (pure: no I/O, no engines).

The language is a superset of MLflow's ``search_runs`` filter; keywords, entity prefixes and
attribute names are case-insensitive, keys are not::

    metrics.auc > 0.8 and (params.model = 'rf' or tags.`team name` ILIKE '%vision%')
    status IN ('finished', 'killed') and start_time >= '2024-05-01T00:00:00Z'
    not metrics.loss IS NULL

Grammar (NOT binds tighter than AND, AND tighter than OR)::

    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | "(" or_expr ")" | comparison
    comparison := name op value | name ["NOT"] "IN" "(" value ("," value)* ")"
                | name "IS" ["NOT"] "NULL"
    name       := prefix "." key | attribute
    key        := [A-Za-z0-9_\-./]+ | `quoted` | "quoted"       (the prefix is the first segment)

Values in the AST: metric values are ``float`` (``NaN`` is :data:`math.nan` itself); a param
compared with an unquoted number gets a ``float`` (compared numerically with params whose text
is a number), with a quoted value a ``str`` (compared as text); tags and string attributes are
``str`` (``true``/``false`` become the strings ``'true'``/``'false'``,
since params and tags are stored as strings, so the AST has no booleans); ``status`` is
upper-cased; ``start_time``/``end_time`` are ``int`` epoch milliseconds (ISO-8601 strings are
converted, naive times taken as UTC). In quoted text a doubled quote, or a backslash before a
backslash, a quote or a backtick, is an escape; any other backslash is kept as written, so LIKE
patterns can escape wildcards as ``\%`` and ``\_`` (compile them with ``escape='\\'``).
``==`` and ``<>`` are normalised to ``=`` and ``!=``; ``user_id`` is an alias of ``user``.
Text is at most 10,000 characters with no control characters (tabs and line breaks may separate
tokens), nesting at most 50 levels, at most 200 comparisons, IN lists 1 to 1,000 values.

Errors are :class:`~keel.errors.FilterSyntaxError` with ``position`` (0-based offset),
``column`` (1-based), ``token`` (the offending text, ``None`` at the end) and ``expected``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from keel.errors import FilterSyntaxError

__all__ = [
    "ATTRIBUTES",
    "And",
    "Comparison",
    "Entity",
    "Expr",
    "Not",
    "Or",
    "OrderKey",
    "parse_filter",
    "parse_order_by",
]

Entity = Literal["metric", "param", "tag", "attribute"]
_Scalar = str | float | int


@dataclass(frozen=True, slots=True)
class Comparison:
    """``<entity>.<key> <op> <value>``; ``value`` is a tuple for IN and ``None`` for IS NULL."""

    entity: Entity
    key: str
    op: str
    value: _Scalar | tuple[_Scalar, ...] | None


@dataclass(frozen=True, slots=True)
class And:
    """All items hold (at least two items, none of them an ``And``)."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any item holds (at least two items, none of them an ``Or``)."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The item does not hold."""

    item: Expr


Expr = Comparison | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One key of a run search's ordering."""

    entity: Entity
    key: str
    descending: bool


ATTRIBUTES = frozenset(
    {"status", "name", "run_id", "experiment_id", "user", "start_time", "end_time"}
)
_ALIASES = {
    "run_name": "name",
    "run name": "name",  # MLflow's UI spelling: attributes.`Run name`
    "created": "start_time",  # MLflow's alias of start_time
    "id": "run_id",
    "user_id": "user",
} | {a: a for a in ATTRIBUTES}
_PREFIXES: dict[str, Entity] = {
    **dict.fromkeys(("metrics", "metric"), "metric"),
    **dict.fromkeys(("params", "param", "parameters"), "param"),
    **dict.fromkeys(("tags", "tag"), "tag"),
    **dict.fromkeys(("attributes", "attribute", "attr", "run"), "attribute"),
}
_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
_MAX_TEXT, _MAX_DEPTH, _MAX_COMPARISONS = 10_000, 50, 200  # characters, levels, comparisons
_MAX_IN, _MAX_ORDER, _MAX_KEY = 1000, 10, 250  # IN values, order keys, key characters
_INT64 = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ORDERING_OPS = frozenset({"<", "<=", ">", ">="})
_LIKE_OPS = frozenset({"LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"})
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "like", "ilike", "null", "asc", "desc"})
_LITERAL_WORDS = frozenset({"true", "false", "nan", "infinity", "null"})
_OPERATORS = "a comparison operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS)"
_EXAMPLES = {
    "filter": "metrics.auc > 0.8 and params.model = 'rf'",
    "ordering": "metrics.auc DESC, start_time",
}
_IN_EXAMPLE = "params.model IN ('rf', 'xgb')"
_STATUS_EXAMPLE = "status IN ('FINISHED', 'FAILED')"
_TIME_EXAMPLE = "start_time >= '2024-05-01T00:00:00Z' and end_time < 1714521600000"

_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_BLANKS = str.maketrans("\t\r\n", "   ")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./]*")
_NUMBER = re.compile(
    r"([+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|(?i:infinity|nan)))([\w.]*)"
)
_INTEGER = re.compile(r"[+-]?\d+")
_OP = re.compile(r"==|!=|<>|<=|>=|=|<|>")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word, name (prefix.`quoted key`), string, number, op, "(", ")", ",", char, end
    pos: int
    end: int
    value: str = ""  # the word, unescaped string or key, number text, or normalised operator
    prefix: str = ""  # the entity prefix of a "name" token


def _excerpt(text: str, pos: int, width: int = 72) -> tuple[str, int]:
    start = max(0, min(pos - width // 2, len(text) - width))
    shown = _BAD_CHAR.sub("\ufffd", text[start : start + width].translate(_BLANKS))
    caret = pos - start
    if start > 0:
        shown, caret = "…" + shown, caret + 1
    return shown + ("…" if start + width < len(text) else ""), caret


def _is_number(tok: _Token) -> bool:
    return tok.kind == "number" or (tok.kind == "word" and tok.value.lower() in ("nan", "infinity"))


def _join(kind: type[And] | type[Or], items: list[Expr]) -> Expr:
    if len(items) == 1:
        return items[0]
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


class _Parser:
    """A hand-written lexer (one token at a time, on demand) and recursive-descent parser."""

    def __init__(self, text: object, what: str) -> None:
        if not isinstance(text, str):
            msg = f"Invalid {what}: expected a string, got {type(text).__name__}."
            raise FilterSyntaxError(msg, expected="a string")
        self.text, self.what, self.comparisons = text, what, 0
        if len(text) > _MAX_TEXT:
            at = _Token("char", _MAX_TEXT, _MAX_TEXT + 1)
            raise self.error(at, f"the {what} is {len(text):,} characters; the limit is 10,000")
        if bad := _BAD_CHAR.search(text):
            at = _Token("char", bad.start(), bad.end())
            raise self.error(at, f"unsupported control character U+{ord(bad[0]):04X}")
        self.tok = self.lex(0)

    # -- errors -------------------------------------------------------------------------------
    def error(
        self, tok: _Token, message: str, *, expected: str | None = None, example: str = ""
    ) -> FilterSyntaxError:
        shown, caret = _excerpt(self.text, tok.pos)
        return FilterSyntaxError(
            f"Invalid {self.what} at column {tok.pos + 1}: {message}.\n  {shown}\n"
            f"  {' ' * caret}^\nExample: {example or _EXAMPLES[self.what]}",
            position=tok.pos,
            column=tok.pos + 1,
            token=None if tok.kind == "end" else self.text[tok.pos : tok.end][:100],
            expected=expected,
        )

    def unexpected(
        self, expected: str, tok: _Token | None = None, example: str = ""
    ) -> FilterSyntaxError:
        tok = tok or self.tok
        found = f"the end of the {self.what}" if tok.kind == "end" else self.shown(tok)
        message = f"expected {expected}, found {found}"
        return self.error(tok, message, expected=expected, example=example)

    def shown(self, tok: _Token) -> str:
        src = self.text[tok.pos : tok.end]
        src = src if len(src) <= 40 else src[:37] + "..."
        return src if tok.kind == "string" else f"'{src}'"

    # -- lexer --------------------------------------------------------------------------------
    def lex(self, pos: int) -> _Token:
        text = self.text
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos == len(text):
            return _Token("end", pos, pos)
        char = text[pos]
        if char in "(),":
            return _Token(char, pos, pos + 1, char)
        if m := _OP.match(text, pos):
            return _Token("op", pos, m.end(), {"==": "=", "<>": "!="}.get(m[0], m[0]))
        if char in "'\"":
            value, end = self.quoted(pos)
            return _Token("string", pos, end, value)
        if m := _WORD.match(text, pos):
            if m[0].endswith(".") and text[m.end() : m.end() + 1] in ("`", '"'):
                key, end = self.quoted(m.end())
                return _Token("name", pos, end, key, prefix=m[0][:-1])
            return _Token("word", pos, m.end(), m[0])
        if m := _NUMBER.match(text, pos):
            if m[2]:  # trailing letters, digits or dots: 1abc, 1.2.3, 0x10
                junk = _Token("number", pos, m.end())
                raise self.unexpected("a number such as 0.8, -1e-3, NaN or Infinity", junk)
            return _Token("number", pos, m.end(), m[1])
        if char == "`":
            message = "a backtick-quoted key needs an entity prefix, e.g. metrics.`val loss`"
            raise self.error(_Token("char", pos, pos + 1), message)
        raise self.error(_Token("char", pos, pos + 1), f"unexpected character '{char}'")

    def quoted(self, start: int) -> tuple[str, int]:
        text, quote, i = self.text, self.text[start], start + 1
        out: list[str] = []
        while i < len(text):
            char = text[i]
            if char == quote and not text.startswith(quote, i + 1):
                return "".join(out), i + 1
            if char in "\t\r\n":
                message = "quoted text cannot hold tabs or line breaks"
                raise self.error(_Token("char", i, i + 1), message)
            escaped = char in "\\" + quote and text[i + 1 : i + 2] in ("\\", "'", '"', "`")
            out.append(text[i + 1] if escaped else char)
            i += 2 if escaped else 1
        message = f"unterminated quoted text; add the closing {quote}"
        raise self.error(_Token("char", start, start + 1), message)

    # -- parser -------------------------------------------------------------------------------
    def advance(self) -> _Token:
        tok, self.tok = self.tok, self.lex(self.tok.end)
        return tok

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.value.lower() in words

    def parse_or(self, depth: int) -> Expr:
        items = [self.parse_and(depth)]
        while self.is_word("or"):
            self.advance()
            items.append(self.parse_and(depth))
        return _join(Or, items)

    def parse_and(self, depth: int) -> Expr:
        items = [self.parse_not(depth)]
        while self.is_word("and"):
            self.advance()
            items.append(self.parse_not(depth))
        return _join(And, items)

    def parse_not(self, depth: int) -> Expr:
        tok = self.tok
        if not (tok.kind == "(" or self.is_word("not")):
            return self.parse_comparison()
        if depth == _MAX_DEPTH:
            message = f"parentheses and NOT nest deeper than {_MAX_DEPTH} levels; simplify it"
            raise self.error(tok, message)
        self.advance()
        if tok.kind != "(":
            return Not(self.parse_not(depth + 1))
        expr = self.parse_or(depth + 1)
        if self.tok.kind != ")":
            raise self.unexpected(f"AND, OR or ')' to close the '(' at column {tok.pos + 1}")
        self.advance()
        return expr

    def parse_name(self) -> tuple[Entity, str]:
        tok = self.tok
        if tok.kind == "name":
            prefix, key = tok.prefix, tok.value
        elif tok.kind == "word" and tok.value.lower() not in _KEYWORDS:
            prefix, dot, key = tok.value.partition(".")
            prefix, key = (prefix, key) if dot else ("attributes", tok.value)
        elif self.what == "filter":
            raise self.unexpected("a comparison such as metrics.auc > 0.8")
        else:
            raise self.unexpected("an order key such as metrics.auc DESC")
        entity = _PREFIXES.get(prefix.lower())
        if entity is None:
            message = f"unknown entity '{prefix}'; use metrics, params, tags or attributes"
            raise self.error(tok, message)
        if not key or len(key) > _MAX_KEY:
            raise self.error(tok, f"expected a key of 1 to {_MAX_KEY} characters after '{prefix}.'")
        if entity == "attribute":
            if key.lower() not in _ALIASES:
                bare = tok.kind == "word" and "." not in tok.value
                hint = f"write metrics.{key} or params.{key}, or " if bare else ""
                names = ", ".join(sorted(ATTRIBUTES))
                raise self.error(tok, f"unknown attribute '{key}'; {hint}use one of {names}")
            key = _ALIASES[key.lower()]
        self.advance()
        return entity, key

    def parse_comparison(self) -> Comparison:
        start = self.tok
        self.comparisons += 1
        if self.comparisons > _MAX_COMPARISONS:
            message = f"more than {_MAX_COMPARISONS} comparisons; narrow or split the search"
            raise self.error(start, message)
        entity, key = self.parse_name()
        label = self.text[start.pos : start.end]
        kind = {"metric": "number", "param": "param"}.get(entity, "string")
        if entity == "attribute" and key in ("status", "start_time", "end_time"):
            kind = "status" if key == "status" else "time"
        op_tok = self.tok
        op = self.parse_operator()
        if op in _LIKE_OPS and kind in ("number", "time"):
            message = f"{op} needs a string, but {label} is a {kind}; use =, <, >, IN or IS"
            raise self.error(op_tok, message)
        if op in _ORDERING_OPS and kind == "status":
            message = f"status cannot be compared with {op}; use =, !=, IN or LIKE"
            raise self.error(op_tok, message, example=_STATUS_EXAMPLE)
        if op.startswith("IS"):
            return Comparison(entity, key, op, None)
        if op.endswith("IN"):
            return Comparison(entity, key, op, self.parse_list(kind, op, label))
        value_tok = self.tok
        value = self.coerce(kind, op, label, self.parse_value())
        if op in _ORDERING_OPS and isinstance(value, float) and math.isnan(value):
            message = (
                f"NaN is neither less nor greater than any number, so {op} NaN would match "
                f"nothing or everything; use {label} = NaN or {label} != NaN"
            )
            raise self.error(value_tok, message, example="metrics.loss != NaN")
        return Comparison(entity, key, op, value)

    def parse_operator(self) -> str:
        tok = self.advance()
        word = tok.value.lower() if tok.kind == "word" else ""
        if tok.kind == "op" or word in ("like", "ilike", "in"):
            return tok.value.upper()
        if word == "not":
            if not self.is_word("like", "ilike", "in"):
                raise self.unexpected("LIKE, ILIKE or IN after NOT")
            return "NOT " + self.advance().value.upper()
        if word != "is":
            raise self.unexpected(_OPERATORS, tok)
        negated = self.is_word("not")
        if negated:
            self.advance()
        if not self.is_word("null"):
            raise self.unexpected("NULL after IS NOT" if negated else "NULL or NOT NULL after IS")
        self.advance()
        return "IS NOT NULL" if negated else "IS NULL"

    def parse_list(self, kind: str, op: str, label: str) -> tuple[_Scalar, ...]:
        if self.tok.kind != "(":
            raise self.unexpected(f"'(' to start the {op} list", example=_IN_EXAMPLE)
        self.advance()
        if self.tok.kind == ")":
            raise self.error(self.tok, f"{op} needs at least one value", example=_IN_EXAMPLE)
        items: list[_Scalar] = []
        first = self.tok
        while True:
            tok = self.parse_value()
            if len(items) == _MAX_IN:
                raise self.error(tok, f"an {op} list holds at most {_MAX_IN:,} values")
            if _is_number(tok) != _is_number(first):
                message = f"{op} lists must be homogeneous, but this one mixes strings and numbers"
                raise self.error(tok, message, example=_IN_EXAMPLE)
            items.append(self.coerce(kind, op, label, tok))
            if self.tok.kind == ")":
                self.advance()
                return tuple(items)
            if self.tok.kind != ",":
                raise self.unexpected(f"',' or ')' in the {op} list", example=_IN_EXAMPLE)
            self.advance()

    def parse_value(self) -> _Token:
        tok = self.tok
        if tok.kind in ("string", "number") or (
            tok.kind == "word" and tok.value.lower() in _LITERAL_WORDS
        ):
            return self.advance()
        raise self.unexpected("a value: a quoted string, a number, true, false, NaN or Infinity")

    def coerce(self, kind: str, op: str, label: str, tok: _Token) -> _Scalar:
        word = tok.value.lower() if tok.kind == "word" else ""
        if word == "null":
            message = "use IS NULL or IS NOT NULL to test for a missing value"
            raise self.error(tok, message, example="metrics.auc IS NOT NULL")
        if kind == "number":
            if not _is_number(tok):
                hint = "; remove the quotes" if tok.kind == "string" else ""
                message = f"metrics compare only with numbers, found {self.shown(tok)}{hint}"
                raise self.error(tok, message)
            return float(self.number(tok))
        if kind == "time":
            if tok.kind == "number" and _INTEGER.fullmatch(tok.value):
                return self.number(tok)
            try:
                moment = datetime.fromisoformat(tok.value if tok.kind == "string" else "?")
                moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
                return (moment - _EPOCH) // timedelta(milliseconds=1)
            except (ValueError, OverflowError):
                message = (
                    f"{label} takes epoch milliseconds (an integer) or a quoted ISO-8601 time, "
                    f"found {self.shown(tok)}"
                )
                raise self.error(tok, message, example=_TIME_EXAMPLE) from None
        if kind == "param" and _is_number(tok):
            if op in _LIKE_OPS:
                message = f"{op} needs a quoted pattern, found {self.shown(tok)}"
                raise self.error(tok, message)
            return float(self.number(tok))
        if _is_number(tok):
            message = f"{label} is a string, so quote the value: '{self.text[tok.pos : tok.end]}'"
            raise self.error(tok, message)
        if kind == "status" and op not in _LIKE_OPS:
            if tok.value.upper() not in _STATUSES:
                message = f"status must be one of {', '.join(_STATUSES)}, found {self.shown(tok)}"
                raise self.error(tok, message, example=_STATUS_EXAMPLE)
            return tok.value.upper()
        return tok.value if tok.kind == "string" else word

    def number(self, tok: _Token) -> float | int:
        text = tok.value
        if _INTEGER.fullmatch(text):
            digits = text.lstrip("+-").lstrip("0") or "0"
            if len(digits) > 19 or int(digits) > _INT64:
                raise self.error(tok, f"the integer {self.shown(tok)} is out of the 64-bit range")
            return -int(digits) if text.startswith("-") else int(digits)
        if text.lower().lstrip("+-") == "nan":
            return math.nan
        value = float(text)
        if math.isinf(value) and text.lower().lstrip("+-") != "infinity":
            raise self.error(tok, f"{self.shown(tok)} is too large; write Infinity if you mean it")
        return value


def parse_filter(text: str | None) -> Expr | None:
    """Parse a run-search filter into an AST; ``None`` or blank text means "no filter".

    Raises:
        FilterSyntaxError: the text does not parse, or breaks a type rule or a limit; the
            message shows the column, what was expected and a caret under the offending token.
    """
    if text is None:
        return None
    parser = _Parser(text, "filter")
    if parser.tok.kind == "end":
        return None
    expr = parser.parse_or(0)
    if parser.tok.kind != "end":
        raise parser.unexpected("AND, OR or the end of the filter")
    return expr


def parse_order_by(items: str | Sequence[str] | None) -> tuple[OrderKey, ...]:
    """Parse ordering keys such as ``"metrics.auc DESC, start_time"``, as one string or a list.

    Each key is a name as in filters, then optionally ``ASC`` (the default) or ``DESC``; ``None``
    or a blank string means no ordering. At most 10 keys in all.

    Raises:
        FilterSyntaxError: a key with an unknown entity or attribute, or a bad direction.
    """
    if items is None:
        return ()
    keys: list[OrderKey] = []
    for text in [items] if isinstance(items, str) else items:
        parser = _Parser(text, "ordering")
        if isinstance(items, str) and parser.tok.kind == "end":
            return ()
        while True:
            start = parser.tok
            entity, key = parser.parse_name()
            descending = parser.is_word("desc")
            if parser.is_word("asc", "desc"):
                parser.advance()
            if len(keys) == _MAX_ORDER:
                raise parser.error(start, f"at most {_MAX_ORDER} order keys are allowed")
            keys.append(OrderKey(entity, key, descending))
            if parser.tok.kind == "end":
                break
            if parser.tok.kind != ",":
                raise parser.unexpected("ASC, DESC, ',' or the end of the ordering")
            parser.advance()
    return tuple(keys)
