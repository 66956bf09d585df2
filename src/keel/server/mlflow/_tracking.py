"""MLflow experiments and runs over Keel's ExperimentService and RunService.

What Keel's services already do is called, never redone; what MLflow adds (renaming, resuming a
run, deleting an experiment tag, run inputs and outputs) is written here through the Governor,
authorized and audited like every other write.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from keel.errors import AlreadyExistsError, NotFoundError
from keel.governance import Context, Permission
from keel.server.mlflow._filters import Grammar, matches, parse_filter, parse_order_by, sort_key
from keel.server.mlflow._wire import (
    Args,
    MlflowError,
    experiment_json,
    float_json,
    to_float,
    to_int,
)
from keel.store import ExperimentRepository, MlflowRepository, RunRepository
from keel.store._schema import ExperimentTagRow
from keel.tracking import Experiment, Metric, Run
from keel.types import RunStatus

if TYPE_CHECKING:
    from keel.server._deps import Services

__all__ = ["DEFAULT_EXPERIMENT", "experiment_of", "run_json", "runs_json"]

DEFAULT_EXPERIMENT = "Default"
_RUN_NAME = "mlflow.runName"
_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}
_VIEW = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": None, "": "active"}
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTRIES = 1000, 100, 100, 1000


def experiment_of(s: Services, ctx: Context, experiment_id: str) -> Experiment:
    """The experiment behind an MLflow id; ``"0"`` is MLflow's default experiment."""
    if experiment_id == "0":
        return s.experiments.ensure(ctx, DEFAULT_EXPERIMENT)
    return s.experiments.get(ctx, experiment_id)


def _experiment(exp: Experiment) -> dict[str, Any]:
    created = int(exp.created_at.timestamp() * 1000)
    return experiment_json(exp.id, exp.name, exp.lifecycle, created, exp.tags)


def _run_info(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": run.experiment_id,
        "user_id": run.user,
        "status": run.status.value,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "artifact_uri": f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts",
        "lifecycle_stage": run.lifecycle,
    }


#: A run's latest value of each metric with its step and timestamp: key -> (value, step, ms).
Latest = dict[str, tuple[float, int, int]]


