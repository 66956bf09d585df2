"""MLflow's filters and orderings for experiments, registered models, versions and logged models.

These searches take comparisons joined by AND (no OR, no parentheses), as an MLflow server
does: an attribute (``name``, ``attributes.creation_time``), a tag (``tags.team``,
``tag.`mlflow.prompt.is_prompt```) and, for logged models, ``params.x`` and ``metrics.y``; an
operator; a quoted string, a number or a ``('a', 'b')`` list. Each search declares which
attributes it has and which take numbers or lists (a :class:`Grammar`). A tag, param or metric
an object lacks matches no comparison, ``!=`` included (MLflow joins on the tag rows);
``IS NULL`` asks for the missing ones where MLflow allows it. Run search has its own, richer
language (``keel.store.parse_filter``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keel.server.mlflow._wire import MlflowError

__all__ = ["Clause", "Grammar", "matches", "parse_filter", "parse_order_by", "sort_key"]

_PREFIXES = {
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "tag": "tag",
    "tags": "tag",
    "param": "param",
    "params": "param",
    "parameters": "param",
    "metric": "metric",
    "metrics": "metric",
}
_STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
_NUMBER_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})
MAX_FILTER = 10_000  # characters, as for run filters
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<dq>\"(?:[^\"]|\"\")*\")|(?P<bq>`[^`]*`)"
    r"|(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w.])"
    r"|(?P<op><=|>=|!=|<>|==|=|<|>)|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w.\-/:]*))"
)


@dataclass(frozen=True, slots=True)
class Clause:
    """``<kind>.<key> <op> <value>``: a tuple for IN lists, ``None`` for IS NULL."""

    kind: str
    key: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class Grammar:
    """What one search accepts: its attributes, and the entities besides attributes."""

    what: str
    strings: frozenset[str]
    numbers: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()
    entities: frozenset[str] = frozenset({"tag"})
    null_tags: bool = False
    example: str = "name LIKE 'churn%' AND tags.team = 'ml'"


def _error(grammar: Grammar, text: str, why: str) -> MlflowError:
    return MlflowError(
        f"Invalid filter '{text[:200]}' for {grammar.what}: {why}. Write comparisons joined "
        f"with AND, e.g. {grammar.example}."
    )


def _tokens(text: str, grammar: Grammar) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    at = 0
    text = text.rstrip()
    while at < len(text):
        found = _TOKEN.match(text, at)
        if found is None or found.end() == at:
            raise _error(grammar, text, f"unexpected text at column {at + 1}")
        kind = found.lastgroup
        assert kind is not None
        out.append((kind, found[kind]))
        at = found.end()
    return out


class _Reader:
    def __init__(self, text: str, grammar: Grammar) -> None:
        self.text, self.grammar = text, grammar
        self.items = _tokens(text, grammar)
        self.at = 0

    def peek(self) -> tuple[str, str]:
        return self.items[self.at] if self.at < len(self.items) else ("end", "")

    def take(self) -> tuple[str, str]:
        item = self.peek()
        self.at += 1
        return item

    def word(self, *words: str) -> bool:
        kind, value = self.peek()
        return kind == "word" and value.upper() in words

    def fail(self, why: str) -> MlflowError:
        return _error(self.grammar, self.text, why)

    def name(self) -> tuple[str, str]:
        kind, value = self.take()
        if kind == "bq":
            return "attribute", value[1:-1]
        if kind != "word":
            raise self.fail(f"expected a name such as name or tags.key, found {value or 'the end'}")
        if value.endswith(".") and self.peek()[0] in ("bq", "dq"):
            prefix, key = value[:-1], _unquote(self.take()[1])
        elif "." in value:
            prefix, key = value.split(".", 1)
        else:
            return "attribute", value
        entity = _PREFIXES.get(prefix.lower())
        if entity is None or (entity != "attribute" and entity not in self.grammar.entities):
            allowed = ", ".join(sorted({"attributes", *(e + "s" for e in self.grammar.entities)}))
            raise self.fail(f"unknown entity '{prefix}'; use {allowed}")
        if not key:
            raise self.fail(f"'{prefix}.' needs a key after it, like {prefix}.team")
        return entity, key

    def operator(self) -> str:
        kind, value = self.take()
        if kind == "op":
            return {"==": "=", "<>": "!="}.get(value, value)
        word = value.upper() if kind == "word" else ""
        if word in ("LIKE", "ILIKE", "IN"):
            return word
        if word == "NOT" and self.word("IN"):
            self.take()
            return "NOT IN"
        if word == "IS":
            negated = self.word("NOT")
            if negated:
                self.take()
            if not self.word("NULL"):
                raise self.fail("expected NULL after IS")
            self.take()
            return "IS NOT NULL" if negated else "IS NULL"
        raise self.fail(f"expected an operator (=, !=, <, >, LIKE, ILIKE, IN), found {value!r}")

    def value(self) -> str | float | tuple[str, ...]:
        kind, value = self.take()
        if kind in ("string", "dq"):
            return _unquote(value)
        if kind == "number":
            return float(value)
        if kind == "punct" and value == "(":
            items: list[str] = []
            while True:
                kind, value = self.take()
                if kind not in ("string", "dq"):
                    raise self.fail("an IN list holds quoted strings, like ('a', 'b')")
                items.append(_unquote(value))
                kind, value = self.take()
                if value == ")":
                    return tuple(items)
                if value != ",":
                    raise self.fail("expected ',' or ')' in the IN list")
        raise self.fail(f"expected a quoted value or a number, found {value or 'the end'}")


def _unquote(token: str) -> str:
    quote = token[0]
    return token[1:-1].replace(quote * 2, quote)


def parse_filter(text: str, grammar: Grammar) -> list[Clause]:
    """The comparisons of ``text`` (blank: none), checked against ``grammar``."""
    if not text.strip():
        return []
    if len(text) > MAX_FILTER:
        raise _error(grammar, text, f"it is {len(text):,} characters; the limit is {MAX_FILTER:,}")
    reader = _Reader(text, grammar)
    clauses: list[Clause] = []
    while True:
        kind, key = reader.name()
        op = reader.operator()
        value = None if op in _NULL_OPS else reader.value()
        clauses.append(_checked(reader, Clause(kind, key, op, value)))
        if reader.peek()[0] == "end":
            return clauses
        if not reader.word("AND"):
            raise reader.fail(f"expected AND, found {reader.peek()[1]!r} (OR is not supported)")
        reader.take()


def _checked(reader: _Reader, clause: Clause) -> Clause:
    g, kind, key, op, value = reader.grammar, clause.kind, clause.key, clause.op, clause.value
    if kind == "attribute":
        if key in g.numbers:
            return _number_clause(reader, clause, f"attribute '{key}'")
        if key not in g.strings:
            valid = ", ".join(sorted(g.strings | g.numbers))
            raise reader.fail(f"invalid attribute key '{key}'; valid keys are {valid}")
        if op in ("IN", "NOT IN"):
            if key not in g.lists or not isinstance(value, tuple):
                raise reader.fail(f"{op} takes a list of quoted values, and only for {_or(g)}")
            return clause
        if op not in _STRING_OPS or not isinstance(value, str):
            raise reader.fail(f"attribute '{key}' takes =, !=, LIKE or ILIKE with a quoted value")
        return clause
    if kind == "metric":
        return _number_clause(reader, clause, f"metric '{key}'")
    if op in _NULL_OPS and kind == "tag" and g.null_tags:
        return clause
    if op not in _STRING_OPS or not isinstance(value, str):
        raise reader.fail(f"{kind} '{key}' takes =, !=, LIKE or ILIKE with a quoted value")
    return clause


def _or(g: Grammar) -> str:
    return " or ".join(sorted(g.lists)) or "no attribute here"


def _number_clause(reader: _Reader, clause: Clause, label: str) -> Clause:
    value = clause.value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if clause.op not in _NUMBER_OPS or not isinstance(value, float) or math.isnan(value):
        raise reader.fail(f"{label} takes =, !=, <, <=, > or >= with a number")
    return Clause(clause.kind, clause.key, clause.op, value)


def _like(pattern: str, text: str, *, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(regex, text, flags) is not None


def _compare(actual: Any, op: str, value: Any) -> bool:
    if op == "IS NULL":
        return actual is None
    if op == "IS NOT NULL":
        return actual is not None
    if actual is None:
        return False
    if op in ("IN", "NOT IN"):
        return (actual in value) == (op == "IN")
    if op in ("LIKE", "ILIKE"):
        return _like(value, str(actual), ignore_case=op == "ILIKE")
    if op == "=":
        return bool(actual == value)
    if op == "!=":
        return bool(actual != value)
    if op == "<":
        return bool(actual < value)
    if op == "<=":
        return bool(actual <= value)
    if op == ">":
        return bool(actual > value)
    return bool(actual >= value)


def matches(clauses: list[Clause], value_of: Callable[[str, str], Any]) -> bool:
    """Whether an object passes every clause; ``value_of(kind, key)`` reads it (None: absent)."""
    return all(_compare(value_of(c.kind, c.key), c.op, c.value) for c in clauses)


def parse_order_by(items: list[str], keys: Mapping[str, str], what: str) -> list[tuple[str, bool]]:
    """``(field, ascending)`` of each ``"key [ASC|DESC]"``; ``keys`` maps accepted names to fields.

    A key may carry MLflow's ``attribute.`` prefix; an unknown key, a bad direction or a field
    named twice is refused, as an MLflow server refuses them.
    """
    out: list[tuple[str, bool]] = []
    for item in items:
        parts = item.replace("`", "").split()
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        name = parts[0] if parts else ""
        for prefix in ("attributes.", "attribute."):
            name = name.removeprefix(prefix)
        field = keys.get(name)
        if len(parts) not in (1, 2) or direction not in ("ASC", "DESC") or field is None:
            valid = ", ".join(sorted(keys))
            raise MlflowError(
                f"Invalid order_by clause '{item[:200]}' for {what}: use one of {valid}, "
                "optionally followed by ASC or DESC."
            )
        if any(field == seen for seen, _ in out):
            raise MlflowError(
                f"`order_by` contains duplicate fields: {str(items)[:300]}; name each field once."
            )
        out.append((field, direction == "ASC"))
    return out


class _Desc:
    """Reverses the order of a value inside a tuple key."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]


def sort_key(
    order: list[tuple[str, bool]], value_of: Callable[[Any, str], Any]
) -> Callable[[Any], tuple[Any, ...]]:
    """A key for ``sorted`` by ``(field, ascending)`` pairs; missing values last either way."""

    def key(item: Any) -> tuple[Any, ...]:
        parts: list[Any] = []
        for field, ascending in order:
            value = value_of(item, field)
            if value is None:
                parts.append((1, 0))
            else:
                parts.append((0, value if ascending else _Desc(value)))
        return tuple(parts)

    return key
