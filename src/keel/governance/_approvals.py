"""Human sign-off: approval requests that gates open, approved or rejected by someone else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from keel import clock
from keel.errors import ConflictError, NotFoundError, PermissionDeniedError
from keel.governance._context import Context
from keel.governance._governor import Governor
from keel.governance._permissions import Permission
from keel.store import ApprovalRepository
from keel.store._schema_policy import ApprovalRequestRow

__all__ = ["ApprovalRequest", "ApprovalService", "approvals_for"]


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A request for sign-off and the votes it has received."""

    id: str
    gate: str
    subject: str
    requester: str
    required: int
    status: str
    summary: str
    created_at: datetime
    decided_at: datetime | None
    votes: tuple[dict[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "gate": self.gate,
            "subject": self.subject,
            "requester": self.requester,
            "required": self.required,
            "status": self.status,
            "summary": self.summary,
            "created_at": self.created_at.isoformat(),
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
            "votes": list(self.votes),
        }


def _value(repo: ApprovalRepository, row: ApprovalRequestRow) -> ApprovalRequest:
    return ApprovalRequest(
        id=row.id,
        gate=row.gate,
        subject=row.subject,
        requester=row.requester,
        required=row.required,
        status=row.status,
        summary=row.summary,
        created_at=row.created_at,
        decided_at=row.decided_at,
        votes=tuple(
            {
                "principal": v.principal,
                "decision": v.decision,
                "comment": v.comment,
                "decided_at": v.decided_at.isoformat(),
            }
            for v in repo.votes(row.id)
        ),
    )


def approvals_for(
    session: Session, ctx: Context, gate: str, subject: str
) -> tuple[list[str], ApprovalRequestRow | None]:
    """Approvers of ``subject`` at ``gate`` (rejected requests count for nothing) and the
    pending request, if one is open."""
    repo = ApprovalRepository(session, ctx.project_id)
    approvers: set[str] = set()
    pending = None
    for row in repo.for_subject(gate, subject):
        if row.status == "rejected":
            continue
        if row.status == "pending":
            pending = row
        approvers |= {v.principal for v in repo.votes(row.id) if v.decision == "approve"}
    return sorted(approvers), pending


class ApprovalService:
    """Lists approval requests and records approve/reject votes (APPROVAL_DECIDE)."""

    def __init__(self, governor: Governor) -> None:
        self._gov = governor

    def list(self, ctx: Context, *, status: str | None = "pending") -> list[ApprovalRequest]:
        with self._gov.read(
            ctx, Permission.POLICY_READ, "approval.list", object_type="approval"
        ) as session:
            repo = ApprovalRepository(session, ctx.project_id)
            return [_value(repo, row) for row in repo.find(status=status)]

    def get(self, ctx: Context, request_id: str) -> ApprovalRequest:
        with self._gov.read(
            ctx, Permission.POLICY_READ, "approval.read", object_type="approval"
        ) as session:
            repo = ApprovalRepository(session, ctx.project_id)
            return _value(repo, _row(repo, request_id))

    def approve(self, ctx: Context, request_id: str, *, comment: str = "") -> ApprovalRequest:
        """Approve; the request is approved once enough distinct principals have."""
        return self._vote(ctx, request_id, "approve", comment)

    def reject(self, ctx: Context, request_id: str, *, comment: str = "") -> ApprovalRequest:
        """Reject; one rejection closes the request (the gate must ask again)."""
        return self._vote(ctx, request_id, "reject", comment)

    def _vote(self, ctx: Context, request_id: str, decision: str, comment: str) -> ApprovalRequest:
        with self._gov.write(
            ctx,
            Permission.APPROVAL_DECIDE,
            f"approval.{decision}",
            object_type="approval",
            object_id=request_id,
        ) as work:
            repo = ApprovalRepository(work.session, ctx.project_id)
            row = _row(repo, request_id, lock=True)
            if row.status != "pending":
                raise ConflictError(
                    f"Approval request {request_id} is already {row.status}; only pending "
                    "requests take votes. Retry the gated action to open a new one.",
                    request_id=request_id,
                )
            if ctx.principal == row.requester:
                raise PermissionDeniedError(
                    f"{ctx.principal} asked for approval {request_id} and so cannot decide it: "
                    "a second person must approve or reject it.",
                    principal=ctx.principal,
                    request_id=request_id,
                )
            if any(v.principal == ctx.principal for v in repo.votes(row.id)):
                raise ConflictError(
                    f"{ctx.principal} has already voted on approval request {request_id}.",
                    request_id=request_id,
                )
            repo.add_vote(row.id, ctx.principal, decision, comment[:2000])
            approvals = sum(1 for v in repo.votes(row.id) if v.decision == "approve")
            if decision == "reject":
                row.status, row.decided_at = "rejected", clock.now()
            elif approvals >= row.required:
                row.status, row.decided_at = "approved", clock.now()
            work.session.flush()
            work.object_id = row.id
            work.details = {"gate": row.gate, "subject": row.subject, "status": row.status}
            return _value(repo, row)


def _row(repo: ApprovalRepository, request_id: str, *, lock: bool = False) -> ApprovalRequestRow:
    row = repo.get(request_id, lock=lock)
    if row is None:
        raise NotFoundError(
            f"Approval request '{request_id}' does not exist in this project. List them with "
            "`keel approvals list`.",
            request_id=request_id,
        )
    return row
