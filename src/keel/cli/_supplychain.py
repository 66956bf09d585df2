"""``keel supplychain sign|verify|bom|scan|quarantine|audit-env``: the model supply chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_kv, print_table

__all__ = ["app"]

app = typer.Typer(
    help="Model supply chain: signatures, pickle scans and quarantine, ML-BOMs, pip-audit.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RefArgument = Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:VERSION.")]


@app.command("verify")
def verify(ref: RefArgument, as_json: JsonOption = False) -> None:
    """Verify a version's Ed25519 signature; exit 1 if it is missing or does not verify."""
    with open_workspace() as ws:
        info = ws.supplychain.verify(ref)
    if as_json:
        echo_json({"ok": True, **info.to_dict()})
    else:
        typer.echo(f"Signature of {ref} verifies (key {info.key_id}, signed {info.signed_at}).")


@app.command("sign")
def sign(ref: RefArgument, as_json: JsonOption = False) -> None:
    """Sign a version registered before signing existed (signatures are never replaced)."""
    with open_workspace() as ws:
        info = ws.supplychain.sign(ref)
    if as_json:
        echo_json(info.to_dict())
    else:
        typer.echo(f"Signed {ref} with key {info.key_id}.")


@app.command("bom")
def bom(
    ref: RefArgument,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Default: stdout.")] = None,
) -> None:
    """Write the CycloneDX 1.6 ML-BOM of a version (validated against the schema)."""
    with open_workspace() as ws:
        document = ws.supplychain.bom(ref)
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    typer.echo(f"Wrote the ML-BOM of {ref} to {out}.", err=True)


@app.command("scan")
def scan(
    files: Annotated[list[Path], typer.Argument(help="Pickle or joblib files.")],
    name: Annotated[str, typer.Option("--name", help="Model name for the policy.")] = "model",
    as_json: JsonOption = False,
) -> None:
    """Scan files with modelscan and fickling; exit 1 if any stays quarantined."""
    from rich.progress import Progress

    results = []
    with open_workspace() as ws, Progress(transient=True) as progress:
        task = progress.add_task("Scanning", total=len(files))
        for path in files:
            results.append(ws.supplychain.scan(path, name=name))
            progress.advance(task)
    if as_json:
        echo_json([r.to_dict() for r in results])
    else:
        print_table(
            "Scanned files",
            ["file", "verdict", "status", "findings"],
            [
                (
                    r.filename,
                    r.verdict,
                    r.status,
                    "; ".join(f"{f['tool']}: {f['detail'][:80]}" for f in r.findings),
                )
                for r in results
            ],
        )
    if any(not r.is_released for r in results):
        raise typer.Exit(1)


@app.command("quarantine")
def quarantine(as_json: JsonOption = False) -> None:
    """List scanned files and whether they are held or released."""
    with open_workspace() as ws:
        rows = ws.supplychain.quarantined()
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    print_table(
        f"Scanned files in project '{ws.project}'",
        ["id", "file", "digest", "verdict", "status", "by"],
        [(r.id, r.filename, r.digest[:19] + "…", r.verdict, r.status, r.created_by) for r in rows],
    )


@app.command("audit-env")
def audit_env(
    ref: RefArgument,
    strict: Annotated[
        bool, typer.Option("--strict", help="Also fail when a package could not be audited.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """pip-audit the environment recorded with a version; exit 1 on a known vulnerability."""
    with open_workspace() as ws:
        report = ws.supplychain.audit_environment(ref)
    ok = report.ok(strict=strict)
    if as_json:
        echo_json({"ok": ok, **report.to_dict()})
    else:
        print_kv(
            f"pip-audit of {ref}",
            [
                ("audited", report.audited),
                ("vulnerable", len(report.vulnerable)),
                ("not audited", len(report.skipped)),
            ],
        )
        for item in report.vulnerable:
            ids = ", ".join(str(v["id"]) for v in item["vulns"])
            typer.echo(f"  {item['name']} {item['version']}: {ids}")
        if report.skipped:
            typer.echo(
                f"{len(report.skipped)} packages could not be audited (first: "
                f"{report.skipped[0]['reason']}).",
                err=True,
            )
    if not ok:
        raise typer.Exit(1)
