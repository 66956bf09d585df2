"""Routes of deployments: deploy, list, revisions, promote (a canary step), rollback, predictions.

The routing state lives in the store; model servers (``keel serve``) read it and carry out the
traffic split. Shadow comparisons are counted by the model server that mirrors the traffic and
published on its own ``/metrics``, so they are not part of this API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, StreamingResponse

from keel.server._deps import Caller, ServicesDep, ok
from keel.server._responses import DeploymentOut, DeploymentRevisionOut
from keel.server._tables import stream_table

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/projects/{project}/deployments", tags=["deployments"])
DeploymentName = Annotated[str, Path(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=10_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeployBody(_Body):
    ref: Annotated[str, Field(min_length=1, max_length=400, description="model@alias or model:N")]
    environment: Annotated[str, Field(min_length=1, max_length=32)] = "staging"
    strategy: Annotated[str, Field(min_length=1, max_length=32)] = "blue-green"
    steps: (
        Annotated[str, Field(max_length=200)]
        | Annotated[list[Annotated[float, Field(ge=0, le=100)]], Field(max_length=20)]
        | None
    ) = None
    name: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class PromoteBody(_Body):
    reason: Text = ""
    full: bool = False


class RollbackBody(_Body):
    reason: Text = ""


#: The most logged predictions one download carries.
MAX_PREDICTION_ROWS = 2_000_000


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is UTC (every stored time is)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.post("", status_code=201, response_model=DeploymentOut)
def deploy(body: DeployBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Deploy a model version; it must pass a smoke prediction before it can get traffic."""
    made = s.deployments.deploy(
        ctx,
        body.ref,
        environment=body.environment,
        strategy=body.strategy,
        steps=body.steps,
        name=body.name,
    )
    return ok(made, 201)


@router.get("", response_model=list[DeploymentOut])
def list_deployments(
    ctx: Caller,
    s: ServicesDep,
    environment: Annotated[str | None, Query(max_length=32)] = None,
) -> JSONResponse:
    return ok(s.deployments.list(ctx, environment=environment))


@router.get("/{deployment}", response_model=DeploymentOut)
def get_deployment(deployment: DeploymentName, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.deployments.get(ctx, deployment))


@router.get("/{deployment}/revisions", response_model=list[DeploymentRevisionOut])
def revisions(deployment: DeploymentName, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.deployments.revisions(ctx, deployment))


@router.post("/{deployment}/promote", response_model=DeploymentOut)
def promote(
    deployment: DeploymentName, body: PromoteBody, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """Move a canary to its next step (``full``: straight to the candidate)."""
    return ok(s.deployments.promote(ctx, deployment, reason=body.reason, full=body.full))


@router.post("/{deployment}/rollback", response_model=DeploymentOut)
def rollback(
    deployment: DeploymentName, body: RollbackBody, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """Drop a rolling candidate, or switch back to the previous version."""
    return ok(s.deployments.rollback(ctx, deployment, reason=body.reason))


@router.get("/{deployment}/predictions")
def predictions(
    deployment: DeploymentName,
    ctx: Caller,
    s: ServicesDep,
    since: datetime | None = None,
    until: datetime | None = None,
    format: Literal["parquet", "csv"] = "parquet",
) -> StreamingResponse:
    """Logged predictions with ``since <= timestamp < until``, as Parquet or CSV (at most
    ``MAX_PREDICTION_ROWS`` rows: a larger window is refused before anything is read)."""
    from keel.errors import InvalidInputError
    from keel.governance import Permission
    from keel.store import DeploymentRepository

    start, end = _utc(since), _utc(until)
    s.governor.check(
        ctx,
        Permission.DEPLOYMENT_READ,
        action="deployment.read_predictions",
        object_type="prediction_log",
    )
    with s.governor.db.read() as session:
        batches = DeploymentRepository(session, ctx.project_id).log_batches(
            deployment, since=start, until=end
        )
        rows = sum(b.rows for b in batches)
    if rows > MAX_PREDICTION_ROWS:
        raise InvalidInputError(
            f"The window holds up to {rows:,} logged predictions of '{deployment}', more than "
            f"the {MAX_PREDICTION_ROWS:,} one download carries (the server builds it in "
            "memory). Narrow it with since/until, e.g. one day at a time.",
            rows=rows,
            limit=MAX_PREDICTION_ROWS,
        )
    frame = s.deployments.read_predictions(ctx, deployment, since=start, until=end)
    return stream_table(
        iter([frame]) if frame.height else iter(()),
        empty=frame,
        format=format,
        name=f"{deployment}-predictions",
    )
