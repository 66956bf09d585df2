"""Pipeline tables: runs and their steps, the step cache, triggers and their firings."""

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keel.store._schema import DIGEST, ID, NAME, Base

__all__ = [
    "PipelineRunRow",
    "PipelineTriggerRow",
    "StepCacheRow",
    "StepRunRow",
    "TriggerFiringRow",
]


class PipelineRunRow(Base):
    """One run of a pipeline: what started it, with what, where, and how it went."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index(None, "project_id", "pipeline", "created_at"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    pipeline: Mapped[str] = mapped_column(NAME)
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(32))
    cause: Mapped[dict[str, Any] | None]
    params: Mapped[dict[str, Any]]
    inputs: Mapped[dict[str, Any]]  # input name -> artifact digest
    datasets: Mapped[dict[str, Any] | None]  # input name -> dataset version reference
    code_version: Mapped[str | None] = mapped_column(String(64))
    environment: Mapped[dict[str, Any] | None]
    executor: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    owner: Mapped[str | None] = mapped_column(String(256))
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)


class StepRunRow(Base):
    """One step of a pipeline run: its cache key, attempts, outputs or failure."""

    __tablename__ = "step_runs"
    __table_args__ = (UniqueConstraint("pipeline_run_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    pipeline_run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    code_digest: Mapped[str] = mapped_column(DIGEST)
    cache_key: Mapped[str | None] = mapped_column(DIGEST)
    params: Mapped[dict[str, Any]]
    inputs: Mapped[dict[str, Any] | None]  # input name -> artifact digest
    outputs: Mapped[dict[str, Any] | None]  # output name -> artifact digest
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)


class StepCacheRow(Base):
    """Outputs of a step by cache key (code digest, parameters, input digests, environment)."""

    __tablename__ = "step_cache"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    cache_key: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    step: Mapped[str] = mapped_column(NAME)
    outputs: Mapped[dict[str, Any]]
    step_run_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime]


class PipelineTriggerRow(Base):
    """What starts a pipeline: a schedule, a dataset version, an alert or a commit."""

    __tablename__ = "pipeline_triggers"
    __table_args__ = (UniqueConstraint("project_id", "name"), Index(None, "kind", "next_fire_at"))
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    pipeline: Mapped[str] = mapped_column(NAME)
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_fire_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TriggerFiringRow(Base):
    """One firing of a trigger and its cause; claimed by one scheduler replica via a lease."""

    __tablename__ = "trigger_firings"
    __table_args__ = (
        UniqueConstraint("trigger_id", "dedupe_key"),
        Index(None, "status", "lease_expires_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    trigger_id: Mapped[str] = mapped_column(ForeignKey("pipeline_triggers.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime]
    cause: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    lease_owner: Mapped[str | None] = mapped_column(String(256))
    lease_expires_at: Mapped[datetime | None]
    pipeline_run_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
