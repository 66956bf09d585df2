"""``keel approvals list|approve|reject``: the human sign-off that policies ask for."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_table

__all__ = ["app"]

app = typer.Typer(help="Human sign-off that policies ask for.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("list")
def list_approvals(
    status: Annotated[
        str, typer.Option("--status", help="pending, approved, rejected or all.")
    ] = "pending",
    as_json: JsonOption = False,
) -> None:
    """List approval requests (pending by default)."""
    with open_workspace() as ws:
        requests = ws.approvals.list(status=None if status == "all" else status)
    if as_json:
        echo_json([r.to_dict() for r in requests])
        return
    print_table(
        f"Approval requests ({status}) in project '{ws.project}'",
        ["id", "gate", "subject", "requester", "status", "votes", "why"],
        [
            (
                r.id,
                r.gate,
                r.subject,
                r.requester,
                r.status,
                ", ".join(f"{v['principal']}:{v['decision']}" for v in r.votes),
                r.summary,
            )
            for r in requests
        ],
    )


def _vote(request_id: str, decision: str, comment: str, as_json: bool) -> None:
    with open_workspace() as ws:
        if decision == "approve":
            result = ws.approvals.approve(request_id, comment=comment)
        else:
            result = ws.approvals.reject(request_id, comment=comment)
    if as_json:
        echo_json(result.to_dict())
    else:
        typer.echo(f"Approval request {result.id} for {result.subject} is now {result.status}.")


@app.command("approve")
def approve(
    request_id: str,
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    as_json: JsonOption = False,
) -> None:
    """Approve a request (you must not be its requester)."""
    _vote(request_id, "approve", comment, as_json)


@app.command("reject")
def reject(
    request_id: str,
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    as_json: JsonOption = False,
) -> None:
    """Reject a request; the gated action must be retried to ask again."""
    _vote(request_id, "reject", comment, as_json)
