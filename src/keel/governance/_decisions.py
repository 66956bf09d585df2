"""Policy decisions as values, the error a denying gate raises, and how a decision is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from keel import clock
from keel.errors import PermissionDeniedError
from keel.governance._audit import AuditLog
from keel.governance._context import Context
from keel.governance._policy_rules import Evaluation
from keel.governance._secrets import redact_mapping
from keel.store import PolicyRepository
from keel.store._schema_policy import PolicyDecisionRow
from keel.types import new_id

__all__ = ["PolicyDecision", "PolicyDeniedError", "record_decision", "to_decision"]


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """What a gate decided about a subject, why, on what evidence, under which policies."""

    id: str
    gate: str
    subject: str
    allowed: bool
    reasons: tuple[str, ...]
    evidence: dict[str, Any]
    policies: tuple[str, ...]
    principal: str
    request_id: str
    created_at: datetime
    approval_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "gate": self.gate,
            "subject": self.subject,
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "evidence": self.evidence,
            "policies": list(self.policies),
            "principal": self.principal,
            "request_id": self.request_id,
            "created_at": self.created_at.isoformat(),
            "approval_id": self.approval_id,
        }


class PolicyDeniedError(PermissionDeniedError):
    """A gate's policies denied the action; ``details`` carry the decision and its reasons."""

    code = "POLICY_DENIED"


def to_decision(row: PolicyDecisionRow, approval_id: str | None = None) -> PolicyDecision:
    return PolicyDecision(
        id=row.id,
        gate=row.gate,
        subject=row.subject,
        allowed=row.allowed,
        reasons=tuple(row.reasons),
        evidence=dict(row.evidence),
        policies=tuple(row.policies),
        principal=row.principal,
        request_id=row.request_id,
        created_at=row.created_at,
        approval_id=approval_id,
    )


def record_decision(
    session: Session,
    audit: AuditLog,
    ctx: Context,
    *,
    gate: str,
    subject: str,
    evaluation: Evaluation,
    policies: list[str],
) -> PolicyDecisionRow:
    """Store the decision and append its audit event, in the caller's transaction."""
    row = PolicyRepository(session, ctx.project_id).add_decision(
        PolicyDecisionRow(
            id=new_id(),
            project_id=ctx.project_id,
            gate=gate,
            subject=subject,
            allowed=evaluation.allowed,
            reasons=list(evaluation.reasons),
            evidence=redact_mapping(evaluation.evidence),
            policies=policies,
            principal=ctx.principal,
            request_id=ctx.request_id,
            created_at=clock.now(),
        )
    )
    audit.append(
        session,
        ctx,
        "policy.decide",
        object_type="policy_decision",
        object_id=row.id,
        outcome="allowed" if evaluation.allowed else "denied",
        details={
            "gate": gate,
            "subject": subject,
            "policies": policies,
            "reasons": list(evaluation.reasons)[:20],
        },
    )
    return row
