"""Values the monitoring services return: frozen dataclasses with ``to_dict``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Alert", "AlertRule", "Delivery", "LabelIngest", "Monitor", "MonitorReport"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Monitor:
    """What a monitor watches, against which reference, over which window."""

    id: str
    name: str
    deployment: str | None
    model: str | None
    reference: str
    reference_version_id: str
    features: tuple[str, ...] | None
    categorical: tuple[str, ...]
    thresholds: dict[str, dict[str, Any]]
    default_threshold: dict[str, Any]
    target: str | None
    task: str | None
    window: str
    schedule: str | None
    next_run_at: datetime | None
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "deployment": self.deployment,
            "model": self.model,
            "reference": self.reference,
            "reference_version_id": self.reference_version_id,
            "features": list(self.features) if self.features is not None else None,
            "categorical": list(self.categorical),
            "thresholds": self.thresholds,
            "default_threshold": self.default_threshold,
            "target": self.target,
            "task": self.task,
            "window": self.window,
            "schedule": self.schedule,
            "next_run_at": _iso(self.next_run_at),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """One run of a monitor: drift, quality with late labels, latency and errors, alerts."""

    id: str
    monitor: str
    status: str
    rows: int
    window_start: datetime | None
    window_end: datetime | None
    created_at: datetime
    drift: dict[str, Any]
    quality: dict[str, Any] | None
    latency: list[dict[str, Any]]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    window: str = ""
    reference: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "monitor": self.monitor,
            "status": self.status,
            "rows": self.rows,
            "window": self.window,
            "reference": self.reference,
            "window_start": _iso(self.window_start),
            "window_end": _iso(self.window_end),
            "created_at": self.created_at.isoformat(),
            "drift": self.drift,
            "quality": self.quality,
            "latency": self.latency,
            "alerts": self.alerts,
        }


@dataclass(frozen=True, slots=True)
class LabelIngest:
    """What an ingest of late labels did.

    Attributes:
        received: label records read.
        stored: new labels stored.
        duplicates: records repeating a stored label (ignored).
        conflicts: records contradicting a stored label (kept as first stored unless
            ``on_conflict="replace"``; ``replaced`` counts those replaced).
        invalid: records without a prediction id or label (skipped, see ``problems``).
        matched: stored labels whose prediction is already in the prediction logs (when the
            ingest names a deployment; the others join as their predictions are logged).
    """

    received: int
    stored: int
    duplicates: int
    conflicts: int
    invalid: int
    replaced: int = 0
    matched: int | None = None
    problems: tuple[str, ...] = ()
    batch: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "replaced": self.replaced,
            "invalid": self.invalid,
            "matched": self.matched,
            "problems": list(self.problems),
            "batch": self.batch,
        }


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Alert when ``metric`` of a monitor's reports ``comparison`` ``threshold``.

    The value is the worst over the reports of the last ``window_seconds`` (0: the latest
    report); the condition must hold ``for_seconds`` before the alert fires.
    """

    id: str
    name: str
    monitor: str
    metric: str
    comparison: str
    threshold: float
    window_seconds: float
    for_seconds: float
    severity: str
    channels: list[dict[str, Any]]
    enabled: bool
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "monitor": self.monitor,
            "metric": self.metric,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "window_seconds": self.window_seconds,
            "for_seconds": self.for_seconds,
            "severity": self.severity,
            "channels": self.channels,
            "enabled": self.enabled,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification of an alert through one channel."""

    id: str
    channel: int
    kind: str
    event: str
    status: str
    attempts: int
    error: str | None
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "kind": self.kind,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Alert:
    """One episode of a rule's condition: pending, firing, then resolved."""

    id: str
    rule: str
    monitor: str
    state: str
    metric: str
    value: float | None
    threshold: float
    severity: str
    message: str
    report_id: str | None
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    deliveries: tuple[Delivery, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "monitor": self.monitor,
            "state": self.state,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "severity": self.severity,
            "message": self.message,
            "report_id": self.report_id,
            "started_at": self.started_at.isoformat(),
            "fired_at": _iso(self.fired_at),
            "resolved_at": _iso(self.resolved_at),
            "deliveries": [d.to_dict() for d in self.deliveries],
        }
