"""Alert rules and alerts: evaluate after each monitor report, deduplicate, notify, fire triggers.

Each rule has at most one open alert: ``pending`` while its condition has not yet held for
``for_seconds``, then ``firing`` (notified once), then ``resolved`` (notified again). The
notifications are stored as deliveries first and sent afterwards on background threads, so
a slow or failing channel never holds up the caller; a delivery that fails every attempt is
marked ``failed`` and its alert stays visible.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import AlreadyExistsError, InvalidInputError, KeelError, NotFoundError
from keel.governance import Context, Governor, Permission, SecretResolver
from keel.lineage import LineageService, Node
from keel.monitoring._channels import check_channel
from keel.monitoring._delivery import Sender
from keel.monitoring._model import Alert, AlertRule, Delivery
from keel.monitoring._rules import (
    COMPARISONS,
    breached,
    check_metric,
    metric_value,
    parse_duration,
    step,
    worst,
)
from keel.store import AlertRepository, MonitorRepository
from keel.store._schema_monitoring import AlertDeliveryRow, AlertRow, AlertRuleRow
from keel.types import validate_name

if TYPE_CHECKING:
    from keel.pipelines import Firing, TriggerService

__all__ = ["AlertService", "OnFire"]

_log = logging.getLogger("keel.monitoring.alerts")
SEVERITIES = ("info", "warning", "critical")
STATES = ("pending", "firing", "resolved")
#: Called after an alert starts firing: (caller, alert, trigger firings it caused).
OnFire = Callable[[Context, Alert, "list[Firing]"], None]


def _rule(row: AlertRuleRow) -> AlertRule:
    return AlertRule(
        id=row.id,
        name=row.name,
        monitor=row.monitor,
        metric=row.metric,
        comparison=row.comparison,
        threshold=row.threshold,
        window_seconds=row.window_seconds,
        for_seconds=row.for_seconds,
        severity=row.severity,
        channels=list(row.channels),
        enabled=row.enabled,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _delivery(row: AlertDeliveryRow) -> Delivery:
    return Delivery(
        row.id,
        row.channel,
        row.kind,
        row.event,
        row.status,
        row.attempts,
        row.error,
        row.updated_at,
    )


def _alert(row: AlertRow, deliveries: Sequence[AlertDeliveryRow] = ()) -> Alert:
    return Alert(
        id=row.id,
        rule=row.rule,
        monitor=row.monitor,
        state=row.state,
        metric=row.metric,
        value=row.value,
        threshold=row.threshold,
        severity=row.severity,
        message=row.message,
        report_id=row.report_id,
        started_at=row.started_at,
        fired_at=row.fired_at,
        resolved_at=row.resolved_at,
        deliveries=tuple(_delivery(d) for d in deliveries),
    )


class AlertService:
    """Alert rules of a project's monitors, and the alerts they raise.

    Args:
        governor: authorization, transactions and audit.
        triggers: when given, a firing alert fires the project's ``alert`` triggers watching
            its rule (``TriggerService.fire_event("alert", rule, event_id=alert_id)``).
        secrets: resolves the channels' ``secret://`` references (HMAC keys, SMTP passwords);
            by default one is made from ``settings`` when a channel first needs it.
        settings: the Settings that default resolver is made from.
        background: send notifications on background threads (False: before returning).
    """

    def __init__(
        self,
        governor: Governor,
        *,
        triggers: TriggerService | None = None,
        secrets: SecretResolver | None = None,
        settings: Any = None,
        background: bool = True,
    ) -> None:
        self._gov = governor
        self._triggers = triggers
        self._sender = Sender(governor, secrets=secrets, settings=settings, background=background)
        self._callbacks: list[OnFire] = []

    # --- rules --------------------------------------------------------------------------------

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
        """Create (or with ``replace`` redefine) rule ``name`` on ``monitor``."""
        self._gov.check(
            ctx, Permission.MONITOR_WRITE, action="alert_rule.create", object_type="alert_rule"
        )
        validate_name(name, what="alert rule name")
        check_metric(metric)
        if comparison not in COMPARISONS:
            raise InvalidInputError(
                f"Unknown comparison {comparison!r:.10}; use one of {' '.join(COMPARISONS)}."
            )
        if severity not in SEVERITIES:
            raise InvalidInputError(f"Severity must be one of {', '.join(SEVERITIES)}.")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise InvalidInputError("The threshold must be a number.")
        if len(channels) > 20:
            raise InvalidInputError("A rule has at most 20 channels.")
        fields = {
            "monitor": monitor,
            "metric": metric,
            "comparison": comparison,
            "threshold": float(threshold),
            "window_seconds": parse_duration(window, what="window"),
            "for_seconds": parse_duration(for_duration, what="for-duration"),
            "severity": severity,
            "channels": [check_channel(c) for c in channels],
            "enabled": enabled,
        }
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "alert_rule.create", object_type="alert_rule"
        ) as work:
            if MonitorRepository(work.session, ctx.project_id).get(monitor) is None:
                raise NotFoundError(
                    f"No monitor '{monitor}' in this project; create it first with "
                    "`keel monitors create`.",
                    monitor=monitor,
                )
            repo = AlertRepository(work.session, ctx.project_id)
            row = repo.rule(name)
            if row is not None and not replace:
                raise AlreadyExistsError(
                    f"An alert rule named '{name}' exists; pick another name or replace it.",
                    rule=name,
                )
            if row is None:
                row = repo.add_rule(name=name, created_by=ctx.principal, **fields)
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
                row.updated_at = clock.now()
            work.object_id = row.id
            work.details = {"rule": name, "monitor": monitor, "metric": metric}
            return _rule(row)

    def rules(self, ctx: Context, *, monitor: str | None = None) -> builtins.list[AlertRule]:
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "alert_rule.read", object_type="alert_rule"
        ) as session:
            return [
                _rule(r) for r in AlertRepository(session, ctx.project_id).rules(monitor=monitor)
            ]

    def delete_rule(self, ctx: Context, name: str) -> None:
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "alert_rule.delete", object_type="alert_rule"
        ) as work:
            repo = AlertRepository(work.session, ctx.project_id)
            row = repo.rule(name)
            if row is None:
                raise NotFoundError(f"No alert rule '{name}' in this project.", rule=name)
            work.object_id = row.id
            work.details = {"rule": name}
            repo.remove_rule(row)

    # --- alerts -------------------------------------------------------------------------------

    def list(
        self,
        ctx: Context,
        *,
        state: str | None = None,
        rule: str | None = None,
        monitor: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Alert]:
        """Alerts newest first (``state``: pending, firing, resolved; default all)."""
        if state is not None and state not in STATES:
            raise InvalidInputError(f"State must be one of {', '.join(STATES)}.")
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "alert.read", object_type="alert"
        ) as session:
            repo = AlertRepository(session, ctx.project_id)
            rows = repo.alerts(
                states=[state] if state else None,
                rule=rule,
                monitor=monitor,
                limit=min(max(limit, 1), 1000),
            )
            return [_alert(r, repo.deliveries(r.id)) for r in rows]

    def get(self, ctx: Context, alert_id: str) -> Alert:
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "alert.read", object_type="alert"
        ) as session:
            repo = AlertRepository(session, ctx.project_id)
            row = repo.alert(alert_id)
            if row is None:
                raise NotFoundError(f"No alert '{alert_id[:40]}' in this project.")
            return _alert(row, repo.deliveries(row.id))

    def on_fire(self, callback: OnFire) -> None:
        """Call ``callback(ctx, alert, firings)`` whenever an alert starts firing (this process).

        It runs after the alert is stored; an exception it raises is logged, not propagated.
        """
        self._callbacks.append(callback)

    # --- evaluation ---------------------------------------------------------------------------

    def evaluate(
        self,
        ctx: Context,
        monitor: str,
        report_id: str,
        *,
        now: datetime | None = None,
    ) -> builtins.list[Alert]:
        """Step every enabled rule of ``monitor`` after report ``report_id``; returns the alerts
        that changed (opened, fired, updated, resolved)."""
        moment = now or clock.now()
        changed: list[tuple[AlertRow, str]] = []
        queued: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        causes: dict[str, dict[str, Any]] = {}  # what a firing alert tells its triggers
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "alert.evaluate", object_type="monitor_report"
        ) as work:
            session = work.session
            repo = AlertRepository(session, ctx.project_id)
            monitors = MonitorRepository(session, ctx.project_id)
            monitor_row = monitors.get(monitor)
            if monitor_row is None:
                raise NotFoundError(f"No monitor '{monitor}' in this project.", monitor=monitor)
            work.object_id = report_id
            for rule in repo.rules(monitor=monitor):
                if not rule.enabled:
                    continue
                since = moment - timedelta(seconds=rule.window_seconds)
                found = monitors.reports(monitor_row.id, since=since, limit=1000)
                bodies = [r.body for r in found if r.id == report_id or rule.window_seconds > 0]
                value = worst([metric_value(b, rule.metric) for b in bodies], rule.comparison)
                alert = repo.open_alert(rule.id)
                action = step(
                    alert.state if alert else None,
                    value=value,
                    comparison=rule.comparison,
                    threshold=rule.threshold,
                    started_at=alert.started_at if alert else None,
                    now=moment,
                    for_seconds=rule.for_seconds,
                )
                if action == "none":
                    continue
                message = _message(rule, value)
                if alert is None:
                    alert = repo.add_alert(
                        rule_id=rule.id,
                        rule=rule.name,
                        monitor=monitor,
                        state="pending",
                        metric=rule.metric,
                        value=value,
                        threshold=rule.threshold,
                        severity=rule.severity,
                        message=message,
                        report_id=report_id,
                        started_at=moment,
                    )
                alert.value, alert.message, alert.updated_at = value, message, moment
                alert.report_id = report_id
                if action == "clear":
                    session.delete(alert)
                    session.flush()
                    continue
                if action in ("fire", "resolve"):
                    event = "firing" if action == "fire" else "resolved"
                    alert.state = event
                    if action == "fire":
                        alert.fired_at = moment
                        causes[alert.id] = _cause(rule, found, report_id)
                        LineageService.link(
                            session,
                            ctx,
                            Node("monitor_report", report_id),
                            Node("alert", alert.id),
                            "raised",
                        )
                    else:
                        alert.resolved_at = moment
                    payload = {
                        "event": event,
                        "project": ctx.project_name,
                        "alert": {**_alert(alert).to_dict(), "comparison": rule.comparison},
                    }
                    for index, channel in enumerate(rule.channels):
                        delivery = repo.add_delivery(
                            alert, channel=index, kind=channel["type"], event=event, payload=payload
                        )
                        queued.append((delivery.id, dict(channel), payload))
                    self._gov.audit.append(
                        session,
                        ctx,
                        f"alert.{'fire' if action == 'fire' else 'resolve'}",
                        object_type="alert",
                        object_id=alert.id,
                        details={"rule": rule.name, "monitor": monitor, "value": value},
                    )
                session.flush()
                changed.append((alert, action))
            results = [_alert(a, repo.deliveries(a.id)) for a, _ in changed]
            work.details = {
                "monitor": monitor,
                "changes": {a.rule: act for a, act in changed},
            }
        for delivery_id, channel, payload in queued:
            self._dispatch(ctx, delivery_id, channel, payload)
        for alert_value, (_, done) in zip(results, changed, strict=True):
            if done == "fire":
                self._fired(ctx, alert_value, causes.get(alert_value.id, {}))
        return results

    def _fired(self, ctx: Context, alert: Alert, cause: Mapping[str, Any]) -> None:
        firings: list[Firing] = []
        if self._triggers is not None:
            try:
                firings = self._triggers.fire_event(
                    ctx,
                    "alert",
                    alert.rule,
                    event_id=alert.id,
                    details={
                        "alert": alert.id,
                        "rule": alert.rule,
                        "monitor": alert.monitor,
                        "metric": alert.metric,
                        "value": alert.value,
                        "threshold": alert.threshold,
                        "message": alert.message,
                        "report": alert.report_id,
                        **cause,  # comparison; drifted features of a drift metric
                    },
                )
                if firings:
                    self._link_triggers(ctx, alert, firings)
            except KeelError as exc:
                _log.error("alert %s could not fire its triggers: %s", alert.id, exc)
        for callback in self._callbacks:
            try:
                callback(ctx, alert, firings)
            except Exception:
                _log.exception("an on_fire callback failed for alert %s", alert.id)

    def _link_triggers(self, ctx: Context, alert: Alert, firings: Sequence[Firing]) -> None:
        assert self._triggers is not None
        ids = {t.name: t.id for t in self._triggers.all(ctx, kind="alert")}
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "alert.trigger", object_type="alert", object_id=alert.id
        ) as work:
            for firing in firings:
                trigger_id = ids.get(firing.trigger)
                if trigger_id is not None:
                    LineageService.link(
                        work.session,
                        ctx,
                        Node("alert", alert.id),
                        Node("trigger", trigger_id),
                        "fired",
                        details={"firing": firing.id},
                    )
            work.details = {"firings": [f.id for f in firings]}

    # --- delivery -----------------------------------------------------------------------------

    def _dispatch(
        self, ctx: Context, delivery_id: str, channel: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        self._sender.send(ctx, delivery_id, channel, payload)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for notifications being sent; True when none is left."""
        return self._sender.wait(timeout)

    def close(self) -> None:
        """Finish sending what is queued and stop the sending threads."""
        self._sender.close()


def _cause(rule: AlertRuleRow, reports: Sequence[Any], report_id: str) -> dict[str, Any]:
    """The comparison, and the drifted features of the report, for the closed loop's record."""
    cause: dict[str, Any] = {"comparison": rule.comparison}
    if rule.metric.startswith(("drift.", "prediction.drift")):
        body = next((r.body for r in reports if r.id == report_id), None) or {}
        drifted = (body.get("drift") or {}).get("drifted")
        if isinstance(drifted, list | tuple):
            cause["drifted"] = [str(name) for name in drifted[:20]]
    return cause


def _message(rule: AlertRuleRow, value: float | None) -> str:
    span = f" (worst over {rule.window_seconds:g}s)" if rule.window_seconds else ""
    if value is None:
        return f"{rule.metric} is unknown in the latest report{span}."
    verdict = "beyond" if breached(value, rule.comparison, rule.threshold) else "back within"
    return (
        f"{rule.metric} = {value:.4g}{span}: {verdict} the limit {rule.comparison} "
        f"{rule.threshold:g}."
    )[:1000]
