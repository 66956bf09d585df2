"""Repositories of governance: policies, decisions, approvals, signatures, quarantine, records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_policy import (
    ApprovalRequestRow,
    ApprovalVoteRow,
    LocationRow,
    ModelSignatureRow,
    PolicyDecisionRow,
    PolicyRow,
    ProcessingRecordRow,
    QuarantineRow,
)
from keel.types import new_id

__all__ = [
    "ApprovalRepository",
    "ComplianceRepository",
    "PolicyRepository",
    "SupplyChainRepository",
]

MAX_LIST = 10_000


class PolicyRepository:
    """Policy versions and gate decisions of one project, in the caller's transaction."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def latest(self, name: str, *, lock: bool = False) -> PolicyRow | None:
        stmt = (
            select(PolicyRow)
            .where(PolicyRow.project_id == self._project_id, PolicyRow.name == name)
            .order_by(PolicyRow.version.desc())
            .limit(1)
        )
        if lock:
            stmt = stmt.with_for_update()
        return self._session.execute(stmt).scalar_one_or_none()

    def get(self, name: str, version: int) -> PolicyRow | None:
        return self._session.execute(
            select(PolicyRow).where(
                PolicyRow.project_id == self._project_id,
                PolicyRow.name == name,
                PolicyRow.version == version,
            )
        ).scalar_one_or_none()

    def add(
        self,
        *,
        name: str,
        digest: str,
        backend: str,
        source: str,
        gates: Sequence[str],
        created_by: str,
    ) -> PolicyRow:
        latest = self.latest(name, lock=True)
        if latest is not None:
            latest.is_active = False
        row = PolicyRow(
            id=new_id(),
            project_id=self._project_id,
            name=name,
            version=1 if latest is None else latest.version + 1,
            digest=digest,
            backend=backend,
            source=source,
            gates=list(gates),
            is_active=True,
            created_by=created_by,
            created_at=clock.now(),
        )
        self._session.add(row)
        self._session.flush()
        return row

    def active(self) -> list[PolicyRow]:
        stmt = (
            select(PolicyRow)
            .where(PolicyRow.project_id == self._project_id, PolicyRow.is_active.is_(True))
            .order_by(PolicyRow.name)
        )
        return list(self._session.execute(stmt).scalars())

    def all(self) -> list[PolicyRow]:
        stmt = (
            select(PolicyRow)
            .where(PolicyRow.project_id == self._project_id)
            .order_by(PolicyRow.name, PolicyRow.version)
            .limit(MAX_LIST)
        )
        return list(self._session.execute(stmt).scalars())

    def add_decision(self, row: PolicyDecisionRow) -> PolicyDecisionRow:
        row.project_id = self._project_id
        self._session.add(row)
        self._session.flush()
        return row

    def decisions(
        self,
        *,
        gate: str | None = None,
        subject: str | None = None,
        limit: int = 100,
        subject_under: str | None = None,
    ) -> list[PolicyDecisionRow]:
        """Newest first. ``subject_under`` matches that subject and every one extending it
        after a ``:`` or ``@`` (``model:churn`` matches ``model:churn:3@champion``)."""
        stmt = select(PolicyDecisionRow).where(PolicyDecisionRow.project_id == self._project_id)
        if gate is not None:
            stmt = stmt.where(PolicyDecisionRow.gate == gate)
        if subject is not None:
            stmt = stmt.where(PolicyDecisionRow.subject == subject)
        if subject_under is not None:
            column = PolicyDecisionRow.subject
            stmt = stmt.where(
                or_(
                    column == subject_under,
                    column.startswith(subject_under + ":", autoescape=True),
                    column.startswith(subject_under + "@", autoescape=True),
                )
            )
        stmt = stmt.order_by(PolicyDecisionRow.id.desc()).limit(min(limit, MAX_LIST))
        return list(self._session.execute(stmt).scalars())


