"""``ws.monitors`` over HTTP: monitors, reports, late labels, alert rules and alerts.

As in ``_remote_services``, each remote class subclasses the local service it stands for and
maps every public method to one route, so :class:`keel.monitoring.Monitors` works unchanged on
``keel.connect(url)``. A batch frame to monitor travels as a staged Parquet upload and labels
as a staged NDJSON upload, so large inputs never sit in one JSON body. What lives in the
process that runs the monitors (alert evaluation, ``on_fire`` callbacks, the scheduler's due
monitors) refuses remotely with a message saying where to run it.
"""

from __future__ import annotations

import builtins
import io
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from keel import clock, errors
from keel.governance import Context
from keel.monitoring import (
    Alert,
    AlertRule,
    AlertService,
    DriftThreshold,
    LabelIngest,
    LabelService,
    Monitor,
    MonitorReport,
    MonitorService,
)
from keel.monitoring._alerts import OnFire
from keel.monitoring._labels import _MAX_ID
from keel.workspace._http import HttpClient
from keel.workspace._http import base_path as _base
from keel.workspace._http import segment as _seg

__all__ = ["RemoteAlertService", "RemoteLabelService", "RemoteMonitorService"]

#: Prediction ids per ``labels/find`` request (the route's bound).
_FIND_CHUNK = 100_000
#: A delivery still ``pending`` after this long was left by a stopped server: not waited for.
_STALE = timedelta(minutes=10)
_POLL = 0.2


def _utc(moment: datetime | None) -> str | None:
    return None if moment is None else _aware(moment).isoformat()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _plain(value: Any, index: int) -> Any:
    """A label or id as JSON sends it (NumPy scalars as their Python value)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    item = getattr(value, "item", None)
    plain = item() if callable(item) else value
    if not isinstance(plain, str | int | float | bool):
        raise errors.InvalidInputError(
            f"Label record {index} holds a {type(value).__name__}; prediction ids and labels "
            "are numbers, strings or booleans."
        )
    return plain


class RemoteLabelService(LabelService):
    """Late labels over HTTP: the client reads the records, the server stores them."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def ingest(
        self,
        ctx: Context,
        source: Any,
        *,
        deployment: str | None = None,
        on_conflict: str = "keep",
    ) -> LabelIngest:
        """Read ``source`` here (records, a frame, or a label file), store it on the server."""
        from keel.monitoring._labels import _MISSING, read_label_records

        lines = io.BytesIO()
        for index, (pid, label) in enumerate(read_label_records(source)):
            record = {"prediction_id": _plain(pid, index)}
            if label is not _MISSING:
                record["label"] = _plain(label, index)
            lines.write(json.dumps(record).encode() + b"\n")
        upload = self._http.upload(ctx.project_name, lines.getvalue())
        body = {"upload_id": upload, "deployment": deployment, "on_conflict": on_conflict}
        return self._http.call("POST", f"{_base(ctx)}/labels", json=body, into=LabelIngest)

    def find(self, ctx: Context, prediction_ids: Sequence[str]) -> dict[str, Any]:
        # an id longer than any stored one has no label: not sent (the route bounds ids)
        ids = [str(pid) for pid in prediction_ids if len(str(pid)) <= _MAX_ID]
        found: dict[str, Any] = {}
        for start in range(0, len(ids), _FIND_CHUNK):
            body = {"prediction_ids": ids[start : start + _FIND_CHUNK]}
            found.update(self._http.call("POST", f"{_base(ctx)}/labels/find", json=body))
        return found


class RemoteAlertService(AlertService):
    """Alert rules and alerts over HTTP; the server evaluates rules and sends notifications.

    ``ctx`` is the workspace's: ``wait`` (which takes none) reads that project's alerts.
    """

    COMPOSED: ClassVar[frozenset[str]] = frozenset()
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"evaluate", "on_fire"})

    def __init__(self, http: HttpClient, ctx: Context) -> None:
        self._http, self._ctx = http, ctx

    def add_rule(
        self,
        ctx: Context,
        name: str,
        *,
        monitor: str,
        metric: str,
        threshold: float,
        comparison: str = ">",
        window: str | float = 0,
        for_duration: str | float = 0,
        severity: str = "warning",
        channels: Sequence[Mapping[str, Any]] = ({"type": "log"},),
        enabled: bool = True,
        replace: bool = False,
    ) -> AlertRule:
        body = {
            "name": name,
            "monitor": monitor,
            "metric": metric,
            "threshold": threshold,
            "comparison": comparison,
            "window": window,
            "for_duration": for_duration,
            "severity": severity,
            "channels": [dict(channel) for channel in channels],
            "enabled": enabled,
            "replace": replace,
        }
        return self._http.call("POST", f"{_base(ctx)}/alert-rules", json=body, into=AlertRule)

    def rules(self, ctx: Context, *, monitor: str | None = None) -> builtins.list[AlertRule]:
        params = {"monitor": monitor}
        path = f"{_base(ctx)}/alert-rules"
        return self._http.call("GET", path, params=params, into=list[AlertRule])

    def delete_rule(self, ctx: Context, name: str) -> None:
        self._http.call("DELETE", f"{_base(ctx)}/alert-rules/{_seg(name)}")

    def list(
        self,
        ctx: Context,
        *,
        state: str | None = None,
        rule: str | None = None,
        monitor: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Alert]:
        params = {
            "state": state,
            "rule": rule,
            "monitor": monitor,
            "limit": min(max(limit, 1), 1000),
        }
        return self._http.call("GET", f"{_base(ctx)}/alerts", params=params, into=list[Alert])

    def get(self, ctx: Context, alert_id: str) -> Alert:
        return self._http.call("GET", f"{_base(ctx)}/alerts/{_seg(alert_id)}", into=Alert)

    def on_fire(self, callback: OnFire) -> None:
        raise errors.InvalidInputError(
            "An on_fire callback runs in the process that runs the monitors, which for a "
            "remote workspace is the Keel server. Remotely, give the rule a webhook channel, "
            "or fire a pipeline with ws.pipelines.create_trigger(..., kind='alert', "
            "spec={'rule': ...}); or register the callback in a local workspace on the "
            "server's host."
        )

    def evaluate(
        self,
        ctx: Context,
        monitor: str,
        report_id: str,
        *,
        now: datetime | None = None,
    ) -> builtins.list[Alert]:
        raise errors.InvalidInputError(
            "Alert rules are evaluated by the Keel server each time a monitor runs: call "
            "ws.monitors.run(name) and read the changed alerts in the report's 'alerts'."
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the server has sent every notification of the project's latest alerts
        (deliveries still pending after 10 minutes are left by a stopped server: ignored).
        True when none is left, False at ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            stale = clock.now() - _STALE
            pending = [
                d
                for alert in self.list(self._ctx, limit=1000)
                for d in alert.deliveries
                if d.status == "pending" and _aware(d.updated_at) > stale
            ]
            if not pending:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)

    def close(self) -> None:
        """Nothing to finish here: the server sends the notifications."""


