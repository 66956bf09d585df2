"""Problems of a project file, and JSON Schema errors explained with a fix."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keel.cicd._lines import LocatedDocument

__all__ = ["Issue", "explain", "path_text", "suggest"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem of a project file: where it is, what is wrong, and how to fix it."""

    file: str
    line: int
    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.file}:{self.line}{where}: {self.message} Fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "message": self.message,
            "fix": self.fix,
        }


def path_text(path: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in path)


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def explain(doc: LocatedDocument, error: Any) -> list[Issue]:
    path = list(error.absolute_path)
    where = path_text(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(schema.get("properties", {}))
        extras = [k for k in error.instance if k not in schema.get("properties", {})]
        return [
            Issue(
                doc.file,
                doc.line_of([*path, key], key=True),
                path_text([*path, key]),
                f"Unknown key '{key}'.",
                f"{suggest(str(key), known)}Remove it or use one of: {', '.join(known)}.",
            )
            for key in extras
        ]
    line = doc.line_of(path)
    value = json.dumps(error.instance, default=str)[:80]
    if kind == "type":
        expected = _YAML_WORD.get(str(schema.get("type")), str(schema.get("type")))
        return [
            Issue(
                doc.file,
                line,
                where,
                f"{value} is {_a(_json_type(error.instance))}, not {_a(expected)}.",
                f"Write {_a(expected)} here{_TYPE_EXAMPLE.get(expected, '')}.",
            )
        ]
    if kind == "enum":
        allowed = ", ".join(str(v) for v in schema.get("enum", []))
        return [
            Issue(
                doc.file,
                line,
                where,
                f"{value} is not allowed.",
                f"{suggest(str(error.instance), map(str, schema.get('enum', [])))}"
                f"Use one of: {allowed}.",
            )
        ]
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "a key"
        return [Issue(doc.file, line, where, f"'{missing}' is missing.", f"Add '{missing}:' here.")]
    if kind == "pattern" or kind == "propertyNames":
        return [
            Issue(
                doc.file,
                doc.line_of(path, key=True),
                where,
                f"{value} is not a valid name or value here.",
                "Names start with a letter or digit and use letters, digits, '_', '.' or "
                f"'-' (pattern {schema.get('pattern', '')}).".strip(),
            )
        ]
    if kind == "oneOf" and path and len(path) == 2 and path[0] == "triggers":
        return [
            Issue(
                doc.file,
                line,
                where,
                "A trigger needs exactly one of schedule, dataset, alert or commit.",
                "Keep exactly one of 'schedule: CRON', 'dataset: NAME', 'alert: RULE' or "
                "'commit: owner/repo'.",
            )
        ]
    if kind == "const":
        return [
            Issue(
                doc.file,
                line,
                where,
                f"{value} is not supported.",
                f"Use {json.dumps(schema.get('const'))}.",
            )
        ]
    return [Issue(doc.file, line, where, f"{error.message[:200]}.", _fallback_fix(kind, schema))]


_YAML_WORD = {"object": "mapping", "array": "list", "integer": "whole number"}
_TYPE_EXAMPLE = {
    "mapping": " (indented 'key: value' lines, or {key: value})",
    "list": " (lines starting with '- ', or [a, b])",
    "string": " (quote it if it looks like a number or a date)",
}


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _fallback_fix(kind: str, schema: Mapping[str, Any]) -> str:
    """How to fix a schema error of a kind without its own explanation."""
    bounds = {
        "minimum": "at least",
        "exclusiveMinimum": "more than",
        "maximum": "at most",
        "exclusiveMaximum": "less than",
    }
    if kind in bounds:
        return f"Use a number {bounds[kind]} {schema.get(kind)}."
    if kind == "minItems":
        return f"List at least {schema.get('minItems')} item(s)."
    if kind == "uniqueItems":
        return "Remove the repeated item."
    if kind == "minLength":
        return "Write a non-empty value."
    if kind == "minProperties":
        return f"Give at least {schema.get('minProperties')} key(s) here."
    if kind == "oneOf":
        return "Use exactly one of the allowed forms described in docs/project-file.md."
    return "Change the value to what the message asks for (see docs/project-file.md)."


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "null"
