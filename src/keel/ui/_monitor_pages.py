"""Monitoring: drift per feature over time with histograms, quality and label coverage,
latency, alerts (keel.monitoring), and traffic from the prediction logs of each deployment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from keel.errors import NotFoundError
from keel.ui._charts import Bar, histogram_bars, value_histogram
from keel.ui._predictions import MAX_HOURS, summarize_predictions
from keel.ui._web import PREFIX, PageRoute, Viewer, ViewerDep, render

if TYPE_CHECKING:
    from keel.monitoring import MonitorService

__all__ = ["router"]

router = APIRouter(
    prefix=PREFIX + "/p/{project}/monitoring", route_class=PageRoute, include_in_schema=False
)
Name = Annotated[str, Path(min_length=1, max_length=256)]
HISTORY = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _monitors(viewer: Viewer) -> MonitorService | None:
    return viewer.ui.services.monitors


@router.get("")
def monitoring(viewer: ViewerDep) -> Response:
    ui, ctx = viewer.ui, viewer.ctx
    service = _monitors(viewer)
    monitors: list[dict[str, Any]] = []
    alerts: list[Any] = []
    if service is not None:
        for watcher in service.list(ctx):
            latest = service.reports(ctx, watcher.name, limit=1)
            monitors.append({"monitor": watcher, "latest": latest[0] if latest else None})
        alerts = service.alerts.list(ctx, limit=50)
    # The overview reads no prediction log: traffic comes from each deployment's latest
    # monitor report (the deployment's own page reads the logs, bounded).
    latest_of = {
        m["monitor"].deployment: m["latest"]
        for m in sorted(monitors, key=lambda m: m["latest"].created_at if m["latest"] else _EPOCH)
        if m["monitor"].deployment and m["latest"] is not None
    }
    rows = []
    for found in ui.deployments.list(ctx):
        analysed = [r for r in ui.deployments.revisions(ctx, found.name) if r.analysis]
        report = latest_of.get(found.name)
        p95 = (
            [v for v in (x.get("p95_ms") for x in report.latency) if v is not None]
            if report
            else []
        )
        rows.append(
            {
                "deployment": found,
                "report": report,
                "p95": max(p95) if p95 else None,
                "analysis": analysed[-1] if analysed else None,
            }
        )
    return render(
        viewer,
        viewer.request,
        "monitoring.html",
        title="Monitoring",
        rows=rows,
        monitors=monitors,
        alerts=sorted(alerts, key=lambda a: (a.state != "firing", a.state != "pending")),
        available=service is not None,
    )


def _bars(histogram: dict[str, Any] | None) -> list[Bar]:
    """Reference and current shares side by side, labelled by bin edges or categories."""
    if not histogram:
        return []
    if "categories" in histogram:
        labels = [str(c) for c in histogram["categories"]]
    else:
        edges = histogram.get("edges") or []
        labels = [f"{edges[i]:.3g} to {edges[i + 1]:.3g}" for i in range(len(edges) - 1)]
    groups = [histogram.get("reference") or [], histogram.get("current") or []]
    return histogram_bars(labels, [[float(v or 0) for v in g] for g in groups])


@router.get("/monitors/{name}")
def monitor(
    name: Name,
    viewer: ViewerDep,
    report: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    service = _monitors(viewer)
    if service is None:
        raise NotFoundError("This server runs without keel.monitoring; no monitor can be shown.")
    ctx = viewer.ctx
    found = service.get(ctx, name)
    history = service.reports(ctx, name, limit=HISTORY)  # newest first
    shown = next((r for r in history if r.id == report), history[0] if history else None)
    if report and (shown is None or shown.id != report):
        shown = service.report(ctx, report)
    features = list((shown.drift or {}).get("features", [])) if shown else []
    prediction = (shown.drift or {}).get("prediction") if shown else None
    if prediction and prediction.get("histogram"):
        features.append(prediction)
    oldest_first = list(reversed(history))
    names = sorted(
        {f["feature"] for r in oldest_first for f in (r.drift or {}).get("features", [])}
    )
    chart = {
        "title": "drift per feature",
        "x": list(range(len(oldest_first))),
        "xlabels": [r.created_at.strftime("%m-%d %H:%M") for r in oldest_first],
        "series": [
            {
                "label": feature,
                "color": i,
                "values": [
                    next(
                        (
                            f.get("value")
                            for f in (r.drift or {}).get("features", [])
                            if f["feature"] == feature
                        ),
                        None,
                    )
                    for r in oldest_first
                ],
            }
            for i, feature in enumerate(names)
        ],
    }
    return render(
        viewer,
        viewer.request,
        "monitor.html",
        title=f"Monitor {name}",
        monitor=found,
        history=history,
        shown=shown,
        features=[{"f": f, "bars": _bars(f.get("histogram"))} for f in features],
        names=names,
        chart=chart,
        alerts=service.alerts.list(ctx, monitor=name, limit=50),
    )


@router.get("/deployments/{name}")
def monitored(
    name: Name, viewer: ViewerDep, hours: Annotated[int, Query(ge=1, le=MAX_HOURS)] = 24
) -> Response:
    ui, ctx = viewer.ui, viewer.ctx
    found = ui.deployments.get(ctx, name)
    summary = summarize_predictions(viewer, name, hours=hours)
    labels, shares = value_histogram(summary.latencies, bins=20)
    revisions = sorted(ui.deployments.revisions(ctx, name), key=lambda r: -r.revision)
    chart = {
        "title": "requests and p95 latency per hour",
        "x": list(range(len(summary.hourly))),
        "xlabels": [h for h, _n, _p in summary.hourly],
        "series": [
            {"label": "requests", "color": 0, "values": [n for _h, n, _p in summary.hourly]},
            {"label": "p95 ms", "color": 1, "values": [p for _h, _n, p in summary.hourly]},
        ],
    }
    return render(
        viewer,
        viewer.request,
        "monitored.html",
        title=f"Monitoring {name}",
        deployment=found,
        summary=summary,
        hours=hours,
        chart=chart,
        latency_bars=histogram_bars(labels, [shares]),
        analyses=[r for r in revisions if r.analysis],
    )
