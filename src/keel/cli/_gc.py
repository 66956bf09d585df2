"""``keel gc``: remove blobs of killed ingests that nothing references, and stale temporaries."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json

__all__ = ["gc"]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would go.")] = False,
    older_than: Annotated[
        float, typer.Option("--older-than", min=0, help="Seconds an orphan must be old.")
    ] = 3600.0,
    as_json: JsonOption = False,
) -> None:
    """Remove blobs of killed ingests that no version references, and stale temporaries."""
    with open_workspace() as ws:
        report = ws.datasets.gc(dry_run=dry_run, older_than_seconds=older_than)
    if as_json:
        echo_json(report.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"gc {verb} {len(report.orphan_blobs)} orphaned blob(s)"
        + ("" if dry_run else f" and {report.temporaries} stale temporary file(s)")
        + "."
    )
