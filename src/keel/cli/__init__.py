"""The ``keel`` command line: a thin face over the services (typer + rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keel._lazy import lazy_names

if TYPE_CHECKING:
    from keel.cli._app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``keel`` script: exit 0 on success, 1 on failure, 2 on bad usage.

    The garbage collector runs less often while the command starts (see
    :mod:`keel.cli._collector`); typer and the command's modules load only now.
    """
    from keel.cli import _collector

    _collector.start()
    from keel.cli._app import main as run

    return run(argv)


__getattr__, __dir__ = lazy_names(__name__, __all__, {"app": "keel.cli._app"})
