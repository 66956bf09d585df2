"""Routes of policies (versions, decisions) and approvals (human sign-off)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from keel.governance import Permission
from keel.server._deps import Caller, ServicesDep, ok

__all__ = ["approvals", "policies"]

policies = APIRouter(prefix="/api/v1/projects/{project}/policies", tags=["policies"])
approvals = APIRouter(prefix="/api/v1/projects/{project}/approvals", tags=["approvals"])
PolicyName = Annotated[str, Path(min_length=1, max_length=256)]
RequestId = Annotated[str, Path(min_length=1, max_length=64)]


class ApplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Annotated[str, Field(min_length=1, max_length=1_000_000)]
    origin: Annotated[str, Field(max_length=300)] = "<policy>"


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    comment: Annotated[str, Field(max_length=10_000)] = ""


@policies.post("", status_code=201)
def apply(body: ApplyBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Store a policy document (YAML, JSON or Rego) as the next version of its policy."""
    s.governor.check(ctx, Permission.POLICY_WRITE, action="policy.apply", object_type="policy")
    version = s.policies.apply(ctx, body.source, origin=body.origin)
    return ok(version.to_dict(with_source=True), 201)


@policies.get("")
def list_policies(ctx: Caller, s: ServicesDep, include_history: bool = False) -> JSONResponse:
    found = s.policies.list(ctx, include_history=include_history)
    return ok([p.to_dict(with_source=True) for p in found])


@policies.get("/decisions")
def decisions(
    ctx: Caller,
    s: ServicesDep,
    gate: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    subject_under: Annotated[str | None, Query(max_length=300)] = None,
) -> JSONResponse:
    found = s.policies.decisions(
        ctx, gate=gate, subject=subject, limit=limit, subject_under=subject_under
    )
    return ok(found)


@policies.get("/{name}")
def get_policy(
    name: PolicyName,
    ctx: Caller,
    s: ServicesDep,
    version: Annotated[int | None, Query(ge=1, lt=2**31)] = None,
) -> JSONResponse:
    return ok(s.policies.get(ctx, name, version).to_dict(with_source=True))


@approvals.get("")
def list_approvals(
    ctx: Caller,
    s: ServicesDep,
    status: Annotated[str | None, Query(pattern="^(pending|approved|rejected)$")] = "pending",
) -> JSONResponse:
    return ok(s.approvals.list(ctx, status=status))


@approvals.get("/{request_id}")
def get_approval(request_id: RequestId, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.approvals.get(ctx, request_id))


@approvals.post("/{request_id}/approve")
def approve(request_id: RequestId, body: CommentBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.approvals.approve(ctx, request_id, comment=body.comment))


@approvals.post("/{request_id}/reject")
def reject(request_id: RequestId, body: CommentBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.approvals.reject(ctx, request_id, comment=body.comment))
