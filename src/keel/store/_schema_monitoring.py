"""Monitoring tables: monitors, reports, late ground truth, alert rules, alerts, deliveries."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from keel.store._schema import ID, NAME, Base

__all__ = [
    "AlertDeliveryRow",
    "AlertRow",
    "AlertRuleRow",
    "GroundTruthRow",
    "MonitorReportRow",
    "MonitorRow",
]


class MonitorRow(Base):
    """What is watched (a deployment or a model's deployments) against which reference."""

    __tablename__ = "monitors"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    deployment: Mapped[str | None] = mapped_column(NAME)
    model: Mapped[str | None] = mapped_column(NAME)
    reference: Mapped[str] = mapped_column(NAME)  # dataset reference as given (name:N)
    reference_version_id: Mapped[str] = mapped_column(ID)
    config: Mapped[dict[str, Any]]  # features, categorical, thresholds, target, task, ...
    window_kind: Mapped[str] = mapped_column(String(8))  # count | time
    window_size: Mapped[float] = mapped_column(Float)  # rows, or seconds
    schedule: Mapped[str | None] = mapped_column(String(128))
    next_run_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}  # noqa: RUF012


class MonitorReportRow(Base):
    """One run of a monitor over one window: drift, quality, latency (the body), kept."""

    __tablename__ = "monitor_reports"
    __table_args__ = (Index(None, "project_id", "monitor_id", "created_at"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    body: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]


class GroundTruthRow(Base):
    """The true outcome of one logged prediction, arrived after it (one per prediction id)."""

    __tablename__ = "ground_truth"
    __table_args__ = (
        UniqueConstraint("project_id", "prediction_id"),
        Index(None, "project_id", "received_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    prediction_id: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(Text)  # JSON-encoded scalar
    deployment: Mapped[str | None] = mapped_column(NAME)
    batch: Mapped[str] = mapped_column(ID)
    received_at: Mapped[datetime]


class AlertRuleRow(Base):
    """When to alert: a metric of a monitor's reports compared with a threshold."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    monitor: Mapped[str] = mapped_column(NAME)
    metric: Mapped[str] = mapped_column(String(256))
    comparison: Mapped[str] = mapped_column(String(4))
    threshold: Mapped[float] = mapped_column(Float)
    window_seconds: Mapped[float] = mapped_column(Float)
    for_seconds: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(16))
    channels: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}  # noqa: RUF012


class AlertRow(Base):
    """One episode of a rule's condition: pending, then firing, then resolved."""

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "project_id", "rule_id", "state"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(NAME)
    monitor: Mapped[str] = mapped_column(NAME)
    state: Mapped[str] = mapped_column(String(16))  # pending | firing | resolved
    metric: Mapped[str] = mapped_column(String(256))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    report_id: Mapped[str | None] = mapped_column(ID)
    started_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class AlertDeliveryRow(Base):
    """One notification of an alert event through one channel, and how it went."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index(None, "project_id", "status"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[int] = mapped_column(Integer)  # index into the rule's channels
    kind: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(16))  # firing | resolved
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
