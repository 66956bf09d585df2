"""The ``keel`` command: global options, sub-command groups, and one error-to-exit-code table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from keel.settings import Settings
    from keel.workspace import Workspace

__all__ = ["State", "app", "main", "open_workspace", "state"]

app = typer.Typer(
    name="keel",
    help="Keel: the governed machine-learning lifecycle — track, register, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class State:
    """Options given before the sub-command."""

    home: Path | None = None
    project: str | None = None

    def settings(self) -> Settings:
        from keel.settings import load_settings

        return load_settings(home=self.home, project=self.project)


state = State()


@app.callback()
def _root(
    home: Annotated[
        Path | None, typer.Option("--home", help="Store folder (default $KEEL_HOME or ./.keel).")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="Project to work in (default: default).")
    ] = None,
) -> None:
    state.home = home
    state.project = project


def open_workspace(*, create: bool = False) -> Workspace:
    """Connect for a command; an embedded store that does not exist yet is an error."""
    from keel.errors import ConfigurationError
    from keel.workspace import connect

    settings = state.settings()
    if settings.is_embedded and not create:
        db_file = Path(settings.resolved_db_url.split(":///", 1)[1])
        if not db_file.exists():
            raise ConfigurationError(
                f"There is no Keel store at {settings.home.resolve()}. Create one with "
                "`keel init`, run `keel quickstart`, or point --home / KEEL_HOME at an "
                "existing store.",
                home=str(settings.home),
            )
    return connect(settings=settings, create=create)


def _register() -> None:
    from keel.cli import _admin, _audit, _lineage, _models, _quickstart, _runs

    app.add_typer(_runs.app, name="runs")
    app.add_typer(_models.app, name="models")
    app.add_typer(_audit.app, name="audit")
    app.add_typer(_lineage.app, name="lineage")
    app.add_typer(_admin.db_app, name="db")
    app.add_typer(_admin.config_app, name="config")
    app.command("init")(_admin.init)
    app.command("quickstart")(_quickstart.quickstart)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``keel`` script: exit 0 on success, 1 on failure, 2 on bad usage."""
    from keel.errors import InvalidInputError, KeelError

    _register()
    try:
        # Click's standalone mode prints usage errors and exits 2 by itself.
        return app(args=argv, standalone_mode=True)
    except KeelError as exc:
        from keel.cli._output import print_error

        print_error(str(exc))
        raise SystemExit(2 if isinstance(exc, InvalidInputError) else 1) from None
