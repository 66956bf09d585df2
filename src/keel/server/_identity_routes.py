"""Routes of identity: who am I, principals (administrators), API tokens, role bindings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import JSONResponse

from keel.governance._identity import check_principal_name
from keel.server._deps import Caller, ServicesDep, Someone, ok
from keel.server._models import CreateProjectBody, CreateTokenBody, CreateUserBody, GrantBody

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["identity"])
PrincipalName = Annotated[str, Path(min_length=6, max_length=210)]
TokenId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/whoami")
def whoami(ctx: Someone) -> JSONResponse:
    """The caller: principal, project and roles there."""
    return ok(
        {
            "principal": ctx.principal,
            "project_id": ctx.project_id,
            "project": ctx.project_name,
            "roles": sorted(ctx.roles),
        }
    )


@router.get("/users")
def list_users(ctx: Someone, s: ServicesDep) -> JSONResponse:
    return ok(s.identity.principals(ctx))


@router.post("/users", status_code=201)
def create_user(body: CreateUserBody, ctx: Someone, s: ServicesDep) -> JSONResponse:
    made = s.identity.create_principal(
        ctx, body.name, display_name=body.display_name, email=body.email, is_admin=body.is_admin
    )
    return ok(made, 201)


@router.post("/users/{name}/disable")
def disable_user(name: PrincipalName, ctx: Someone, s: ServicesDep) -> JSONResponse:
    return ok(s.identity.disable_principal(ctx, name))


@router.get("/tokens")
def list_tokens(ctx: Someone, s: ServicesDep, everyone: bool = False) -> JSONResponse:
    return ok(s.identity.tokens(ctx, everyone=everyone))


@router.post("/tokens", status_code=201)
def create_token(body: CreateTokenBody, ctx: Someone, s: ServicesDep) -> JSONResponse:
    """Issue a token; the response holds the secret, shown this once."""
    issued = s.identity.create_token(
        ctx,
        role=body.role,
        principal=body.principal,
        project=body.project,
        days=body.days,
        description=body.description,
    )
    return ok(issued, 201)


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: TokenId, ctx: Someone, s: ServicesDep) -> JSONResponse:
    return ok(s.identity.revoke_token(ctx, token_id))


@router.get("/projects")
def list_projects(ctx: Someone, s: ServicesDep) -> JSONResponse:
    """The projects where the caller holds a role."""
    return ok(s.projects.list(ctx))


@router.post("/projects", status_code=201)
def create_project(body: CreateProjectBody, ctx: Someone, s: ServicesDep) -> JSONResponse:
    """Create a project (needs the admin role in the caller's current project)."""
    return ok(s.projects.create(ctx, body.name, description=body.description), 201)


@router.get("/projects/{project}/bindings")
def list_bindings(ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.identity.bindings(ctx))


@router.put("/projects/{project}/bindings/{principal}")
def grant(principal: PrincipalName, body: GrantBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.projects.grant(ctx, check_principal_name(principal), body.role)
    return ok({"principal": principal, "role": body.role})


@router.delete("/projects/{project}/bindings/{principal}")
def revoke(principal: PrincipalName, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.identity.revoke_role(ctx, principal)
    return ok({"principal": principal, "role": None})
