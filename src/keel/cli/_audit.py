"""``keel audit verify|export``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json

__all__ = ["app"]

app = typer.Typer(help="Verify and export the tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Walk the hash chain; exit 1 naming the first broken event if any was altered."""
    with open_workspace() as ws:
        report = ws.audit.verify()
    broken = report.broken
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "head_seq": report.head_seq,
                "broken": None
                if broken is None
                else {"seq": broken.seq, "event_id": broken.event_id, "reason": broken.reason},
            }
        )
    elif broken is None:
        typer.echo(f"Audit chain intact: {report.checked} events verified.")
    else:
        who = f" ({broken.event_id})" if broken.event_id else ""
        typer.echo(
            f"Audit chain BROKEN at event #{broken.seq}{who}: {broken.reason}. "
            f"{report.checked} events read.",
            err=True,
        )
    if broken is not None:
        raise typer.Exit(1)


@app.command("export")
def export(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Write every audit event as JSON lines, oldest first."""
    with open_workspace() as ws:
        if out is None:
            ws.audit.export(sys.stdout)
            return
        tmp = out.with_name(out.name + ".partial")
        with tmp.open("w", encoding="utf-8") as handle:
            count = ws.audit.export(handle)
        tmp.replace(out)
    typer.echo(f"Wrote {count} audit events to {out}.", err=True)
