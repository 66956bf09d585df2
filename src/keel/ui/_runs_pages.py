"""Experiments and runs: the run table (the SDK's filter language), run detail, comparison."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from keel.errors import InvalidInputError, NotFoundError
from keel.lineage import Node
from keel.tracking import Run
from keel.ui._curves import curves_of
from keel.ui._nodes import NodeNames
from keel.ui._web import PREFIX, PageRoute, Viewer, ViewerDep, attachment, render

__all__ = ["router"]

router = APIRouter(prefix=PREFIX + "/p/{project}", route_class=PageRoute, include_in_schema=False)

PAGE_SIZES = (25, 50, 100, 200)
MAX_COMPARE = 20
MAX_CHARTS = 6
MAX_METRIC_COLUMNS = 12
MAX_PARAM_COLUMNS = 8
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _sort_key(prefix: str, key: str) -> str:
    """``metrics.auc``, or with backticks a key the filter language cannot read bare."""
    return f"{prefix}.{key}" if _PLAIN_KEY.match(key) else f"{prefix}.`{key.replace('`', '')}`"


@router.get("/experiments")
def experiments(viewer: ViewerDep) -> Response:
    found = viewer.ui.services.experiments.list(viewer.ctx)
    return render(viewer, viewer.request, "experiments.html", title="Experiments", items=found)


@router.get("/runs")
def runs(
    viewer: ViewerDep,
    experiment: Annotated[str | None, Query(max_length=256)] = None,
    filter: Annotated[str | None, Query(max_length=4000)] = None,
    order: Annotated[str | None, Query(max_length=300)] = None,
    page_token: Annotated[str | None, Query(max_length=100)] = None,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    s = viewer.ui.services
    problem = ""
    found: list[Run] = []
    next_token: str | None = None
    try:
        page = s.runs.search(
            viewer.ctx,
            filter or None,
            experiments=[experiment] if experiment else None,
            order_by=order or None,
            max_results=size,
            page_token=page_token or None,
        )
        found, next_token = page.runs, page.next_page_token
    except (InvalidInputError, NotFoundError) as exc:
        problem = str(exc)
    metric_keys = sorted({k for r in found for k in r.metrics})[:MAX_METRIC_COLUMNS]
    param_keys = sorted({k for r in found for k in r.params})[:MAX_PARAM_COLUMNS]
    names = {e.id: e.name for e in s.experiments.list(viewer.ctx)}
    return render(
        viewer,
        viewer.request,
        "runs.html",
        status=400 if problem else 200,
        title="Runs",
        runs=found,
        problem=problem,
        experiment=experiment or "",
        filter=filter or "",
        order=order or "",
        size=size,
        sizes=PAGE_SIZES,
        next_token=next_token,
        page_token=page_token or "",
        metric_keys=metric_keys,
        param_keys=param_keys,
        experiments=names,
        sort_key=_sort_key,
        max_compare=MAX_COMPARE,
    )


def _short(value: float) -> float:
    """Six significant digits: what a chart can show, at half the JSON."""
    return float(f"{value:.6g}")


def _shorts(values: list[float | None]) -> list[float | None]:
    return [None if v is None else float(f"{v:.6g}") for v in values]


def _charts(viewer: Viewer, runs: list[Run], keys: list[str]) -> list[dict[str, Any]]:
    charts = []
    for key in keys:
        curves = curves_of(viewer, runs, key)
        charts.append(
            {
                "key": key,
                "data": {
                    "title": key,
                    "x": [_short(v) for v in curves.x],
                    "series": [
                        {"label": r.name, "color": i, "values": _shorts(curves.series[r.id])}
                        for i, r in enumerate(runs)
                        if r.id in curves.series
                    ],
                },
                "points": curves.points_in,
                "downsampled": curves.downsampled,
            }
        )
    return charts


def _chosen(requested: list[str], available: list[str], default: int) -> list[str]:
    picked = [k for k in requested if k in available] if requested else available[:default]
    return list(dict.fromkeys(picked))[:MAX_CHARTS]


@router.get("/runs/{run_id}")
def run_detail(
    run_id: str,
    viewer: ViewerDep,
    metric: Annotated[list[str] | None, Query(max_length=500)] = None,
) -> Response:
    s = viewer.ui.services
    run = s.runs.get(viewer.ctx, run_id)
    experiment = s.experiments.get(viewer.ctx, run.experiment_id)
    artifacts = s.runs.artifacts(viewer.ctx, run_id)
    keys = sorted(run.metrics)
    charts = _charts(viewer, [run], _chosen(metric or [], keys, 4))
    graph = s.lineage.graph(viewer.ctx, Node("run", run.id), depth=1, direction="both")
    names = NodeNames(viewer, graph.upstream + graph.downstream)
    inputs = [names.link(e.upstream) for e in graph.upstream]
    outputs = [names.link(e.downstream) for e in graph.downstream]
    environment = json.dumps(run.environment or {}, indent=2, sort_keys=True, default=str)
    return render(
        viewer,
        viewer.request,
        "run.html",
        title=f"Run {run.name}",
        run=run,
        experiment=experiment,
        artifacts=artifacts,
        charts=charts,
        metric_keys=keys,
        inputs=inputs,
        outputs=outputs,
        environment=environment,
    )


@router.get("/runs/{run_id}/artifacts/{path:path}")
def artifact(run_id: str, path: str, viewer: ViewerDep) -> Response:
    data = viewer.ui.services.runs.read_artifact(viewer.ctx, run_id, path)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "content-disposition": attachment(path),
            "content-security-policy": "default-src 'none'; sandbox",
        },
    )


_RUN_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def _runs_by_id(viewer: Viewer, ids: list[str]) -> list[Run]:
    """The runs of ``ids`` in that order, with one search (deleted ones too)."""
    bad = [i for i in ids if not _RUN_ID.match(i)]
    if bad:
        raise InvalidInputError(f"{bad[0][:80]!r} is not a run id.", run_id=bad[0][:80])
    listed = ", ".join(f"'{i}'" for i in ids)
    page = viewer.ui.services.runs.search(
        viewer.ctx, f"attributes.run_id IN ({listed})", max_results=len(ids), include_deleted=True
    )
    by_id = {r.id: r for r in page.runs}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise NotFoundError(
            f"Run '{missing[0]}' does not exist in project '{viewer.ctx.project_name}'.",
            run_id=missing[0],
        )
    return [by_id[i] for i in ids]


@router.get("/compare")
def compare(
    viewer: ViewerDep,
    run: Annotated[list[str] | None, Query(max_length=64)] = None,
    metric: Annotated[list[str] | None, Query(max_length=500)] = None,
) -> Response:
    ids = list(dict.fromkeys(run or []))
    if not ids:
        raise InvalidInputError(
            "Pick the runs to compare: tick up to 20 runs in the run table, then press Compare."
        )
    if len(ids) > MAX_COMPARE:
        raise InvalidInputError(
            f"At most {MAX_COMPARE} runs can be compared at once; {len(ids)} were picked. "
            "Untick some and compare again."
        )
    found = _runs_by_id(viewer, ids)
    metric_keys = sorted({k for r in found for k in r.metrics})
    param_keys = sorted({k for r in found for k in r.params})
    common = [k for k in metric_keys if all(k in r.metrics for r in found)]
    charts = _charts(viewer, found, _chosen(metric or [], metric_keys, 1) or common[:1])
    differs = {
        **{f"p:{k}": len({r.params.get(k) for r in found}) > 1 for k in param_keys},
        **{f"m:{k}": len({r.metrics.get(k) for r in found}) > 1 for k in metric_keys},
    }
    return render(
        viewer,
        viewer.request,
        "compare.html",
        title="Compare runs",
        runs=found,
        metric_keys=metric_keys,
        param_keys=param_keys,
        charts=charts,
        chosen=[c["key"] for c in charts],
        differs=differs,
    )
