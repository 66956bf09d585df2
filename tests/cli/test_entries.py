"""The lazily registered top-level commands: complete, and their help matches the real one."""

from __future__ import annotations

import inspect

import pytest
import typer

from keel.cli._app import ENTRIES, invoked_name, load_entry


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_listed_help_is_the_real_help(name: str) -> None:
    _, _, kind, listed = ENTRIES[name]
    real = load_entry(name)
    if kind == "group":
        assert isinstance(real, typer.Typer)
        assert real.info.help == listed
    else:
        doc = inspect.getdoc(real) or ""
        assert doc.splitlines()[0] == listed


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["runs", "list"], "runs"),
        (["--home", "/tmp/x", "models", "show", "m"], "models"),
        (["--project", "p", "--home", "h", "quickstart", "--json"], "quickstart"),
        (["--help"], None),
        ([], None),
    ],
)
def test_the_invoked_name_skips_root_options(argv: list[str], name: str | None) -> None:
    assert invoked_name(argv) == name
