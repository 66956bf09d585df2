"""Governance: the audit log with chain status, policies and decisions, the approvals queue."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query
from starlette.responses import RedirectResponse, Response

from keel.governance import Permission
from keel.store import AuditQuery
from keel.ui._web import PREFIX, PageRoute, ViewerDep, page_headers, render

__all__ = ["router"]

router = APIRouter(
    prefix=PREFIX + "/p/{project}/governance", route_class=PageRoute, include_in_schema=False
)
RequestId = Annotated[str, Path(min_length=1, max_length=64)]
_OUTCOMES = ("", "success", "denied", "failure")


def _clean(text: str | None) -> str | None:
    return text.strip() if text and text.strip() else None


@router.get("")
def overview(viewer: ViewerDep) -> Response:
    target = "audit" if viewer.can(Permission.AUDIT_READ) else "policies"
    return RedirectResponse(
        f"{viewer.base}/governance/{target}", status_code=303, headers=page_headers()
    )


@router.get("/audit")
def audit(
    viewer: ViewerDep,
    principal: Annotated[str | None, Query(max_length=256)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=256)] = None,
    outcome: Annotated[str, Query(pattern="^(success|denied|failure|)$")] = "",
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    verify: bool = False,
) -> Response:
    """The audit events; the hash chain is walked only on request (``verify=1``), as it reads
    every event ever recorded."""
    s, ctx = viewer.ui.services, viewer.ctx
    s.governor.check(ctx, Permission.AUDIT_READ, action="audit.read", object_type="audit")
    query = AuditQuery(
        project_id=ctx.project_id,  # never another project's events
        principal=_clean(principal),
        action=_clean(action),
        object_id=_clean(object_id),
        outcome=outcome or None,
        until=until,
        limit=limit,
    )
    events = list(reversed(s.audit.events(query)))
    chain = None
    if verify:
        s.governor.check(ctx, Permission.AUDIT_READ, action="audit.verify", object_type="audit")
        chain = s.audit.verify()
    older = events[-1].occurred_at if len(events) == limit else None
    return render(
        viewer,
        viewer.request,
        "audit.html",
        title="Audit log",
        events=events,
        chain=chain,
        principal=principal or "",
        action=action or "",
        object_id=object_id or "",
        outcome=outcome,
        outcomes=_OUTCOMES,
        limit=limit,
        older=older,
        as_json=lambda value: json.dumps(value, sort_keys=True, default=str)[:2000],
    )


@router.get("/policies")
def policies(
    viewer: ViewerDep,
    gate: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    s, ctx = viewer.ui.services, viewer.ctx
    found = s.policies.list(ctx)
    decisions = s.policies.decisions(ctx, gate=_clean(gate), subject=_clean(subject), limit=200)
    return render(
        viewer,
        viewer.request,
        "policies.html",
        title="Policies and decisions",
        policies=found,
        decisions=decisions,
        gate=gate or "",
        subject=subject or "",
        as_json=lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)[:20_000],
    )


@router.get("/approvals")
def approvals(
    viewer: ViewerDep,
    status: Annotated[str, Query(pattern="^(pending|approved|rejected|all)$")] = "pending",
) -> Response:
    found = viewer.ui.services.approvals.list(
        viewer.ctx, status=None if status == "all" else status
    )
    return render(
        viewer,
        viewer.request,
        "approvals.html",
        title="Approvals",
        requests=found,
        show=status,
        may_decide=viewer.can(Permission.APPROVAL_DECIDE),
    )


@router.post("/approvals/{request_id}/{verdict}")
def decide(
    request_id: RequestId,
    verdict: Annotated[str, Path(pattern="^(approve|reject)$")],
    viewer: ViewerDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    viewer.check_csrf(csrf)
    service = viewer.ui.services.approvals
    if verdict == "approve":
        service.approve(viewer.ctx, request_id, comment=comment.strip())
    else:
        service.reject(viewer.ctx, request_id, comment=comment.strip())
    return RedirectResponse(
        f"{viewer.base}/governance/approvals?status=all", status_code=303, headers=page_headers()
    )


@router.get("/erasures")
def erasures(viewer: ViewerDep) -> Response:
    """Erasure requests and retention runs (compliance administrators only)."""
    found = viewer.ui.erasures.erasures(viewer.ctx, limit=200)
    return render(viewer, viewer.request, "erasures.html", title="Erasures", erasures=found)
