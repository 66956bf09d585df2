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
    signed: Annotated[
        bool,
        typer.Option("--signed", help="Also write OUT.manifest.json: SHA-256 + Ed25519 signature."),
    ] = False,
) -> None:
    """Write every audit event as JSON lines, oldest first."""
    with open_workspace() as ws:
        if out is None:
            if signed:
                from keel.errors import InvalidInputError

                raise InvalidInputError("--signed needs --out FILE (the manifest goes beside it).")
            ws.audit.export(sys.stdout)
            return
        tmp = out.with_name(out.name + ".partial")
        with tmp.open("w", encoding="utf-8") as handle:
            count = ws.audit.export(handle)
        tmp.replace(out)
        if signed:
            from keel import clock
            from keel.governance._export import manifest_path, sign_export

            sign_export(out, ws.signer, events=count, created_at=clock.now().isoformat())
            typer.echo(f"Signed manifest: {manifest_path(out)} (key {ws.signer.key_id}).", err=True)
    typer.echo(f"Wrote {count} audit events to {out}.", err=True)


@app.command("verify-export")
def verify_export(
    export_file: Annotated[Path, typer.Argument(help="The exported JSON-lines file.")],
    manifest: Annotated[
        Path | None, typer.Option("--manifest", help="Default: FILE.manifest.json.")
    ] = None,
    public_key: Annotated[
        str | None,
        typer.Option("--public-key", help="Trusted signer key (base64); default: this store's."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check a signed export: its manifest signature and the file's SHA-256 (exit 1 if bad)."""
    from keel.governance._export import public_key_from_b64
    from keel.governance._export import verify_export as check

    if public_key is not None:
        trusted = [public_key_from_b64(public_key)]
    else:
        with open_workspace() as ws:
            trusted = [ws.signer.public_key]
    body = check(export_file, manifest=manifest, trusted=trusted)
    if as_json:
        echo_json({"ok": True, **body})
    else:
        typer.echo(
            f"{export_file}: {body['events']} events, {body['digest'][:23]}…, signature by "
            f"{body['key_id']} verifies."
        )
