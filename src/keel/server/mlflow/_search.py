"""MLflow's run search and metric history, answered by RunService.search and metric_history."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

from keel.governance import Context
from keel.server.mlflow._tracking import _page, _run_id, _token, experiment_of, runs_json
from keel.server.mlflow._wire import Args, MlflowError, float_json

if TYPE_CHECKING:
    from keel.server._deps import Services

__all__ = ["metric_history", "metric_history_bulk", "search_runs"]

_VIEWS = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
MAX_BULK_RUNS, MAX_BULK_STEPS = 100, 2500  # MLflow's limits of get-history-bulk-interval


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
    """Several runs' history of one metric at sampled steps, as an MLflow server samples them.

    The steps are sampled from the steps any of the runs logged within [start_step, end_step]
    (0 to the highest step when neither is given): every step when there are at most
    ``max_results`` (default 2,500), else ``max_results`` evenly spaced ones and the last; each
    run's own first and last step in the range are always kept. Each run then returns its
    values at those steps, by step then time, thinned evenly to at most that many rows.
    """
    run_ids = [str(r) for r in a.items("run_ids")]
    if not run_ids:
        raise MlflowError("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > MAX_BULK_RUNS:
        raise MlflowError(
            f"GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} "
            f"run_ids. Received {len(run_ids)} run_ids."
        )
    key = a.text("metric_key", required=True)
    start, end = a.integer("start_step"), a.integer("end_step")
    max_results = a.integer("max_results", default=MAX_BULK_STEPS)
    assert max_results is not None
    if not 1 <= max_results <= MAX_BULK_STEPS:
        raise MlflowError(f"max_results must be between 1 and {MAX_BULK_STEPS}.")
    if (start is None) != (end is None):
        raise MlflowError("If either start step or end step are specified, both must be specified.")
    if start is not None and end is not None and start > end:
        raise MlflowError(
            "end_step must be greater than start_step. "
            f"Found start_step={start} and end_step={end}."
        )
    histories = {run_id: s.runs.metric_history(ctx, run_id, key) for run_id in run_ids}
    steps = _sampled_steps(
        [[m.step for m in h] for h in histories.values()], start, end, max_results
    )
    out: list[dict[str, Any]] = []
    for run_id, history in histories.items():
        kept = [m for m in history if m.step in steps]  # already by step, then time
        out.extend(
            {
                "key": key,
                "value": float_json(kept[i].value),
                "timestamp": kept[i].timestamp,
                "step": kept[i].step,
                "run_id": run_id,
            }
            for i in _evenly_spaced(len(kept), max(max_results, len(steps)))
        )
    return {"metrics": out}


def _sampled_steps(
    runs: list[list[int]], start: int | None, end: int | None, max_results: int
) -> set[int]:
    every = sorted({step for steps in runs for step in steps})
    if start is None or end is None:
        start, end = 0, (every[-1] if every else 0)
    edges = {step for steps in runs if steps for step in (min(steps), max(steps))}
    in_range = every[bisect.bisect_left(every, start) : bisect.bisect_right(every, end)]
    if len(in_range) <= max_results:
        sampled = set(in_range)
    else:
        interval = len(in_range) / max_results
        sampled = {in_range[int(i * interval)] for i in range(max_results)} | {in_range[-1]}
    return sampled | {step for step in edges if start <= step <= end}


def _evenly_spaced(total: int, limit: int) -> list[int]:
    """At most ``limit`` evenly spaced indices into ``total`` items, first and last kept."""
    if total <= limit:
        return list(range(total))
    if limit == 1:
        return [total - 1]
    stride = (total - 1) / (limit - 1)
    return sorted({round(i * stride) for i in range(limit)})
