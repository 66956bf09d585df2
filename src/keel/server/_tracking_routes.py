"""Routes of experiments and runs: thin — parse, call the service, serialise."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import JSONResponse, Response

from keel.governance import Permission
from keel.server._deps import Caller, ServicesDep, ok
from keel.server._downloads import download
from keel.server._models import (
    ArtifactBody,
    BatchBody,
    CreateExperimentBody,
    CreateRunBody,
    CurvesBody,
    EndRunBody,
    MetricsBody,
    ParamsBody,
    SearchBody,
    TagBody,
    TagsBody,
)
from keel.tracking import Metric
from keel.types import RunStatus
from keel.workspace._codec import from_jsonable

__all__ = ["experiments", "runs", "uploads"]

Id = Annotated[str, Path(min_length=1, max_length=64)]
experiments = APIRouter(prefix="/api/v1/projects/{project}/experiments", tags=["experiments"])
runs = APIRouter(prefix="/api/v1/projects/{project}/runs", tags=["runs"])
uploads = APIRouter(prefix="/api/v1/projects/{project}", tags=["uploads"])


@uploads.post("/uploads", status_code=201)
async def upload(request: Request, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Stage raw bytes (application/octet-stream) for a later artifact or model version."""
    s.governor.check(ctx, Permission.RUN_WRITE, action="upload.create", object_type="upload")
    staged = await s.uploads.receive(ctx.project_id, request.stream())
    return ok(staged, 201)


# --- experiments ---------------------------------------------------------------------------


@experiments.post("", status_code=201)
def create_experiment(body: CreateExperimentBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.experiments.create(ctx, body.name, description=body.description), 201)


@experiments.get("")
def list_experiments(ctx: Caller, s: ServicesDep, include_deleted: bool = False) -> JSONResponse:
    return ok(s.experiments.list(ctx, include_deleted=include_deleted))


@experiments.get("/by-name/{name}")
def experiment_by_name(
    name: Annotated[str, Path(min_length=1, max_length=256)], ctx: Caller, s: ServicesDep
) -> JSONResponse:
    return ok(s.experiments.get_by_name(ctx, name))


@experiments.get("/{experiment_id}")
def get_experiment(experiment_id: Id, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.experiments.get(ctx, experiment_id))


@experiments.post("/{experiment_id}/tags")
def tag_experiment(experiment_id: Id, body: TagBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.experiments.set_tag(ctx, experiment_id, body.key, body.value)
    return ok({"key": body.key})


@experiments.delete("/{experiment_id}")
def delete_experiment(experiment_id: Id, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.experiments.delete(ctx, experiment_id)
    return ok({"id": experiment_id, "lifecycle": "deleted"})


@experiments.post("/{experiment_id}/restore")
def restore_experiment(experiment_id: Id, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.experiments.restore(ctx, experiment_id)
    return ok({"id": experiment_id, "lifecycle": "active"})


# --- runs ----------------------------------------------------------------------------------


@runs.post("", status_code=201)
def create_run(body: CreateRunBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Create a RUNNING run with the environment its client captured (never the server's)."""
    run = s.runs.create(
        ctx,
        experiment=body.experiment,
        name=body.name,
        params=body.params,
        tags=body.tags,
        parent_run_id=body.parent_run_id,
        capture_env=False,
        environment=body.environment,
    )
    return ok(run, 201)


@runs.post("/search")
def search_runs(body: SearchBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    page = s.runs.search(
        ctx,
        body.filter,
        experiments=body.experiments,
        order_by=body.order_by,
        max_results=body.max_results,
        page_token=body.page_token,
        include_deleted=body.include_deleted,
    )
    return ok(page)


@runs.get("/{run_id}")
def get_run(run_id: Id, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.runs.get(ctx, run_id))


@runs.post("/{run_id}/end")
def end_run(run_id: Id, body: EndRunBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.runs.end(ctx, run_id, RunStatus(body.status)))


@runs.delete("/{run_id}")
def delete_run(run_id: Id, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.runs.delete(ctx, run_id)
    return ok({"id": run_id, "lifecycle": "deleted"})


@runs.post("/{run_id}/restore")
def restore_run(run_id: Id, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.runs.restore(ctx, run_id)
    return ok({"id": run_id, "lifecycle": "active"})


@runs.post("/{run_id}/batch")
def log_batch(run_id: Id, body: BatchBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Metrics, params and tags together: all written, or (on any error) none."""
    metrics = [from_jsonable(Metric, m.model_dump()) for m in body.metrics]
    s.runs.log_batch(ctx, run_id, metrics=metrics, params=body.params, tags=body.tags)
    return ok({"metrics": len(metrics)})


@runs.post("/{run_id}/metrics")
def log_metrics(run_id: Id, body: MetricsBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    values = from_jsonable(dict[str, float], body.metrics)
    s.runs.log_metrics(ctx, run_id, values, step=body.step)
    return ok({"metrics": len(values)})


@runs.post("/{run_id}/params")
def log_params(run_id: Id, body: ParamsBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.runs.log_params(ctx, run_id, body.params)
    return ok({"params": len(body.params)})


@runs.post("/{run_id}/tags")
def set_tags(run_id: Id, body: TagsBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    s.runs.set_tags(ctx, run_id, body.tags)
    return ok({"tags": len(body.tags)})


@runs.delete("/{run_id}/tags")
def delete_tag(
    run_id: Id,
    ctx: Caller,
    s: ServicesDep,
    key: Annotated[str, Query(min_length=1, max_length=250)],
) -> JSONResponse:
    s.runs.delete_tag(ctx, run_id, key)
    return ok({"key": key})


@runs.get("/{run_id}/metrics/history")
def metric_history(
    run_id: Id,
    ctx: Caller,
    s: ServicesDep,
    key: Annotated[str, Query(min_length=1, max_length=250)],
) -> JSONResponse:
    return ok(s.runs.metric_history(ctx, run_id, key))


@runs.post("/metric-curves")
def metric_curves(body: CurvesBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """One metric's curves for up to 1,000 runs, reduced to min/max per step bucket when long."""
    return ok(s.runs.metric_curves(ctx, body.run_ids, body.key, buckets=body.buckets))


@runs.post("/{run_id}/artifacts", status_code=201)
def log_artifact(run_id: Id, body: ArtifactBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Record a staged upload as the run's artifact ``path`` (the server stores it)."""
    s.governor.check(ctx, Permission.RUN_WRITE, action="run.log_artifact", object_type="run")
    staged = s.uploads.path(ctx.project_id, body.upload_id)
    artifact = s.runs.log_artifact(ctx, run_id, staged, name=body.path)
    s.uploads.discard(ctx.project_id, body.upload_id)
    return ok(artifact, 201)


@runs.get("/{run_id}/artifacts")
def list_artifacts(run_id: Id, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.runs.artifacts(ctx, run_id))


@runs.get("/{run_id}/artifacts/{path:path}")
def read_artifact(
    run_id: Id, path: Annotated[str, Path(max_length=1024)], ctx: Caller, s: ServicesDep
) -> Response:
    return download(s.runs.read_artifact(ctx, run_id, path), path)
