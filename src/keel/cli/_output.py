"""How the CLI prints: rich tables for people, JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["echo_json", "print_error", "print_kv", "print_markup", "print_table"]


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    # Messages are never hard-wrapped, so a command in them stays copyable (and greppable).
    return Console(stderr=stderr, soft_wrap=stderr)


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities as the strings JSON parsers accept ("NaN", "Infinity")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def echo_json(value: Any) -> None:
    """Print ``value`` as strict JSON on stdout (datetimes as ISO-8601, NaN as "NaN")."""
    text = json.dumps(
        _finite(json.loads(json.dumps(value, default=_default))),
        indent=2,
        sort_keys=True,
        allow_nan=False,
    )
    sys.stdout.write(text + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    _console().print(table)


def print_kv(title: str, items: Sequence[tuple[str, Any]]) -> None:
    """A two-column table of labels and values."""
    print_table(title, ["field", "value"], [(key, value) for key, value in items])


def print_markup(text: str) -> None:
    """Print rich console markup (styled on a terminal, plain text when piped)."""
    _console().print(text, highlight=False)


def print_error(message: str) -> None:
    from rich.markup import escape

    _console(stderr=True).print(f"[bold red]Error:[/] {escape(message)}")
