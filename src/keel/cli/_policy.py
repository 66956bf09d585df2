"""``keel policy test|apply|list|show|decisions``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.cli._app import open_workspace, state
from keel.cli._output import echo_json, print_kv, print_table

__all__ = ["app"]

app = typer.Typer(
    help="Policies as code: test, apply, list, and the gates' decisions.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("test")
def run_policy_tests(
    policies: Annotated[list[Path], typer.Argument(help="Policy files to evaluate together.")],
    fixtures: Annotated[
        Path, typer.Option("--fixtures", "-f", help="A fixture file or a folder of them.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Run policies against fixture contexts offline; exit 1 if any fixture fails."""
    from keel.governance import load_policy_file
    from keel.governance._policy_fixtures import load_fixtures, run_fixtures

    documents = [load_policy_file(path)[1] for path in policies]
    results = run_fixtures(documents, load_fixtures(fixtures))
    failed = [r for r in results if not r.passed]
    if as_json:
        echo_json({"passed": not failed, "results": [r.to_dict() for r in results]})
    else:
        print_table(
            f"{len(results) - len(failed)}/{len(results)} fixtures passed",
            ["", "fixture", "gate", "expected", "got", "reasons / problem"],
            [
                (
                    "ok" if r.passed else "FAIL",
                    r.name,
                    r.gate,
                    r.expected,
                    "allow" if r.evaluation.allowed else "deny",
                    r.problem or "; ".join(r.evaluation.reasons),
                )
                for r in results
            ],
        )
    if failed:
        raise typer.Exit(1)


@app.command("apply")
def apply_policy(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Policy files (default: every file in KEEL_POLICY_DIR)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Store policy files as new versions (an unchanged file keeps its version)."""
    from keel.errors import InvalidInputError

    with open_workspace() as ws:
        if files:
            versions = [ws.policies.apply_file(path) for path in files]
        else:
            folder = state.settings().policy_dir
            if folder is None:
                raise InvalidInputError(
                    "Name the policy files to apply, or set KEEL_POLICY_DIR to a folder of them."
                )
            versions = ws.policies.apply_dir(folder)
    if as_json:
        echo_json([v.to_dict() for v in versions])
        return
    for v in versions:
        typer.echo(f"Policy {v.name} is at version {v.version} ({v.digest[:19]}…).")


@app.command("list")
def list_policies(
    history: Annotated[
        bool, typer.Option("--history", help="Every version, not just active.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the active policies (or every version) of the project."""
    with open_workspace() as ws:
        versions = ws.policies.list(include_history=history)
    if as_json:
        echo_json([v.to_dict() for v in versions])
        return
    print_table(
        f"Policies in project '{ws.project}'",
        ["name", "version", "active", "gates", "digest", "by", "created (UTC)"],
        [
            (
                v.name,
                v.version,
                "yes" if v.is_active else "",
                ", ".join(v.gates) or "all",
                v.digest[:19] + "…",
                v.created_by,
                v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for v in versions
        ],
    )


@app.command("show")
def show_policy(
    name: str,
    version: Annotated[int | None, typer.Option("--version", help="Default: latest.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a policy version and its exact text."""
    with open_workspace() as ws:
        found = ws.policies.get(name, version)
    if as_json:
        echo_json(found.to_dict(with_source=True))
        return
    print_kv(
        f"Policy {found.name} v{found.version}",
        [("digest", found.digest), ("backend", found.backend), ("by", found.created_by)],
    )
    typer.echo(found.source)


@app.command("decisions")
def list_decisions(
    gate: Annotated[str | None, typer.Option("--gate")] = None,
    subject: Annotated[str | None, typer.Option("--subject")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """The gates' latest decisions, newest first."""
    with open_workspace() as ws:
        decisions = ws.policies.decisions(gate=gate, subject=subject, limit=limit)
    if as_json:
        echo_json([d.to_dict() for d in decisions])
        return
    print_table(
        f"Policy decisions in project '{ws.project}'",
        ["id", "gate", "subject", "decision", "reasons", "policies", "by"],
        [
            (
                d.id,
                d.gate,
                d.subject,
                "allow" if d.allowed else "DENY",
                "; ".join(d.reasons),
                ", ".join(d.policies),
                d.principal,
            )
            for d in decisions
        ],
    )
