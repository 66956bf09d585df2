"""Compliance tables: the keyed-hash subject index, erasure requests and erased versions.

No table holds a raw data-subject id: subjects are HMAC-SHA256 values under a per-project
secret kept in the encrypted blob store (see ``keel.compliance``).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from keel.store._schema import DIGEST, ID, KEY, NAME, SERIAL, Base

__all__ = [
    "ComplianceLeaseRow",
    "ErasedVersionRow",
    "ErasureRow",
    "IndexedPartRow",
    "SubjectIndexRow",
    "SubjectSecretRow",
]

#: A subject's keyed hash: 32 hex digits (128 bits of HMAC-SHA256).
SUBJECT = String(32)


class SubjectSecretRow(Base):
    """The blob holding a project's subject-index secret (the HMAC key)."""

    __tablename__ = "compliance_secrets"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(DIGEST)
    created_at: Mapped[datetime]


class IndexedPartRow(Base):
    """A dataset part whose subject column was indexed (parts are immutable: once is enough)."""

    __tablename__ = "compliance_indexed_parts"
    __table_args__ = (UniqueConstraint("project_id", "digest", "column"),)
    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    digest: Mapped[str] = mapped_column(DIGEST)
    column: Mapped[str] = mapped_column(KEY)
    subjects: Mapped[int] = mapped_column(Integer)
    indexed_at: Mapped[datetime]


class SubjectIndexRow(Base):
    """One data subject (keyed hash) found in one indexed part, with its rows there.

    Narrow on purpose (a part id, not its digest and project): a million-row part adds up to
    a million of these. The project scope comes from the part.
    """

    __tablename__ = "compliance_subject_index"
    __table_args__ = (Index(None, "subject"),)
    part_id: Mapped[int] = mapped_column(
        ForeignKey("compliance_indexed_parts.id", ondelete="CASCADE"), primary_key=True
    )
    subject: Mapped[str] = mapped_column(SUBJECT, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)


class ErasureRow(Base):
    """An erasure (a subject's rows, or versions past retention): its plan, state and report."""

    __tablename__ = "compliance_erasures"
    __table_args__ = (
        Index(None, "project_id", "subject"),
        # one running erasure per subject, and one running retention run, per project
        Index(
            "uq_compliance_erasures_running_subject",
            "project_id",
            "subject",
            unique=True,
            sqlite_where=text("state = 'running' AND kind = 'subject'"),
            postgresql_where=text("state = 'running' AND kind = 'subject'"),
        ),
        Index(
            "uq_compliance_erasures_running_retention",
            "project_id",
            unique=True,
            sqlite_where=text("state = 'running' AND kind = 'retention'"),
            postgresql_where=text("state = 'running' AND kind = 'retention'"),
        ),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # subject | retention
    subject: Mapped[str | None] = mapped_column(SUBJECT)
    state: Mapped[str] = mapped_column(String(16))  # running | done
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    requested_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # the process working on it, until when (renewed as it advances): a retry waits
    claimed_by: Mapped[str | None] = mapped_column(ID)
    claimed_until: Mapped[datetime | None]


class ComplianceLeaseRow(Base):
    """A named lease of a project (one scheduler replica runs the retention job)."""

    __tablename__ = "compliance_leases"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    name: Mapped[str] = mapped_column(KEY, primary_key=True)
    owner: Mapped[str] = mapped_column(NAME)
    until: Mapped[datetime]


class ErasedVersionRow(Base):
    """A dataset version whose data was erased, and the version that replaced it (if any)."""

    __tablename__ = "compliance_erased_versions"
    # No foreign key: dataset_versions is created by a sibling migration branch (0003).
    version_id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    erasure_id: Mapped[str] = mapped_column(ID)
    dataset: Mapped[str] = mapped_column(NAME)
    version: Mapped[int] = mapped_column(Integer)
    replaced_by: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(16))  # subject | retention
    erased_at: Mapped[datetime]
