"""Deployments: traffic split per revision, canary analyses, shadow comparison, rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path
from starlette.responses import RedirectResponse, Response

from keel.errors import InvalidInputError
from keel.governance import Permission
from keel.serving import Deployment
from keel.ui._charts import histogram_bars, value_histogram
from keel.ui._predictions import summarize_predictions
from keel.ui._web import PREFIX, PageRoute, ViewerDep, page_headers, render, seg

__all__ = ["router", "traffic"]

router = APIRouter(
    prefix=PREFIX + "/p/{project}/deployments", route_class=PageRoute, include_in_schema=False
)
Name = Annotated[str, Path(min_length=1, max_length=256)]


def traffic(state: Any) -> list[dict[str, Any]]:
    """Who answers what share of requests (and who only sees mirrored copies)."""
    weight = float(state.canary_weight)
    rows = [{"role": "primary", "version": state.primary, "share": round(100 * (1 - weight), 2)}]
    if state.candidate is not None and state.phase == "rolling":
        if state.strategy == "shadow":
            rows.append({"role": "shadow (mirrored)", "version": state.candidate, "share": 0.0})
        else:
            rows.append(
                {"role": "candidate", "version": state.candidate, "share": round(100 * weight, 2)}
            )
    return rows


def can_roll_back(deployment: Deployment) -> bool:
    state = deployment.state
    return (state.phase == "rolling" and state.candidate is not None) or state.previous is not None


@router.get("")
def deployments(viewer: ViewerDep) -> Response:
    found = viewer.ui.deployments.list(viewer.ctx)
    return render(
        viewer,
        viewer.request,
        "deployments.html",
        title="Deployments",
        items=found,
        traffic=traffic,
    )


@router.get("/{name}")
def deployment(name: Name, viewer: ViewerDep) -> Response:
    ui, ctx = viewer.ui, viewer.ctx
    found = ui.deployments.get(ctx, name)
    revisions = sorted(ui.deployments.revisions(ctx, name), key=lambda r: -r.revision)
    summary = summarize_predictions(viewer, name)
    labels, shares = value_histogram(summary.latencies, bins=20)
    return render(
        viewer,
        viewer.request,
        "deployment.html",
        title=f"Deployment {name}",
        deployment=found,
        split=traffic(found.state),
        revisions=revisions,
        analyses=[r for r in revisions if r.analysis],
        summary=summary,
        latency_bars=histogram_bars(labels, [shares]),
        may_roll_back=viewer.can(Permission.DEPLOYMENT_WRITE) and can_roll_back(found),
    )


@router.get("/{name}/rollback")
def confirm_rollback(name: Name, viewer: ViewerDep) -> Response:
    """The confirmation step (a page of its own, so it works without JavaScript)."""
    found = viewer.ui.deployments.get(viewer.ctx, name)
    return render(
        viewer,
        viewer.request,
        "rollback.html",
        title=f"Roll back {name}",
        deployment=found,
        split=traffic(found.state),
        allowed=viewer.can(Permission.DEPLOYMENT_WRITE),
        possible=can_roll_back(found),
    )


@router.post("/{name}/rollback")
def rollback(
    name: Name,
    viewer: ViewerDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    viewer.check_csrf(csrf)
    if confirm != "yes":
        raise InvalidInputError(
            f"Rolling back '{name[:80]}' needs confirmation: tick 'I am sure' and submit again."
        )
    viewer.ui.deployments.rollback(
        viewer.ctx,
        name,
        reason=reason.strip() or f"Rolled back from the web UI by {viewer.ctx.principal}.",
    )
    return RedirectResponse(
        f"{viewer.base}/deployments/{seg(name)}?done=rollback",
        status_code=303,
        headers=page_headers(),
    )