class ApprovalRepository:
    """Approval requests and votes of one project."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def get(self, request_id: str, *, lock: bool = False) -> ApprovalRequestRow | None:
        stmt = select(ApprovalRequestRow).where(
            ApprovalRequestRow.project_id == self._project_id, ApprovalRequestRow.id == request_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return self._session.execute(stmt).scalar_one_or_none()

    def for_subject(self, gate: str, subject: str) -> list[ApprovalRequestRow]:
        stmt = (
            select(ApprovalRequestRow)
            .where(
                ApprovalRequestRow.project_id == self._project_id,
                ApprovalRequestRow.gate == gate,
                ApprovalRequestRow.subject == subject,
            )
            .order_by(ApprovalRequestRow.id)
        )
        return list(self._session.execute(stmt).scalars())

    def add(
        self, *, gate: str, subject: str, requester: str, required: int, summary: str
    ) -> ApprovalRequestRow:
        row = ApprovalRequestRow(
            id=new_id(),
            project_id=self._project_id,
            gate=gate,
            subject=subject,
            requester=requester,
            required=required,
            status="pending",
            summary=summary,
            created_at=clock.now(),
            decided_at=None,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def find(self, *, status: str | None = None, limit: int = 100) -> list[ApprovalRequestRow]:
        stmt = select(ApprovalRequestRow).where(ApprovalRequestRow.project_id == self._project_id)
        if status is not None:
            stmt = stmt.where(ApprovalRequestRow.status == status)
        stmt = stmt.order_by(ApprovalRequestRow.id.desc()).limit(min(limit, MAX_LIST))
        return list(self._session.execute(stmt).scalars())

    def votes(self, request_id: str) -> list[ApprovalVoteRow]:
        stmt = (
            select(ApprovalVoteRow)
            .where(ApprovalVoteRow.request_id == request_id)
            .order_by(ApprovalVoteRow.decided_at)
        )
        return list(self._session.execute(stmt).scalars())

    def add_vote(self, request_id: str, principal: str, decision: str, comment: str) -> None:
        self._session.add(
            ApprovalVoteRow(
                request_id=request_id,
                principal=principal,
                decision=decision,
                comment=comment,
                decided_at=clock.now(),
            )
        )
        self._session.flush()


class SupplyChainRepository:
    """Signatures of model versions and quarantined files of one project."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def signature(self, model_version_id: str) -> ModelSignatureRow | None:
        return self._session.execute(
            select(ModelSignatureRow).where(
                ModelSignatureRow.project_id == self._project_id,
                ModelSignatureRow.model_version_id == model_version_id,
            )
        ).scalar_one_or_none()

    def add_signature(self, row: ModelSignatureRow) -> None:
        row.project_id = self._project_id
        self._session.add(row)
        self._session.flush()

    def quarantine(
        self,
        *,
        digest: str,
        filename: str,
        verdict: str,
        findings: list[dict[str, Any]],
        status: str,
        created_by: str,
    ) -> QuarantineRow:
        row = QuarantineRow(
            id=new_id(),
            project_id=self._project_id,
            digest=digest,
            filename=filename,
            verdict=verdict,
            findings=findings,
            status=status,
            created_by=created_by,
            created_at=clock.now(),
        )
        self._session.add(row)
        self._session.flush()
        return row

    def quarantined(self, *, limit: int = 100) -> list[QuarantineRow]:
        stmt = (
            select(QuarantineRow)
            .where(QuarantineRow.project_id == self._project_id)
            .order_by(QuarantineRow.id.desc())
            .limit(min(limit, MAX_LIST))
        )
        return list(self._session.execute(stmt).scalars())


class ComplianceRepository:
    """Locations with their regions, and records of processing, of one project."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def location(self, name: str) -> LocationRow | None:
        return self._session.execute(
            select(LocationRow).where(
                LocationRow.project_id == self._project_id, LocationRow.name == name
            )
        ).scalar_one_or_none()

    def set_location(self, name: str, *, kind: str, region: str) -> LocationRow:
        row = self.location(name)
        if row is None:
            row = LocationRow(
                id=new_id(),
                project_id=self._project_id,
                name=name,
                kind=kind,
                region=region,
                created_at=clock.now(),
            )
            self._session.add(row)
        else:
            row.kind, row.region = kind, region
        self._session.flush()
        return row

    def locations(self) -> list[LocationRow]:
        stmt = (
            select(LocationRow)
            .where(LocationRow.project_id == self._project_id)
            .order_by(LocationRow.name)
        )
        return list(self._session.execute(stmt).scalars())

    def record(self, dataset: str) -> ProcessingRecordRow | None:
        return self._session.execute(
            select(ProcessingRecordRow).where(
                ProcessingRecordRow.project_id == self._project_id,
                ProcessingRecordRow.dataset == dataset,
            )
        ).scalar_one_or_none()

    def upsert_record(self, dataset: str, *, updated_by: str, **fields: Any) -> ProcessingRecordRow:
        now: datetime = clock.now()
        row = self.record(dataset)
        if row is None:
            row = ProcessingRecordRow(
                id=new_id(),
                project_id=self._project_id,
                dataset=dataset,
                created_at=now,
                updated_at=now,
                updated_by=updated_by,
                **fields,
            )
            self._session.add(row)
        else:
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at, row.updated_by = now, updated_by
        self._session.flush()
        return row

    def records(self) -> list[ProcessingRecordRow]:
        stmt = (
            select(ProcessingRecordRow)
            .where(ProcessingRecordRow.project_id == self._project_id)
            .order_by(ProcessingRecordRow.dataset)
        )
        return list(self._session.execute(stmt).scalars())

    def count_records(self) -> int:
        stmt = select(func.count()).where(ProcessingRecordRow.project_id == self._project_id)
        return int(self._session.execute(stmt).scalar_one())
