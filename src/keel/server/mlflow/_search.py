"""MLflow's run search and metric history, answered by RunService.search and metric_history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keel.governance import Context
from keel.server.mlflow._tracking import _page, _run_id, _token, experiment_of, runs_json
from keel.server.mlflow._wire import Args, MlflowError, float_json

if TYPE_CHECKING:
    from keel.server._deps import Services

__all__ = ["metric_history", "metric_history_bulk", "search_runs"]

_VIEWS = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")


def search_runs(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    view = a.text("run_view_type", default="ACTIVE_ONLY")
    if view not in _VIEWS:
        raise MlflowError(f"Invalid value '{view}' for parameter 'run_view_type'.")
    max_results = a.integer("max_results", default=1000) or 1000
    if not 1 <= max_results <= 50_000:
        raise MlflowError(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at "
            "most 50000."
        )
    experiments = [experiment_of(s, ctx, str(e)).id for e in a.items("experiment_ids")]
    order_by = [str(o) for o in a.items("order_by")]
    page = s.runs.search(
        ctx,
        a.text("filter") or None,
        experiments=experiments or None,
        order_by=order_by or None,
        max_results=max_results,
        page_token=a.text("page_token") or None,
        include_deleted=view != "ACTIVE_ONLY",
    )
    runs = page.runs
    if view == "DELETED_ONLY":
        runs = [run for run in runs if run.lifecycle == "deleted"]
    out: dict[str, Any] = {"runs": runs_json(s, ctx, runs)}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return out


def metric_history(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    run_id, key = _run_id(a), a.text("metric_key", required=True)
    history = s.runs.metric_history(ctx, run_id, key)
    max_results = a.integer("max_results") or len(history) or 1
    offset = _page(a.text("page_token"))
    page = history[offset : offset + max_results]
    out: dict[str, Any] = {
        "metrics": [
            {"key": key, "value": float_json(m.value), "timestamp": m.timestamp, "step": m.step}
            for m in page
        ]
    }
    if offset + max_results < len(history):
        out["next_page_token"] = _token(offset + max_results)
    return out


def metric_history_bulk(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    """Each run's history of one metric within [start_step, end_step], thinned evenly."""
    run_ids = [str(r) for r in a.items("run_ids")]
    if not run_ids:
        raise MlflowError("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > 100:
        raise MlflowError(
            f"GetMetricHistoryBulkInterval takes at most 100 runs; got {len(run_ids)}."
        )
    key = a.text("metric_key", required=True)
    start, end = a.integer("start_step"), a.integer("end_step")
    if (start is None) != (end is None) or (start is not None and end is not None and start > end):
        raise MlflowError("Give both start_step and end_step, with start_step <= end_step.")
    max_results = a.integer("max_results", default=320) or 320
    out: list[dict[str, Any]] = []
    for run_id in run_ids:
        history = [
            m
            for m in s.runs.metric_history(ctx, run_id, key)
            if start is None or (end is not None and start <= m.step <= end)
        ]
        steps = sorted({m.step for m in history})
        if len(steps) > max_results:
            stride = (len(steps) - 1) / (max_results - 1) if max_results > 1 else len(steps)
            keep = {steps[round(i * stride)] for i in range(max_results)} | {steps[-1]}
            history = [m for m in history if m.step in keep]
        out.extend(
            {
                "key": key,
                "value": float_json(m.value),
                "timestamp": m.timestamp,
                "step": m.step,
                "run_id": run_id,
            }
            for m in history
        )
    return {"metrics": out}
