"""``keel admin create``, ``keel users list|create|disable``, ``keel tokens create|list|revoke``.

These act as the local operator: whoever runs them already holds the store's files, so they
may administer identities; every change is audited under the operator's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_kv, print_table

if TYPE_CHECKING:
    from keel.governance import Context, IdentityService, IssuedToken

__all__ = ["admin_app", "tokens_app", "users_app"]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
admin_app = typer.Typer(help="Create identity administrators.", no_args_is_help=True)
users_app = typer.Typer(help="Users and service accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (shown once, stored as hashes).", no_args_is_help=True)


@contextmanager
def _operator(*, create: bool = False) -> Iterator[tuple[IdentityService, Context]]:
    from dataclasses import replace

    from keel.governance import OPERATOR_ROLE, AuditLog, Governor, IdentityService

    with open_workspace(create=create) as ws:
        governor = Governor(ws._governor.db, AuditLog(ws._governor.db))
        settings = ws.settings
        identity = IdentityService(
            governor, default_project=settings.project, token_max_days=settings.token_max_days
        )
        yield identity, replace(ws.ctx, roles=frozenset({OPERATOR_ROLE}))


def _show_token(issued: IssuedToken, as_json: bool) -> None:
    if as_json:
        echo_json(issued.to_dict())
        return
    token = issued.token
    print_kv(
        "API token (copy it now: it is shown only this once)",
        [
            ("token", issued.secret),
            ("id", token.id),
            ("principal", token.principal),
            ("project", token.project),
            ("role", token.role),
            ("expires", token.expires_at.isoformat()),
        ],
    )


@admin_app.command("create")
def admin_create(
    name: Annotated[str, typer.Argument(help="Login of the administrator (user:NAME).")],
    project: Annotated[str | None, typer.Option("--project", help="Project to administer.")] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="Token lifetime.")] = 90,
    as_json: JsonOption = False,
) -> None:
    """Create an identity administrator and print its first API token (once)."""
    with _operator(create=True) as (identity, ctx):
        issued = identity.create_admin(ctx, name, project=project or ctx.project_name, days=days)
    _show_token(issued, as_json)


@users_app.command("list")
def users_list(as_json: JsonOption = False) -> None:
    """Every user and service account."""
    with _operator() as (identity, ctx):
        found = identity.principals(ctx)
    if as_json:
        echo_json([p.to_dict() for p in found])
        return
    rows = [
        (p.name, p.kind, "yes" if p.is_admin else "", "yes" if p.disabled else "", p.email or "")
        for p in found
    ]
    print_table("Principals", ["name", "kind", "admin", "disabled", "email"], rows)


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="user:NAME or service:NAME (bare NAME = user).")],
    email: Annotated[str | None, typer.Option("--email")] = None,
    display_name: Annotated[str, typer.Option("--display-name")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="Identity administrator.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a user or a service account."""
    principal = name if ":" in name else f"user:{name}"
    with _operator() as (identity, ctx):
        made = identity.create_principal(
            ctx, principal, display_name=display_name, email=email, is_admin=admin
        )
    if as_json:
        echo_json(made.to_dict())
    else:
        typer.echo(f"Created {made.kind} {made.name}.")


@users_app.command("disable")
def users_disable(
    name: Annotated[str, typer.Argument(help="user:NAME or service:NAME.")],
    as_json: JsonOption = False,
) -> None:
    """Disable a principal; its tokens stop working at once."""
    principal = name if ":" in name else f"user:{name}"
    with _operator() as (identity, ctx):
        done = identity.disable_principal(ctx, principal)
    if as_json:
        echo_json(done.to_dict())
    else:
        typer.echo(f"Disabled {done.name}.")


@tokens_app.command("create")
def tokens_create(
    principal: Annotated[str, typer.Option("--principal", help="user:NAME or service:NAME.")],
    role: Annotated[str, typer.Option("--role", help="viewer, contributor, maintainer…")],
    project: Annotated[str | None, typer.Option("--project", help="Project of the token.")] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=3650)] = 90,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonOption = False,
) -> None:
    """Issue a token scoped to a project and role (the principal must hold that role)."""
    who = principal if ":" in principal else f"user:{principal}"
    with _operator() as (identity, ctx):
        issued = identity.create_token(
            ctx,
            role=role,
            principal=who,
            project=project or ctx.project_name,
            days=days,
            description=description,
        )
    _show_token(issued, as_json)


@tokens_app.command("list")
def tokens_list(as_json: JsonOption = False) -> None:
    """Every token (never its secret), newest first."""
    with _operator() as (identity, ctx):
        found = identity.tokens(ctx, everyone=True)
    if as_json:
        echo_json([t.to_dict() for t in found])
        return
    rows = [
        (
            t.id,
            t.principal,
            t.project,
            t.role,
            t.status,
            t.expires_at.strftime("%Y-%m-%d"),
            "" if t.last_used_at is None else t.last_used_at.strftime("%Y-%m-%d %H:%M"),
        )
        for t in found
    ]
    columns = ["id", "principal", "project", "role", "status", "expires", "last used"]
    print_table("API tokens", columns, rows)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (keel tokens list).")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a token now."""
    with _operator() as (identity, ctx):
        done = identity.revoke_token(ctx, token_id)
    if as_json:
        echo_json(done.to_dict())
    else:
        typer.echo(f"Revoked token {done.id} of {done.principal}.")
