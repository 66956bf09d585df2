"""Routes of deployments: deploy, list, revisions, promote (a canary step), rollback, predictions.

The routing state lives in the store; model servers (``keel serve``) read it and carry out the
traffic split. Shadow comparisons are counted by the model server that mirrors the traffic and
published on its own ``/metrics``, so they are not part of this API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, StreamingResponse

from keel.server._deps import Caller, ServicesDep, ok
from keel.server._responses import DeploymentOut, DeploymentRevisionOut, PredictionTraceOut
from keel.server._tables import stream_table

__all__ = ["router", "traces"]

router = APIRouter(prefix="/api/v1/projects/{project}/deployments", tags=["deployments"])
traces = APIRouter(prefix="/api/v1/projects/{project}/predictions", tags=["deployments"])
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


#: Logged predictions one response carries unless the request gives another ``limit``.
DEFAULT_PREDICTION_ROWS = 100_000
#: The largest ``limit``: the server holds one page in memory while it sends it.
MAX_PREDICTION_ROWS = 2_000_000
#: The header holding the token of the next page; absent on the last page.
NEXT_PAGE_HEADER = "x-keel-next-page-token"
_MAX_TOKEN = 512  # the service's MAX_PAGE_TOKEN_CHARS (the server does not import serving early)

_PAGE_HEADERS = {
    "X-Keel-Next-Page-Token": {
        "description": "Present when more rows exist: pass it as page_token for the next page.",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'The next page, as `<...?page_token=...>; rel="next"`, when more exist.',
        "schema": {"type": "string"},
    },
}
_PREDICTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The page: Parquet or CSV by ``format``; the file name is in "
        "Content-Disposition.",
        "content": {
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
        },
        "headers": _PAGE_HEADERS,
    }
}


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


@router.get(
    "/{deployment}/predictions",
    response_class=StreamingResponse,
    responses=_PREDICTION_RESPONSES,
)
def predictions(
    deployment: DeploymentName,
    request: Request,
    ctx: Caller,
    s: ServicesDep,
    since: Annotated[
        datetime | None,
        Query(description="The earliest timestamp included (ISO 8601; without a zone: UTC)."),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(description="The timestamp the window ends before (excluded)."),
    ] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_PREDICTION_ROWS,
            description="The most rows of this page. When more rows exist, the response "
            "carries the X-Keel-Next-Page-Token header (and a Link header, rel=next).",
        ),
    ] = DEFAULT_PREDICTION_ROWS,
    page_token: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=_MAX_TOKEN,
            description="The X-Keel-Next-Page-Token of the previous page (same window): the "
            "page continues right after it, so pages never repeat or skip a row.",
        ),
    ] = None,
    format: Literal["parquet", "csv"] = "parquet",
) -> StreamingResponse:
    """Logged predictions with ``since <= timestamp < until``, one page of at most ``limit``
    rows at a time, in (timestamp, prediction id) order, as Parquet or CSV. When more rows
    exist, the X-Keel-Next-Page-Token header holds the ``page_token`` of the next page."""
    page = s.deployments.read_prediction_page(
        ctx,
        deployment,
        since=since,
        until=until,
        limit=limit,
        page_token=page_token,
    )
    response = stream_table(
        iter([page.frame]) if page.frame.height else iter(()),
        empty=page.frame,
        format=format,
        name=f"{deployment}-predictions",
    )
    if page.next_page_token is not None:
        response.headers[NEXT_PAGE_HEADER] = page.next_page_token
        following = request.url.include_query_params(page_token=page.next_page_token)
        response.headers["link"] = f'<{following.path}?{following.query}>; rel="next"'
    return response


@traces.get("/{prediction_id}", response_model=PredictionTraceOut)
def trace_prediction(
    prediction_id: Annotated[str, Path(min_length=1, max_length=40)],
    ctx: Caller,
    s: ServicesDep,
    deployment: Annotated[
        str | None,
        Query(min_length=1, max_length=256, description="Look only in this deployment's log."),
    ] = None,
    depth: Annotated[int, Query(ge=1, le=50, description="Lineage levels to walk upstream.")] = 10,
) -> JSONResponse:
    """One served prediction followed back to its data: the logged row, the deployment
    revision that routed it, the model version that answered, its late label, and the lineage
    upstream (needs deployment.read and lineage.read)."""
    return ok(
        s.deployments.trace_prediction(ctx, prediction_id, deployment=deployment, depth=depth)
    )
