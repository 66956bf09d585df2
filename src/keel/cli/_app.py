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
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print Keel's version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    state.home = home
    state.project = project


def _version(value: bool) -> None:
    if value:
        from keel import __version__

        typer.echo(f"keel {__version__}")
        raise typer.Exit()


def open_workspace(*, create: bool = False, settings: Settings | None = None) -> Workspace:
    """Connect for a command (with ``settings`` already loaded, if given); an embedded store
    that does not exist yet is an error."""
    from keel.errors import ConfigurationError
    from keel.workspace import connect

    settings = settings or state.settings()
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


#: Every top-level name: (module, attribute, "group" or "command", one-line help). Only the
#: entry a command line invokes is imported and built; the others are listed by their help
#: alone, so `keel --help` and every command start fast. tests/cli checks the help texts match.
ENTRIES: dict[str, tuple[str, str, str, str]] = {
    "init": (
        "keel.cli._admin",
        "init",
        "command",
        "Create a local store: schema, master key (mode 0600), default project, owner role.",
    ),
    "quickstart": (
        "keel.cli._quickstart",
        "quickstart",
        "command",
        "Run the lifecycle on real data: train, deploy, drift, alert, retrain, canary, promote.",
    ),
    "config": ("keel.cli._admin", "config_app", "group", "Show the settings in force."),
    "db": ("keel.cli._admin", "db_app", "group", "Manage the metadata store's schema."),
    "datasets": (
        "keel.cli._datasets",
        "app",
        "group",
        "Datasets: ingest sources into versions, validate, publish, classify, anonymize.",
    ),
    "gc": (
        "keel.cli._gc",
        "gc",
        "command",
        "Remove blobs of killed ingests that no version references, and stale temporaries.",
    ),
    "runs": ("keel.cli._runs", "app", "group", "List and inspect tracked runs."),
    "models": (
        "keel.cli._models",
        "app",
        "group",
        "The model registry: versions, aliases, rollback.",
    ),
    "pipelines": ("keel.cli._pipelines", "app", "group", "Run pipelines and inspect their runs."),
    "triggers": (
        "keel.cli._scheduler",
        "triggers_app",
        "group",
        "List and fire pipeline triggers.",
    ),
    "scheduler": (
        "keel.cli._scheduler",
        "scheduler",
        "command",
        "Run the scheduler daemon: sync keel.yaml triggers, fire schedules, run firings.",
    ),
    "serve": (
        "keel.cli._serving",
        "serve",
        "command",
        "Serve models over the Open Inference Protocol V2 (REST) and /predict.",
    ),
    "deploy": (
        "keel.cli._serving",
        "deploy",
        "command",
        "Deploy a registry version with a strategy (its smoke prediction must pass first).",
    ),
    "deployments": (
        "keel.cli._serving",
        "deployments_app",
        "group",
        "Deployments: traffic split, canary analysis, promote, roll back.",
    ),
    "monitors": (
        "keel.cli._monitors",
        "app",
        "group",
        "Monitoring: drift, quality from late labels, latency, alert rules and alerts.",
    ),
    "lineage": (
        "keel.cli._lineage",
        "app",
        "group",
        "Follow an object's lineage upstream and downstream.",
    ),
    "audit": (
        "keel.cli._audit",
        "app",
        "group",
        "Verify and export the tamper-evident audit trail.",
    ),
    "policy": (
        "keel.cli._policy",
        "app",
        "group",
        "Policies as code: test, apply, list, and the gates' decisions.",
    ),
    "approvals": ("keel.cli._approvals", "app", "group", "Human sign-off that policies ask for."),
    "supplychain": (
        "keel.cli._supplychain",
        "app",
        "group",
        "Model supply chain: signatures, pickle scans and quarantine, ML-BOMs, pip-audit.",
    ),
    "compliance": (
        "keel.cli._compliance",
        "app",
        "group",
        "GDPR / UAE PDPL: records of processing, subject access and erasure, retention, regions.",
    ),
    "server": (
        "keel.cli._server",
        "server",
        "command",
        "Serve the REST API (HTTPS when KEEL_TLS_CERT_FILE and KEEL_TLS_KEY_FILE are set).",
    ),
    "import": ("keel.cli._import_mlflow", "app", "group", "Import from other tools into Keel."),
    "admin": ("keel.cli._users", "admin_app", "group", "Create identity administrators."),
    "users": ("keel.cli._users", "users_app", "group", "Users and service accounts."),
    "tokens": (
        "keel.cli._users",
        "tokens_app",
        "group",
        "API tokens (shown once, stored as hashes).",
    ),
    "ci": (
        "keel.cli._ci",
        "app",
        "group",
        "CI stages with JUnit reports and PR summaries; CI workflow templates.",
    ),
    "validate": (
        "keel.cli._project",
        "validate",
        "command",
        "Check keel.yaml against its schema, references and cycles; every error with its line.",
    ),
    "plan": (
        "keel.cli._project",
        "plan",
        "command",
        "Show what apply would create, update or delete, with a diff against the current state.",
    ),
    "apply": (
        "keel.cli._project",
        "apply",
        "command",
        "Make the project match keel.yaml (idempotent, audited, one apply at a time).",
    ),
    "export": (
        "keel.cli._project",
        "export",
        "command",
        "Write the current state of the project as a project file.",
    ),
}
_ROOT_OPTIONS_WITH_VALUE = ("--home", "--project")


def invoked_name(argv: list[str]) -> str | None:
    """The top-level command a command line names (skipping the root options), if any."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _ROOT_OPTIONS_WITH_VALUE:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg
    return None


def load_entry(name: str) -> Any:
    """The real typer app or command function of a top-level name."""
    import importlib

    module, attribute, _, _ = ENTRIES[name]
    return getattr(importlib.import_module(module), attribute)


def _placeholder() -> None:  # pragma: no cover - listed in help, never invoked
    raise AssertionError("a placeholder command was invoked")


def _register(argv: list[str] | None = None) -> None:
    import sys

    wanted = invoked_name(sys.argv[1:] if argv is None else argv)
    for name, (_, _, kind, help_text) in ENTRIES.items():
        real = name == wanted
        if kind == "group":
            app.add_typer(load_entry(name) if real else typer.Typer(help=help_text), name=name)
        else:
            app.command(name, help=None if real else help_text)(
                load_entry(name) if real else _placeholder
            )


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``keel`` script: exit 0 on success, 1 on failure, 2 on bad usage."""
    from keel.errors import InvalidInputError, KeelError

    _register(argv)
    try:
        # Click's standalone mode prints usage errors and exits 2 by itself.
        return app(args=argv, standalone_mode=True)
    except KeelError as exc:
        from keel.cli._output import print_error

        print_error(str(exc))
        raise SystemExit(2 if isinstance(exc, InvalidInputError) else 1) from None
