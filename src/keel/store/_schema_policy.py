"""Governance tables: policies, decisions, approvals, signatures, quarantine, compliance."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keel.store._schema import DIGEST, ID, NAME, Base

__all__ = [
    "ApprovalRequestRow",
    "ApprovalVoteRow",
    "LocationRow",
    "ModelSignatureRow",
    "PolicyDecisionRow",
    "PolicyRow",
    "ProcessingRecordRow",
    "QuarantineRow",
]


class PolicyRow(Base):
    """One version of a policy file, stored with the digest of its exact text."""

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(DIGEST)
    backend: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    gates: Mapped[list[str]] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]


class PolicyDecisionRow(Base):
    """What a gate decided, why, on which evidence and under which policy versions."""

    __tablename__ = "policy_decisions"
    __table_args__ = (Index(None, "project_id", "gate", "subject"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    gate: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(512))
    allowed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    evidence: Mapped[dict[str, Any]]
    policies: Mapped[list[str]] = mapped_column(JSON)
    principal: Mapped[str] = mapped_column(NAME)
    request_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime]


class ApprovalRequestRow(Base):
    """A human sign-off a gate waits for."""

    __tablename__ = "approval_requests"
    __table_args__ = (Index(None, "project_id", "gate", "subject"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    gate: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(512))
    requester: Mapped[str] = mapped_column(NAME)
    required: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    row_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": row_version}  # noqa: RUF012


class ApprovalVoteRow(Base):
    """One principal's approve or reject of a request (at most one each)."""

    __tablename__ = "approval_votes"
    request_id: Mapped[str] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE"), primary_key=True
    )
    principal: Mapped[str] = mapped_column(NAME, primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime]


class ModelSignatureRow(Base):
    """The Ed25519 signature of a model version, made at registration."""

    __tablename__ = "model_signatures"
    model_version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(128))
    signature: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime]


class QuarantineRow(Base):
    """A scanned file held back: its blob, the scanners' findings, and its status."""

    __tablename__ = "quarantine"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    digest: Mapped[str] = mapped_column(DIGEST)
    filename: Mapped[str] = mapped_column(String(256))
    verdict: Mapped[str] = mapped_column(String(16))
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]


class LocationRow(Base):
    """A storage location or deployment target, and the region it is in."""

    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(NAME)
    kind: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class ProcessingRecordRow(Base):
    """A record of processing (GDPR art. 30, PDPL art. 31) for one dataset."""

    __tablename__ = "processing_records"
    __table_args__ = (UniqueConstraint("project_id", "dataset"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    dataset: Mapped[str] = mapped_column(NAME)
    purpose: Mapped[str] = mapped_column(Text)
    lawful_basis: Mapped[str] = mapped_column(String(64))
    categories: Mapped[list[str]] = mapped_column(JSON)
    subjects: Mapped[list[str]] = mapped_column(JSON)
    allowed_regions: Mapped[list[str]] = mapped_column(JSON)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    subject_column: Mapped[str | None] = mapped_column(String(250))
    updated_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
