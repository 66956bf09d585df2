"""Serving tables: deployments, their revisions (every state change), prediction log batches."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keel.store._schema import DIGEST, ID, NAME, Base

__all__ = ["DeploymentRevisionRow", "DeploymentRow", "PredictionLogBatchRow"]


class DeploymentRow(Base):
    """A model deployed to an environment; ``state`` is the current routing state."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    model: Mapped[str] = mapped_column(NAME)
    environment: Mapped[str] = mapped_column(String(32))
    strategy: Mapped[str] = mapped_column(String(16))
    phase: Mapped[str] = mapped_column(String(16))
    state: Mapped[dict[str, Any]]
    revision: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}  # noqa: RUF012


class DeploymentRevisionRow(Base):
    """One state of a deployment, kept forever: what changed, who changed it, and why."""

    __tablename__ = "deployment_revisions"
    __table_args__ = (UniqueConstraint("deployment_id", "revision"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    state: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(Text, default="")
    analysis: Mapped[dict[str, Any] | None]
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]


class PredictionLogBatchRow(Base):
    """One Parquet part of logged predictions; ``batch_key`` makes each batch land once."""

    __tablename__ = "prediction_log_batches"
    __table_args__ = (
        UniqueConstraint("project_id", "batch_key"),
        Index(None, "project_id", "deployment", "first_at"),
        Index(None, "project_id", "first_at"),  # a trace searches every deployment by time
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    deployment: Mapped[str] = mapped_column(NAME)
    batch_key: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(DIGEST)
    rows: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    created_at: Mapped[datetime]
