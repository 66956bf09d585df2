"""``ws.monitors``: the monitoring services bound to a workspace's context."""

from __future__ import annotations

import builtins
from datetime import datetime
from pathlib import Path
from typing import Any

from keel.governance import Context
from keel.monitoring._alerts import OnFire
from keel.monitoring._model import Alert, AlertRule, LabelIngest, Monitor, MonitorReport
from keel.monitoring._service import MonitorService

__all__ = ["Monitors"]


class Monitors:
    """Monitors, late labels and alerts of the workspace's project (see MonitorService)."""

    def __init__(self, service: MonitorService, ctx: Context) -> None:
        self.service, self._ctx = service, ctx

    def create(self, name: str, *, reference: str, **options: Any) -> Monitor:
        return self.service.create(self._ctx, name, reference=reference, **options)

    def get(self, name: str) -> Monitor:
        return self.service.get(self._ctx, name)

    def list(self) -> builtins.list[Monitor]:
        return self.service.list(self._ctx)

    def delete(self, name: str) -> None:
        self.service.delete(self._ctx, name)

    def run(self, name: str, *, current: Any = None, now: datetime | None = None) -> MonitorReport:
        return self.service.run(self._ctx, name, current=current, now=now)

    def run_due(self, now: datetime | None = None) -> builtins.list[MonitorReport]:
        return self.service.run_due(self._ctx, now)

    def reports(self, name: str, *, limit: int = 50) -> builtins.list[MonitorReport]:
        return self.service.reports(self._ctx, name, limit=limit)

    def report(self, report_id: str) -> MonitorReport:
        return self.service.report(self._ctx, report_id)

    def html(self, name: str) -> str:
        return self.service.html(self._ctx, name)

    def write_html(self, name: str, path: str | Path) -> Path:
        """Write the monitor's HTML report to ``path`` (atomically) and return the path."""
        import os

        target = Path(path)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(self.service.html(self._ctx, name), encoding="utf-8")
        os.replace(temporary, target)
        return target

    def ingest_labels(
        self, source: Any, *, deployment: str | None = None, on_conflict: str = "keep"
    ) -> LabelIngest:
        """Store late labels: ``{prediction_id, label}`` records, a frame, or a file."""
        return self.service.labels.ingest(
            self._ctx, source, deployment=deployment, on_conflict=on_conflict
        )

    def add_rule(
        self, name: str, *, monitor: str, metric: str, threshold: float, **options: Any
    ) -> AlertRule:
        return self.service.alerts.add_rule(
            self._ctx, name, monitor=monitor, metric=metric, threshold=threshold, **options
        )

    def rules(self, *, monitor: str | None = None) -> builtins.list[AlertRule]:
        return self.service.alerts.rules(self._ctx, monitor=monitor)

    def delete_rule(self, name: str) -> None:
        self.service.alerts.delete_rule(self._ctx, name)

    def alerts(
        self, *, state: str | None = None, rule: str | None = None, monitor: str | None = None
    ) -> builtins.list[Alert]:
        return self.service.alerts.list(self._ctx, state=state, rule=rule, monitor=monitor)

    def on_fire(self, callback: OnFire) -> None:
        self.service.alerts.on_fire(callback)

    def wait_deliveries(self, timeout: float | None = None) -> bool:
        """Wait for alert notifications still being sent; True when all are done."""
        return self.service.alerts.wait(timeout)