def run_json(
    run: Run, io: list[tuple[str, dict[str, Any]]] | None = None, latest: Latest | None = None
) -> dict[str, Any]:
    """A Keel run as MLflow's ``Run`` message.

    Each metric carries the step and timestamp of its latest value (``latest``), as MLflow's
    do; ``mlflow.runName`` is always the run's current name.
    """
    tags = dict(run.tags)
    tags[_RUN_NAME] = run.name
    if run.parent_run_id:
        tags.setdefault("mlflow.parentRunId", run.parent_run_id)
    latest = latest or {}
    metrics = []
    for key, value in run.metrics.items():
        _, step, stamp = latest.get(key, (value, 0, run.start_time))
        metrics.append({"key": key, "value": float_json(value), "timestamp": stamp, "step": step})
    out: dict[str, Any] = {
        "info": _run_info(run),
        "data": {
            "metrics": metrics,
            "params": [{"key": k, "value": v} for k, v in run.params.items()],
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
    }
    datasets = [body for kind, body in io or () if kind == "dataset"]
    models_in = [body for kind, body in io or () if kind == "model_input"]
    models_out = [body for kind, body in io or () if kind == "model_output"]
    out["inputs"] = {"dataset_inputs": datasets, "model_inputs": models_in}
    out["outputs"] = {"model_outputs": models_out}
    return out


def runs_json(s: Services, ctx: Context, runs: list[Run]) -> list[dict[str, Any]]:
    """The runs (already read by the caller's authorized call) as MLflow ``Run`` messages."""
    ids = [r.id for r in runs]
    with s.governor.db.read() as session:
        io = MlflowRepository(session, ctx.project_id).io(ids)
        latest = RunRepository(session, ctx.project_id).latest_metrics(ids)
    return [run_json(run, io[run.id], latest[run.id]) for run in runs]


def _page(token: str) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        offset = None
    if not isinstance(offset, int) or offset < 0:
        raise MlflowError("Invalid page token: pass back the next_page_token unchanged.")
    return offset


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


# --- experiments ---------------------------------------------------------------------------


def create_experiment(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name = a.text("name", required=True)
    try:
        exp = s.experiments.create(ctx, name)
    except AlreadyExistsError:
        raise MlflowError(
            f"Experiment(name={name}) already exists. Error: an experiment named '{name}' "
            "exists in this project; use set_experiment or another name.",
            error_code="RESOURCE_ALREADY_EXISTS",
        ) from None
    for key, value in a.key_values("tags").items():
        s.experiments.set_tag(ctx, exp.id, key, value)
    return {"experiment_id": exp.id}


def get_experiment(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    return {
        "experiment": _experiment(experiment_of(s, ctx, a.text("experiment_id", required=True)))
    }


def get_experiment_by_name(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name = a.text("experiment_name", required=True)
    try:
        exp = s.experiments.get_by_name(ctx, name)
    except NotFoundError:
        raise NotFoundError(f"Could not find experiment with name '{name}'") from None
    return {"experiment": _experiment(exp)}


_EXPERIMENTS = Grammar(
    "experiments",
    strings=frozenset({"name", "experiment_id"}),
    numbers=frozenset({"creation_time", "last_update_time"}),
    lists=frozenset({"experiment_id"}),
    null_tags=True,
    example="name LIKE 'churn%' AND tags.team = 'ml' AND creation_time > 1700000000000",
)
_EXPERIMENT_ORDER = {k: k for k in ("name", "experiment_id", "creation_time", "last_update_time")}


def _experiment_field(exp: Experiment, field: str) -> Any:
    if field == "name":
        return exp.name
    if field == "experiment_id":
        return exp.id
    return int(exp.created_at.timestamp() * 1000)  # Keel keeps no separate update time


def search_experiments(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    view = a.text("view_type", default="ACTIVE_ONLY")
    if view not in _VIEW:
        raise MlflowError(f"Invalid view_type '{view}': use ACTIVE_ONLY, DELETED_ONLY or ALL.")
    max_results = a.integer("max_results", default=1000) or 1000
    if not 1 <= max_results <= 50_000:
        raise MlflowError(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at "
            "most 50000."
        )
    clauses = parse_filter(a.text("filter"), _EXPERIMENTS)
    order = parse_order_by(
        [str(o) for o in a.items("order_by")] or ["creation_time DESC", "experiment_id ASC"],
        _EXPERIMENT_ORDER,
        "experiments",
    )
    if not any(field == "experiment_id" for field, _ in order):
        order.append(("experiment_id", False))  # MLflow's tie-breaker
    wanted = _VIEW[view]
    found = [
        e
        for e in s.experiments.list(ctx, include_deleted=wanted != "active")
        if wanted is None or e.lifecycle == wanted
    ]
    if any(c.kind == "tag" for c in clauses):
        found = [s.experiments.get(ctx, e.id) for e in found]

    def value_of(exp: Experiment) -> Any:
        return lambda kind, key: exp.tags.get(key) if kind == "tag" else _experiment_field(exp, key)

    found = [e for e in found if matches(clauses, value_of(e))]
    found.sort(key=sort_key(order, _experiment_field))
    offset = _page(a.text("page_token"))
    page = found[offset : offset + max_results]
    out: dict[str, Any] = {"experiments": [_experiment(e) for e in page]}
    if offset + max_results < len(found):
        out["next_page_token"] = _token(offset + max_results)
    return out


def update_experiment(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    from keel.types import validate_name

    exp = experiment_of(s, ctx, a.text("experiment_id", required=True))
    new_name = validate_name(a.text("new_name", required=True), what="experiment name")
    with s.governor.write(
        ctx,
        Permission.EXPERIMENT_WRITE,
        "experiment.rename",
        object_type="experiment",
        object_id=exp.id,
    ) as work:
        repo = ExperimentRepository(work.session, ctx.project_id)
        if repo.by_name(new_name) is not None:
            raise MlflowError(
                f"Experiment(name={new_name}) already exists.", error_code="RESOURCE_ALREADY_EXISTS"
            )
        row = repo.get(exp.id)
        assert row is not None
        row.name = new_name
        work.details = {"from": exp.name, "to": new_name}
    return {}


def delete_experiment(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    s.experiments.delete(ctx, experiment_of(s, ctx, a.text("experiment_id", required=True)).id)
    return {}


def restore_experiment(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    s.experiments.restore(ctx, experiment_of(s, ctx, a.text("experiment_id", required=True)).id)
    return {}


def set_experiment_tag(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    exp = experiment_of(s, ctx, a.text("experiment_id", required=True))
    s.experiments.set_tag(ctx, exp.id, a.text("key", required=True), a.text("value"))
    return {}


def delete_experiment_tag(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    exp = experiment_of(s, ctx, a.text("experiment_id", required=True))
    key = a.text("key", required=True)
    with s.governor.write(
        ctx,
        Permission.EXPERIMENT_WRITE,
        "experiment.delete_tag",
        object_type="experiment",
        object_id=exp.id,
    ) as work:
        gone = work.session.execute(
            delete(ExperimentTagRow).where(
                ExperimentTagRow.experiment_id == exp.id, ExperimentTagRow.key == key
            )
        )
        if not getattr(gone, "rowcount", 0):
            raise NotFoundError(f"No tag with name: {key} in experiment {exp.id}.")
        work.details = {"key": key}
    return {}


# --- runs ----------------------------------------------------------------------------------


def _run_id(a: Args) -> str:
    return a.text("run_id") or a.text("run_uuid", required=True)


def create_run(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    """A RUNNING run; its name is also its ``mlflow.runName`` tag, as an MLflow server keeps it.

    The tag is stored (not only shown), so ``tags.mlflow.runName = '...'`` finds the run.
    """
    exp = experiment_of(s, ctx, a.text("experiment_id") or "0")
    tags = a.key_values("tags")
    run_name, tagged = a.text("run_name"), tags.get(_RUN_NAME, "")
    if run_name and tagged and run_name != tagged:
        raise MlflowError(
            f"Both 'run_name' argument and '{_RUN_NAME}' tag are specified, but with different "
            f"values (run_name='{run_name[:100]}', {_RUN_NAME}='{tagged[:100]}'). Pass one of "
            "them, or the same name in both."
        )
    name = run_name or tagged or None
    if name:
        tags[_RUN_NAME] = name
    parent = tags.get("mlflow.parentRunId") or None
    run = s.runs.create(
        ctx, experiment=exp.name, name=name, tags=tags, parent_run_id=parent, capture_env=False
    )
    if name is None:  # the server chose the name: record it as the tag too
        s.runs.set_tags(ctx, run.id, {_RUN_NAME: run.name})
    return {"run": run_json(run, [])}


def get_run(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    return {"run": runs_json(s, ctx, [s.runs.get(ctx, _run_id(a))])[0]}


def update_run(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    run_id = _run_id(a)
    status = a.text("status")
    if status and status not in _STATUSES:
        raise MlflowError(f"Invalid value '{status}' for parameter 'status'.")
    name = a.text("run_name")
    run = s.runs.get(ctx, run_id)
    if (name and name != run.name) or status in ("RUNNING", "SCHEDULED"):
        _rename_or_resume(s, ctx, run_id, name=name, resume=status in ("RUNNING", "SCHEDULED"))
    if status in ("FINISHED", "FAILED", "KILLED"):
        s.runs.end(ctx, run_id, RunStatus(status))
    return {"run_info": _run_info(s.runs.get(ctx, run_id))}


def _rename_or_resume(s: Services, ctx: Context, run_id: str, *, name: str, resume: bool) -> None:
    if len(name) > 256:
        raise MlflowError("A run name is at most 256 characters.")
    with s.governor.write(
        ctx, Permission.RUN_WRITE, "run.update", object_type="run", object_id=run_id
    ) as work:
        row = RunRepository(work.session, ctx.project_id).get(run_id)
        if row is None:
            raise NotFoundError(f"Run with id={run_id} not found")
        if name:
            row.name = name
            RunRepository(work.session, ctx.project_id).set_tags(run_id, {_RUN_NAME: name})
        if resume:
            row.status, row.end_time = RunStatus.RUNNING.value, None
        work.details = {"name": name or None, "resumed": resume}


def delete_run(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    s.runs.delete(ctx, _run_id(a))
    return {}


def restore_run(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    s.runs.restore(ctx, _run_id(a))
    return {}


def log_metric(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    key = a.text("key", required=True)
    value = a.number("value", required=True)
    assert value is not None
    metric = Metric(key, value, a.integer("step", default=0) or 0, a.integer("timestamp"))
    s.runs.log_batch(ctx, _run_id(a), metrics=[metric])
    return {}


def log_param(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    s.runs.log_params(ctx, _run_id(a), {a.text("key", required=True): a.text("value")})
    return {}


def set_tag(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    run_id, key, value = _run_id(a), a.text("key", required=True), a.text("value")
    s.runs.set_tags(ctx, run_id, {key: value})
    if key == _RUN_NAME and value:
        _rename_or_resume(s, ctx, run_id, name=value, resume=False)
    return {}


def delete_tag(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    s.runs.delete_tag(ctx, _run_id(a), a.text("key", required=True))
    return {}


def log_batch(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    raw_metrics, params, tags = a.objects("metrics"), a.key_values("params"), a.key_values("tags")
    for what, count, limit in (
        ("metrics", len(raw_metrics), MAX_METRICS),
        ("params", len(params), MAX_PARAMS),
        ("tags", len(tags), MAX_TAGS),
    ):
        if count > limit:
            raise MlflowError(
                f"A batch logging request can contain at most {limit} {what}. Got {count} "
                f"{what}. Please split up {what} across multiple requests and try again."
            )
    total = len(raw_metrics) + len(params) + len(tags)
    if total > MAX_ENTRIES:
        raise MlflowError(
            f"A batch logging request can contain at most {MAX_ENTRIES} metrics, params and "
            f"tags in total. Got {total}. Please split up the request and try again."
        )
    points = [_metric(m) for m in raw_metrics]
    s.runs.log_batch(ctx, _run_id(a), points=points, params=params, tags=tags)
    return {}


def _metric(m: dict[str, Any]) -> tuple[str, float, int, int | None]:
    """One metric of a batch as ``(key, value, step, timestamp)``.

    Steps and timestamps come as numbers or numeric strings.
    """
    key, value = m.get("key"), m.get("value")
    step, stamp = m.get("step", 0), m.get("timestamp")
    if type(key) is not str or not key:
        raise MlflowError("Missing value for required parameter 'metrics.key'.")
    if value is None:
        raise MlflowError(f"Missing value for required parameter 'metrics.value' of '{key}'.")
    if type(value) is not float:
        value = to_float("metrics.value", value)
    if type(step) is not int:
        step = to_int("metrics.step", step, 0)
    if stamp is not None and type(stamp) is not int:
        stamp = to_int("metrics.timestamp", stamp, 0)
    return (key, value, step, stamp or None)


def log_inputs(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    items: list[tuple[str, dict[str, Any]]] = []
    for d in a.objects("datasets"):
        dataset = d.get("dataset") or {}
        if not isinstance(dataset, dict) or not dataset.get("name"):
            raise MlflowError("Missing value for required parameter 'datasets.dataset.name'.")
        items.append((f"{dataset['name']}:{dataset.get('digest', '')}"[:250], d))
    models = [(str(m.get("model_id", ""))[:250], m) for m in a.objects("models")]
    _record_io(s, ctx, _run_id(a), [("dataset", items), ("model_input", models)])
    return {}


def log_outputs(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    models = [(str(m.get("model_id", ""))[:250], m) for m in a.objects("models")]
    _record_io(s, ctx, _run_id(a), [("model_output", models)])
    return {}


def _record_io(
    s: Services, ctx: Context, run_id: str, groups: list[tuple[str, list[tuple[str, Any]]]]
) -> None:
    with s.governor.write(
        ctx, Permission.RUN_WRITE, "run.log_io", object_type="run", object_id=run_id
    ) as work:
        if RunRepository(work.session, ctx.project_id).get(run_id) is None:
            raise NotFoundError(f"Run with id={run_id} not found")
        repo = MlflowRepository(work.session, ctx.project_id)
        for kind, items in groups:
            if items:
                repo.add_io(run_id, kind, items)
        work.details = {kind: len(items) for kind, items in groups}
