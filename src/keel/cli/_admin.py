"""``keel init``, ``keel config show``, ``keel db upgrade|status``."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli._app import state
from keel.cli._output import echo_json, print_kv

__all__ = ["config_app", "db_app", "init"]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

config_app = typer.Typer(help="Show the settings in force.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the metadata store's schema.", no_args_is_help=True)


def init(as_json: JsonOption = False) -> None:
    """Create a local store: schema, master key (mode 0600), default project, owner role."""
    from keel.cli._app import open_workspace

    settings = state.settings()
    existed = settings.is_embedded and (settings.home / "keel.db").exists()
    with open_workspace(create=True) as ws:
        summary = {
            "home": str(settings.home.resolve()),
            "created": not existed,
            "project": ws.project,
            "principal": ws.ctx.principal,
            "db_url": settings.describe()["db_url"],
            "blob_url": settings.resolved_blob_url,
            "master_key_file": str(settings.resolved_master_key_file),
        }
    if as_json:
        echo_json(summary)
        return
    verb = "Created" if summary["created"] else "Found"
    print_kv(f"{verb} the Keel store", list(summary.items()))


@config_app.command("show")
def config_show(as_json: JsonOption = False) -> None:
    """Print every setting with its resolved value (secrets redacted)."""
    shown = state.settings().describe()
    if as_json:
        echo_json(shown)
        return
    print_kv("Keel settings", sorted(shown.items()))


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOption = False) -> None:
    """Migrate the metadata store to the schema this Keel needs (creates it if empty)."""
    from keel.store import current_revisions, make_engine, required_heads, upgrade

    settings = state.settings()
    engine = make_engine(settings.resolved_db_url, busy_timeout=settings.busy_timeout)
    try:
        before = current_revisions(engine)
        after = upgrade(engine) if before != required_heads() else before
    finally:
        engine.dispose()
    result = {"from": sorted(before), "to": sorted(after), "changed": before != after}
    if as_json:
        echo_json(result)
        return
    shown_after = ", ".join(sorted(after))
    if before == after:
        typer.echo(f"The metadata store is already at revision {shown_after}.")
    else:
        shown_before = ", ".join(sorted(before)) or "empty"
        typer.echo(f"Upgraded the metadata store from {shown_before} to {shown_after}.")


@db_app.command("status")
def db_status(as_json: JsonOption = False) -> None:
    """Show the store's schema revision and the one this Keel needs; exit 1 if they differ."""
    from keel.store import current_revisions, make_engine, required_heads

    settings = state.settings()
    engine = make_engine(settings.resolved_db_url, busy_timeout=settings.busy_timeout)
    try:
        revisions = current_revisions(engine)
    finally:
        engine.dispose()
    required = required_heads()
    result: dict[str, object] = {
        "revisions": sorted(revisions),
        "required": sorted(required),
        "ok": revisions == required,
    }
    if as_json:
        echo_json(result)
    else:
        state_text = "up to date" if result["ok"] else "needs `keel db upgrade`"
        shown = ", ".join(sorted(revisions)) or "none"
        typer.echo(
            f"Schema revision {shown} (required {', '.join(sorted(required))}): {state_text}"
        )
    if not result["ok"]:
        raise typer.Exit(1)
