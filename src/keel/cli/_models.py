"""``keel models list|show|alias|rollback``."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_kv, print_table

__all__ = ["app"]

app = typer.Typer(help="The model registry: versions, aliases, rollback.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the history).")]


@app.command("list")
def list_models(as_json: JsonOption = False) -> None:
    """List registered models with their latest version and aliases."""
    with open_workspace() as ws:
        models = ws.models.list()
    if as_json:
        echo_json([model.to_dict() for model in models])
        return
    print_table(
        f"Registered models in project '{ws.project}'",
        ["name", "latest", "aliases", "updated (UTC)"],
        [
            (
                m.name,
                m.latest_version,
                ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())),
                m.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for m in models
        ],
    )


@app.command("show")
def show_model(name: str, as_json: JsonOption = False) -> None:
    """Show a model: its versions, aliases and every alias move."""
    with open_workspace() as ws:
        model = ws.models.get(name)
        versions = ws.models.versions(name)
        history = ws.models.alias_history(name)
    if as_json:
        echo_json(
            {
                "model": model.to_dict(),
                "versions": [v.to_dict() for v in versions],
                "alias_history": [h.to_dict() for h in history],
            }
        )
        return
    print_kv(
        f"Model {model.name}",
        [("id", model.id), ("description", model.description), ("aliases", model.aliases)],
    )
    print_table(
        "Versions",
        ["version", "format", "run", "digest", "aliases", "created (UTC)"],
        [
            (
                v.version,
                v.format,
                v.run_id,
                v.artifact_digest[:19] + "…",
                ", ".join(v.aliases),
                v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for v in versions
        ],
    )
    if history:
        print_table(
            "Alias history",
            ["when (UTC)", "alias", "move", "from", "to", "by", "reason"],
            [
                (
                    h.moved_at.strftime("%Y-%m-%d %H:%M:%S"),
                    h.alias,
                    h.kind + (" (undone)" if h.undone else ""),
                    h.from_version,
                    h.to_version,
                    h.principal,
                    h.reason,
                )
                for h in history
            ],
        )


@app.command("alias")
def set_alias(
    name: str,
    alias: str,
    version: int,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Point ALIAS of model NAME at VERSION (atomically; the move is recorded)."""
    with open_workspace() as ws:
        move = ws.models.set_alias(name, alias, version, reason=reason)
    if as_json:
        echo_json(move.to_dict())
        return
    typer.echo(f"{name}@{alias}: {move.from_version or '(none)'} → {move.to_version}")


@app.command("rollback")
def rollback(name: str, alias: str, reason: ReasonOption = "", as_json: JsonOption = False) -> None:
    """Return ALIAS of model NAME to its previous holder."""
    with open_workspace() as ws:
        move = ws.models.rollback(name, alias, reason=reason)
    if as_json:
        echo_json(move.to_dict())
        return
    typer.echo(f"{name}@{alias} rolled back: {move.from_version} → {move.to_version}")
