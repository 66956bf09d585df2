"""Tables of the declarative project file: what ``keel apply`` last applied, and its lock."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keel.store._schema import DIGEST, ID, NAME, Base

__all__ = ["ApplyLockRow", "ProjectResourceRow"]


class ProjectResourceRow(Base):
    """One resource of ``keel.yaml`` as last applied: its kind, name, spec and spec digest."""

    __tablename__ = "project_resources"
    __table_args__ = (UniqueConstraint("project_id", "kind", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(NAME)
    spec: Mapped[dict[str, Any]]
    digest: Mapped[str] = mapped_column(DIGEST)
    applied_by: Mapped[str] = mapped_column(NAME)
    applied_at: Mapped[datetime]


class ApplyLockRow(Base):
    """The one ``keel apply`` that may change a project now (a lease, renewed per change)."""

    __tablename__ = "project_apply_locks"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    token: Mapped[str] = mapped_column(ID)
    holder: Mapped[str] = mapped_column(NAME)
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]
