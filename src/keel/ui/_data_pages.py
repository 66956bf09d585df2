"""Datasets: versions, schema, column statistics, labels, validation reports and diffs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from keel.errors import NotFoundError
from keel.ui._web import PREFIX, PageRoute, ViewerDep, render

__all__ = ["router"]

router = APIRouter(
    prefix=PREFIX + "/p/{project}/datasets", route_class=PageRoute, include_in_schema=False
)
Name = Annotated[str, Path(min_length=1, max_length=256)]
VersionNo = Annotated[int, Path(ge=1, lt=2**31)]


@router.get("")
def datasets(viewer: ViewerDep) -> Response:
    found = viewer.ui.datasets.list(viewer.ctx)
    return render(viewer, viewer.request, "datasets.html", title="Datasets", items=found)


@router.get("/{name}")
def dataset(name: Name, viewer: ViewerDep) -> Response:
    ui, ctx = viewer.ui, viewer.ctx
    found = ui.datasets.get(ctx, name)
    versions = ui.datasets.versions(ctx, name)
    return render(
        viewer,
        viewer.request,
        "dataset.html",
        title=f"Dataset {name}",
        dataset=found,
        versions=sorted(versions, key=lambda v: -v.version),
    )


@router.get("/{name}/v/{version}")
def dataset_version(name: Name, version: VersionNo, viewer: ViewerDep) -> Response:
    ui, ctx = viewer.ui, viewer.ctx
    found = ui.datasets.version(ctx, name, version)
    reports = ui.gate.reports(ctx, name, version)
    labels = (found.classification or {}).get("columns", {})
    columns = [
        {
            "name": column,
            "type": dtype,
            "stats": found.stats.get(column, {}),
            "label": labels.get(column),
        }
        for column, dtype in found.schema
    ]
    return render(
        viewer,
        viewer.request,
        "dataset_version.html",
        title=f"{name} v{version}",
        version=found,
        columns=columns,
        reports=reports,
        stat_names=("count", "nulls", "min", "max", "min_length", "max_length", "mean", "std"),
    )


@router.get("/{name}/reports/{report_id}")
def report(name: Name, report_id: str, viewer: ViewerDep) -> Response:
    ui, ctx = viewer.ui, viewer.ctx
    for version in ui.datasets.versions(ctx, name):
        for stored in ui.gate.reports(ctx, name, version.version):
            if stored.id == report_id:
                checks = sorted(
                    stored.result.get("checks", []),
                    key=lambda c: (bool(c.get("passed")), c.get("level") != "error"),
                )
                return render(
                    viewer,
                    viewer.request,
                    "report.html",
                    title="Validation report",
                    report=stored,
                    checks=checks,
                )
    raise NotFoundError(
        f"Dataset '{name[:80]}' has no validation report '{report_id[:40]}'.",
        dataset=name[:80],
    )


@router.get("/{name}/diff")
def diff(
    name: Name,
    viewer: ViewerDep,
    before: Annotated[int, Query(ge=1, lt=2**31)],
    after: Annotated[int, Query(ge=1, lt=2**31)],
) -> Response:
    changes = viewer.ui.datasets.diff(viewer.ctx, name, before, after)
    return render(
        viewer,
        viewer.request,
        "diff.html",
        title=f"{name}: v{before} → v{after}",
        name=name,
        diff=changes,
    )
