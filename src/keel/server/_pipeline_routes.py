"""Routes of pipelines: runs and their steps, cancel, outputs, triggers and their firings.

Pipelines are Python code, so they run where their code is: in the scheduler (``keel
scheduler``) or a process beside the store. Over REST a client starts a pipeline by firing one
of its triggers (``POST .../triggers/{trigger}/fire``, or an event that matches several); the
scheduler claims the firing and runs the pipeline it names. The API never receives code.

Git providers deliver pushes to ``POST .../pipelines/webhooks/{provider}`` without a token: the
delivery is authenticated by its signature (GitHub's HMAC, GitLab's token) under the secret
``secret://webhook-<project>-<provider>`` and acts as the principal
``service:webhook-<provider>``, which needs a role in the project that may run pipelines.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from keel import errors
from keel.errors import NotFoundError
from keel.pipelines import Firing, PipelineRun, Trigger
from keel.server._deps import Caller, ServicesDep, ok
from keel.server._downloads import download
from keel.server._errors import PayloadTooLargeError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/projects/{project}/pipelines", tags=["pipelines"])
RunId = Annotated[str, Path(min_length=1, max_length=64)]
TriggerName = Annotated[str, Path(min_length=1, max_length=256)]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Mapping = dict[Annotated[str, Field(max_length=256)], Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TriggerBody(_Body):
    name: Name
    pipeline: Name
    kind: Annotated[str, Field(min_length=1, max_length=32)]
    spec: Mapping | None = None
    params: Mapping | None = None
    enabled: bool = True
    replace: bool = False


class FireBody(_Body):
    cause: Mapping | None = None


class EventBody(_Body):
    kind: Annotated[str, Field(min_length=1, max_length=32)]
    subject: Annotated[str, Field(min_length=1, max_length=512)]
    event_id: Annotated[str, Field(min_length=1, max_length=256)]
    details: Mapping | None = None


@router.get("/runs", response_model=list[PipelineRun])
def list_runs(
    ctx: Caller,
    s: ServicesDep,
    pipeline: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSONResponse:
    """Runs, newest first (without their steps)."""
    return ok(s.pipelines.list_runs(ctx, pipeline=pipeline, limit=limit))


@router.get("/runs/{run_id}", response_model=PipelineRun)
def get_run(run_id: RunId, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """One run with its steps."""
    return ok(s.pipelines.get(ctx, run_id))


@router.post("/runs/{run_id}/cancel", response_model=PipelineRun)
def cancel_run(run_id: RunId, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Ask a running run to stop; it cancels its unfinished steps at the next step end."""
    return ok(s.pipelines.cancel(ctx, run_id))


@router.get("/runs/{run_id}/outputs/{output}")
def read_output(
    run_id: RunId,
    output: Annotated[str, Path(min_length=1, max_length=256)],
    ctx: Caller,
    s: ServicesDep,
) -> Response:
    """The stored bytes of output ``output`` (a safe format, decoded by the client)."""
    run = s.pipelines.get(ctx, run_id)
    for step in run.steps:
        if output in step.outputs:
            digest = step.outputs[output]
            data = s.blobs.get_bytes(digest, scope=ctx.project_id)
            response = download(data, output)
            response.headers["x-keel-digest"] = digest
            return response
    raise NotFoundError(
        f"Pipeline run '{run_id}' has no stored output '{output}'.", run_id=run_id, output=output
    )


@router.post("/triggers", status_code=201, response_model=Trigger)
def create_trigger(body: TriggerBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Create (or with ``replace`` update) a trigger: schedule, dataset, alert or commit."""
    made = s.pipelines.triggers.create(
        ctx,
        body.name,
        pipeline=body.pipeline,
        kind=body.kind,
        spec=body.spec,
        params=body.params,
        enabled=body.enabled,
        replace=body.replace,
    )
    return ok(made, 201)


@router.get("/triggers", response_model=list[Trigger])
def list_triggers(
    ctx: Caller, s: ServicesDep, kind: Annotated[str | None, Query(max_length=32)] = None
) -> JSONResponse:
    return ok(s.pipelines.triggers.all(ctx, kind=kind))


@router.post("/triggers/{trigger}/fire", status_code=201, response_model=Firing)
def fire(trigger: TriggerName, body: FireBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Record a manual firing; the scheduler runs the trigger's pipeline."""
    return ok(s.pipelines.triggers.fire(ctx, trigger, cause=body.cause), 201)


@router.post("/events", response_model=list[Firing])
def fire_event(body: EventBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Fire every trigger of ``kind`` watching ``subject`` (once per ``event_id``)."""
    fired = s.pipelines.triggers.fire_event(
        ctx, body.kind, body.subject, event_id=body.event_id, details=body.details
    )
    return ok(fired)


@router.get("/firings", response_model=list[Firing])
def firings(
    ctx: Caller,
    s: ServicesDep,
    trigger: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    return ok(s.pipelines.triggers.firings(ctx, trigger=trigger, limit=limit))


_REFUSED = "The webhook signature does not verify."


@router.post("/webhooks/{provider}", status_code=202, response_model=list[Firing])
async def webhook(
    project: Annotated[str, Path(min_length=1, max_length=256)],
    provider: Annotated[str, Path(pattern="^(github|gitlab)$")],
    request: Request,
    s: ServicesDep,
) -> JSONResponse:
    """A git provider's push: verified by its signature, it fires the matching commit triggers."""
    from starlette.concurrency import run_in_threadpool

    from keel.governance import SecretResolver
    from keel.pipelines import handle_webhook

    state = request.scope.setdefault("state", {})
    state["principal"] = f"service:webhook-{provider}"
    body = await request.body()
    client = request.client
    headers = dict(request.headers)

    def verify_and_fire() -> Any:
        # the database and secret lookups block: in a worker thread, not the event loop
        try:
            secret = SecretResolver.from_settings(s.settings).resolve(
                f"secret://webhook-{project}-{provider}"
            )
            ctx = s.projects.context(
                f"service:webhook-{provider}", project, source=client.host if client else None
            )
        except (errors.NotFoundError, errors.InvalidInputError):
            # Unconfigured and unknown look the same to a caller without the secret.
            raise errors.AuthenticationError(_REFUSED) from None
        state["project_id"] = ctx.project_id
        return handle_webhook(
            s.pipelines.triggers,
            ctx,
            provider=provider,
            headers=headers,
            body=body,
            secret=secret,
        )

    result = await run_in_threadpool(verify_and_fire)
    if result.status == 401:
        raise errors.AuthenticationError(_REFUSED)
    if result.status == 413:
        raise PayloadTooLargeError(result.message, limit=len(body))
    if result.status >= 400:
        raise errors.InvalidInputError(result.message)
    return ok(result.firings, result.status)
