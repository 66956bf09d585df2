"""The ``keel`` command line: a thin face over the services (typer + rich)."""

from keel.cli._app import app, main

__all__ = ["app", "main"]