class RemoteMonitorService(MonitorService):
    """MonitorService over HTTP (see the module docstring); ``ctx`` is the workspace's."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"run_due"})

    def __init__(self, http: HttpClient, ctx: Context) -> None:
        self._http = http
        self.labels = RemoteLabelService(http)
        self.alerts = RemoteAlertService(http, ctx)

    def _path(self, ctx: Context, name: str | None = None) -> str:
        root = f"{_base(ctx)}/monitors"
        return root if name is None else f"{root}/{_seg(name)}"

    def create(
        self,
        ctx: Context,
        name: str,
        *,
        reference: str,
        deployment: str | None = None,
        model: str | None = None,
        features: Sequence[str] | None = None,
        categorical: Sequence[str] = (),
        thresholds: Mapping[str, Any] | None = None,
        default_threshold: DriftThreshold | Mapping[str, Any] | None = None,
        window: str = "count:10000",
        target: str | None = None,
        task: str | None = None,
        schedule: str | None = None,
        min_rows: int = 10,
        min_labels: int = 30,
        metrics_url: str | None = None,
        metrics_allow_private: bool = False,
        replace: bool = False,
    ) -> Monitor:
        base = (
            default_threshold.to_dict()
            if isinstance(default_threshold, DriftThreshold)
            else default_threshold
        )
        body = {
            "name": name,
            "reference": reference,
            "deployment": deployment,
            "model": model,
            "features": None if features is None else builtins.list(features),
            "categorical": builtins.list(categorical),
            "thresholds": None if thresholds is None else _thresholds(thresholds),
            "default_threshold": base,
            "window": window,
            "target": target,
            "task": task,
            "schedule": schedule,
            "min_rows": min_rows,
            "min_labels": min_labels,
            "metrics_url": metrics_url,
            "metrics_allow_private": metrics_allow_private,
            "replace": replace,
        }
        return self._http.call("POST", self._path(ctx), json=body, into=Monitor)

    def get(self, ctx: Context, name: str) -> Monitor:
        return self._http.call("GET", self._path(ctx, name), into=Monitor)

    def list(self, ctx: Context) -> builtins.list[Monitor]:
        return self._http.call("GET", self._path(ctx), into=builtins.list[Monitor])

    def delete(self, ctx: Context, name: str) -> None:
        self._http.call("DELETE", self._path(ctx, name))

    def run(
        self,
        ctx: Context,
        name: str,
        *,
        current: Any = None,
        now: datetime | None = None,
    ) -> MonitorReport:
        """Run on the server: over the deployment's prediction logs, or over ``current``
        (sent as a staged Parquet file)."""
        body: dict[str, Any] = {"now": _utc(now)}
        if current is not None:
            from keel.monitoring._profile import as_frame

            buffer = io.BytesIO()
            as_frame(current).write_parquet(buffer)
            body["upload_id"] = self._http.upload(ctx.project_name, buffer.getvalue())
        path = f"{self._path(ctx, name)}/run"
        return self._http.call("POST", path, json=body, into=MonitorReport)

    def run_due(self, ctx: Context, now: datetime | None = None) -> builtins.list[MonitorReport]:
        raise errors.InvalidInputError(
            "Scheduled monitors are run by `keel scheduler` beside the store, not through a "
            "Keel server; run one now with ws.monitors.run(name)."
        )

    def reports(self, ctx: Context, name: str, *, limit: int = 50) -> builtins.list[MonitorReport]:
        path = f"{self._path(ctx, name)}/reports"
        params = {"limit": min(max(limit, 1), 1000)}
        return self._http.call("GET", path, params=params, into=builtins.list[MonitorReport])

    def report(self, ctx: Context, report_id: str) -> MonitorReport:
        path = f"{_base(ctx)}/monitor-reports/{_seg(report_id)}"
        return self._http.call("GET", path, into=MonitorReport)

    def html(self, ctx: Context, name: str, *, history: int = 30) -> str:
        path = f"{self._path(ctx, name)}/report.html"
        data = self._http.download(path, params={"history": min(max(history, 1), 1000)})
        return data.decode("utf-8")


def _thresholds(thresholds: Mapping[str, Any]) -> dict[str, Any]:
    """Thresholds as JSON (other values go as they are, for the server to check)."""
    return {
        str(feature): value.to_dict() if isinstance(value, DriftThreshold) else value
        for feature, value in thresholds.items()
    }
