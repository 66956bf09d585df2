"""Routes of the audit trail and the lineage graph (project-scoped reads)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import JSONResponse, StreamingResponse

from keel.errors import InvalidInputError
from keel.governance import Permission
from keel.lineage import parse_node
from keel.server._deps import Caller, ServicesDep, ok
from keel.store import AuditQuery

__all__ = ["audit", "lineage"]

_NODE_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,256}$")
audit = APIRouter(prefix="/api/v1/projects/{project}/audit", tags=["audit"])
lineage = APIRouter(prefix="/api/v1/projects/{project}/lineage", tags=["lineage"])


@audit.get("/events")
def events(
    ctx: Caller,
    s: ServicesDep,
    principal: Annotated[str | None, Query(max_length=256)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=256)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JSONResponse:
    """The project's audit events, oldest first (the newest ``limit``)."""
    s.governor.check(ctx, Permission.AUDIT_READ, action="audit.read", object_type="audit")
    query = AuditQuery(
        project_id=ctx.project_id,  # never another project's events
        principal=principal,
        action=action,
        object_id=object_id,
        since=since,
        until=until,
        limit=limit,
    )
    return ok(s.audit.events(query))


@audit.get("/verify")
def verify(ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Walk the whole chain; names the first broken event, if any."""
    s.governor.check(ctx, Permission.AUDIT_READ, action="audit.verify", object_type="audit")
    report = s.audit.verify()
    return ok(
        {
            "ok": report.ok,
            "checked": report.checked,
            "head_seq": report.head_seq,
            "broken": report.broken,
        }
    )


@audit.get("/export")
def export(ctx: Caller, s: ServicesDep) -> StreamingResponse:
    """The project's events as JSON lines."""
    import json

    s.governor.check(ctx, Permission.AUDIT_READ, action="audit.export", object_type="audit")
    found = s.audit.events(AuditQuery(project_id=ctx.project_id))

    def lines() -> Iterator[bytes]:
        for event in found:
            yield (json.dumps(event.to_dict(), sort_keys=True) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@lineage.get("/{node}")
def graph(
    node: Annotated[str, Path(min_length=3, max_length=300, description="TYPE:ID")],
    ctx: Caller,
    s: ServicesDep,
    depth: Annotated[int, Query(ge=1, le=50)] = 10,
    direction: Annotated[str, Query(pattern="^(up|down|both)$")] = "both",
) -> JSONResponse:
    target = parse_node(node)
    if not _NODE_ID.match(target.id):
        raise InvalidInputError(
            f"Invalid lineage node id {target.id[:80]!r}: ids use letters, digits and '_.:@-'.",
            node=node[:80],
        )
    return ok(s.lineage.graph(ctx, target, depth=depth, direction=direction))
