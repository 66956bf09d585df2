"""Routes of monitoring: monitors and their reports, late labels, alert rules and alerts.

Bodies are checked loosely here (types and bounds) and fully by the service, after it has
authorized the caller: a caller without the permission gets 403 whatever the body holds.
Frames (a batch to monitor) and large label sets reach the server as staged uploads
(``POST .../uploads``), referenced here by upload id, as the remote SDK sends them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, JSONResponse

from keel.errors import ConfigurationError, InvalidInputError, NotFoundError
from keel.governance import Permission
from keel.monitoring import MonitorService
from keel.monitoring._labels import MAX_LABELS
from keel.server._deps import Caller, Services, ServicesDep, ok

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["monitoring"])
Name = Annotated[str, Path(min_length=1, max_length=256)]
ShortText = Annotated[str, Field(max_length=400)]
UploadId = Annotated[str, Field(min_length=1, max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MonitorBody(_Body):
    name: Annotated[str, Field(max_length=256)] = ""
    reference: ShortText = ""
    deployment: Annotated[str, Field(max_length=256)] | None = None
    model: Annotated[str, Field(max_length=256)] | None = None
    features: Annotated[list[ShortText], Field(max_length=2000)] | None = None
    categorical: Annotated[list[ShortText], Field(max_length=2000)] = []
    thresholds: dict[str, dict[str, Any]] | None = None
    default_threshold: dict[str, Any] | None = None
    window: Annotated[str, Field(max_length=64)] = "count:10000"
    target: ShortText | None = None
    task: Annotated[str, Field(max_length=32)] | None = None
    schedule: Annotated[str, Field(max_length=128)] | None = None
    min_rows: Annotated[int, Field(ge=1, le=10_000_000)] = 10
    min_labels: Annotated[int, Field(ge=1, le=10_000_000)] = 30
    metrics_url: Annotated[str, Field(max_length=2048)] | None = None
    metrics_allow_private: bool = False
    replace: bool = False


class LabelRecord(_Body):
    prediction_id: Any = None
    label: Any = None


class RunBody(_Body):
    upload_id: UploadId | None = None  # a staged Parquet file: the batch to monitor
    now: datetime | None = None


class LabelsBody(_Body):
    labels: Annotated[list[LabelRecord], Field(max_length=100_000)] = []
    upload_id: UploadId | None = None  # a staged NDJSON file of label records
    deployment: Annotated[str, Field(max_length=256)] | None = None
    on_conflict: Annotated[str, Field(max_length=16)] = "keep"


class FindLabelsBody(_Body):
    prediction_ids: Annotated[
        list[Annotated[str, Field(max_length=128)]], Field(max_length=100_000)
    ]


class RuleBody(_Body):
    name: Annotated[str, Field(max_length=256)] = ""
    monitor: Annotated[str, Field(max_length=256)] = ""
    metric: Annotated[str, Field(max_length=256)] = ""
    threshold: float = 0.0
    comparison: Annotated[str, Field(max_length=4)] = ">"
    window: Annotated[str, Field(max_length=32)] | float = 0.0
    for_duration: Annotated[str, Field(max_length=32)] | float = 0.0
    severity: Annotated[str, Field(max_length=16)] = "warning"
    channels: Annotated[list[dict[str, Any]], Field(max_length=20)] = [{"type": "log"}]
    enabled: bool = True
    replace: bool = False


def _monitors(s: Services) -> MonitorService:
    found = getattr(s, "monitors", None)
    if found is None:
        raise ConfigurationError("This server was built without the monitoring service.")
    assert isinstance(found, MonitorService)
    return found


@router.post("/monitors", status_code=201)
def create_monitor(body: MonitorBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Create a monitor of a deployment (or a model) against a reference dataset version."""
    fields = body.model_dump(exclude={"name", "reference"})
    made = _monitors(s).create(ctx, body.name, reference=body.reference, **fields)
    return ok(made, 201)


@router.get("/monitors")
def list_monitors(ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(_monitors(s).list(ctx))


@router.get("/monitors/{name}")
def get_monitor(name: Name, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(_monitors(s).get(ctx, name))


@router.delete("/monitors/{name}")
def delete_monitor(name: Name, ctx: Caller, s: ServicesDep) -> JSONResponse:
    _monitors(s).delete(ctx, name)
    return ok({"deleted": name})


def _aware(moment: datetime | None) -> datetime | None:
    """``now`` as given, a naive time read as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.post("/monitors/{name}/run")
def run_monitor(
    name: Name, ctx: Caller, s: ServicesDep, body: RunBody | None = None
) -> JSONResponse:
    """Run the monitor over its window now (or over a staged Parquet batch); the report is
    stored and returned."""
    service = _monitors(s)
    if body is None or body.upload_id is None:
        return ok(service.run(ctx, name, now=_aware(body.now if body else None)))
    import polars as pl

    s.governor.check(ctx, Permission.MONITOR_WRITE, action="monitor.run", object_type="monitor")
    staged = s.uploads.path(ctx.project_id, body.upload_id)
    try:
        frame = pl.read_parquet(staged)
    except Exception as exc:  # polars raises its own error tree for a file that is not Parquet
        raise InvalidInputError(
            f"The staged upload is not a readable Parquet file: {str(exc)[:200]}"
        ) from exc
    report = service.run(ctx, name, current=frame, now=_aware(body.now))
    s.uploads.discard(ctx.project_id, body.upload_id)
    return ok(report)


@router.get("/monitors/{name}/reports")
def list_reports(
    name: Name,
    ctx: Caller,
    s: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSONResponse:
    return ok(_monitors(s).reports(ctx, name, limit=limit))


@router.get("/monitors/{name}/reports/{report_id}")
def get_report(
    name: Name, report_id: Annotated[str, Path(max_length=40)], ctx: Caller, s: ServicesDep
) -> JSONResponse:
    found = _monitors(s).report(ctx, report_id)
    if found.monitor != name:
        raise NotFoundError(f"Monitor '{name}' has no report '{report_id}'.")
    return ok(found)


@router.get("/monitor-reports/{report_id}")
def get_report_by_id(
    report_id: Annotated[str, Path(max_length=40)], ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """One report by its id alone (whichever monitor made it)."""
    return ok(_monitors(s).report(ctx, report_id))


@router.get("/monitors/{name}/report.html", response_class=HTMLResponse)
def report_html(
    name: Name,
    ctx: Caller,
    s: ServicesDep,
    history: Annotated[int, Query(ge=1, le=1000)] = 30,
) -> HTMLResponse:
    """The self-contained HTML report of the monitor's latest run (and ``history`` runs)."""
    return HTMLResponse(_monitors(s).html(ctx, name, history=history))


@router.post("/labels")
def ingest_labels(body: LabelsBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Store late labels ``[{prediction_id, label}]``, joined to predictions by id: in the
    body, or (``upload_id``) as a staged NDJSON file of such records."""
    service = _monitors(s)
    if body.upload_id is None:
        records = [item.model_dump() for item in body.labels]
    elif body.labels:
        raise InvalidInputError("Send labels in the body or as an upload_id, not both.")
    else:
        s.governor.check(
            ctx, Permission.MONITOR_WRITE, action="labels.ingest", object_type="ground_truth"
        )
        records = _label_lines(s, ctx.project_id, body.upload_id)
    done = service.labels.ingest(
        ctx, records, deployment=body.deployment, on_conflict=body.on_conflict
    )
    if body.upload_id is not None:
        s.uploads.discard(ctx.project_id, body.upload_id)
    return ok(done)


def _label_lines(s: Services, project_id: str, upload_id: str) -> list[Any]:
    """The label records of a staged NDJSON upload (at most the service's limit per ingest)."""
    records: list[Any] = []
    with open(s.uploads.path(project_id, upload_id), encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if len(records) >= MAX_LABELS:
                raise InvalidInputError(
                    f"More than {MAX_LABELS} labels in one ingest; split them into several."
                )
            try:
                records.append(json.loads(line))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidInputError(
                    f"Line {number} of the staged labels is not JSON: {str(exc)[:120]}"
                ) from exc
    return records


@router.post("/labels/find")
def find_labels(body: FindLabelsBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """The stored label of each of ``prediction_ids`` that has one."""
    return ok(_monitors(s).labels.find(ctx, body.prediction_ids))


@router.post("/alert-rules", status_code=201)
def add_rule(body: RuleBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    fields = body.model_dump(exclude={"name", "monitor", "metric", "threshold"})
    rule = _monitors(s).alerts.add_rule(
        ctx,
        body.name,
        monitor=body.monitor,
        metric=body.metric,
        threshold=body.threshold,
        **fields,
    )
    return ok(rule, 201)


@router.get("/alert-rules")
def list_rules(
    ctx: Caller,
    s: ServicesDep,
    monitor: Annotated[str | None, Query(max_length=256)] = None,
) -> JSONResponse:
    return ok(_monitors(s).alerts.rules(ctx, monitor=monitor))


@router.delete("/alert-rules/{name}")
def delete_rule(name: Name, ctx: Caller, s: ServicesDep) -> JSONResponse:
    _monitors(s).alerts.delete_rule(ctx, name)
    return ok({"deleted": name})


@router.get("/alerts")
def list_alerts(
    ctx: Caller,
    s: ServicesDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    rule: Annotated[str | None, Query(max_length=256)] = None,
    monitor: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    return ok(_monitors(s).alerts.list(ctx, state=state, rule=rule, monitor=monitor, limit=limit))


@router.get("/alerts/{alert_id}")
def get_alert(
    alert_id: Annotated[str, Path(min_length=1, max_length=40)], ctx: Caller, s: ServicesDep
) -> JSONResponse:
    return ok(_monitors(s).alerts.get(ctx, alert_id))
