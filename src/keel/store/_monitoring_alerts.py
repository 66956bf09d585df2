"""Repository of alert rules, alerts and their deliveries, scoped to one project."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_monitoring import AlertDeliveryRow, AlertRow, AlertRuleRow
from keel.types import new_id

__all__ = ["AlertRepository"]

OPEN_STATES = ("pending", "firing")


class AlertRepository:
    """Alert rules, alerts (one open per rule) and deliveries of one project."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    # --- rules --------------------------------------------------------------------------------

    def rule(self, name: str) -> AlertRuleRow | None:
        return self._session.scalars(
            select(AlertRuleRow).where(
                AlertRuleRow.project_id == self._project_id, AlertRuleRow.name == name
            )
        ).one_or_none()

    def rules(self, *, monitor: str | None = None) -> Sequence[AlertRuleRow]:
        query = select(AlertRuleRow).where(AlertRuleRow.project_id == self._project_id)
        if monitor is not None:
            query = query.where(AlertRuleRow.monitor == monitor)
        return self._session.scalars(query.order_by(AlertRuleRow.name)).all()

    def add_rule(self, **fields: Any) -> AlertRuleRow:
        now = clock.now()
        row = AlertRuleRow(
            id=new_id(), project_id=self._project_id, created_at=now, updated_at=now, **fields
        )
        self._session.add(row)
        self._session.flush()
        return row

    def remove_rule(self, row: AlertRuleRow) -> None:
        for alert in self._session.scalars(
            select(AlertRow).where(
                AlertRow.project_id == self._project_id, AlertRow.rule_id == row.id
            )
        ):
            for delivery in self.deliveries(alert.id):
                self._session.delete(delivery)
            self._session.delete(alert)
        self._session.delete(row)
        self._session.flush()

    # --- alerts -------------------------------------------------------------------------------

    def open_alert(self, rule_id: str, *, for_update: bool = True) -> AlertRow | None:
        """The rule's pending or firing alert, if any (at most one: alerts are deduplicated)."""
        query = select(AlertRow).where(
            AlertRow.project_id == self._project_id,
            AlertRow.rule_id == rule_id,
            AlertRow.state.in_(OPEN_STATES),
        )
        if for_update:
            query = query.with_for_update()
        return self._session.scalars(query.order_by(AlertRow.started_at.desc())).first()

    def add_alert(self, **fields: Any) -> AlertRow:
        row = AlertRow(id=new_id(), project_id=self._project_id, updated_at=clock.now(), **fields)
        self._session.add(row)
        self._session.flush()
        return row

    def alert(self, alert_id: str) -> AlertRow | None:
        return self._session.scalars(
            select(AlertRow).where(AlertRow.project_id == self._project_id, AlertRow.id == alert_id)
        ).one_or_none()

    def alerts(
        self,
        *,
        states: Sequence[str] | None = None,
        rule: str | None = None,
        monitor: str | None = None,
        limit: int = 100,
    ) -> Sequence[AlertRow]:
        """Alerts, newest first."""
        query = select(AlertRow).where(AlertRow.project_id == self._project_id)
        if states:
            query = query.where(AlertRow.state.in_(list(states)))
        if rule is not None:
            query = query.where(AlertRow.rule == rule)
        if monitor is not None:
            query = query.where(AlertRow.monitor == monitor)
        query = query.order_by(AlertRow.started_at.desc(), AlertRow.id.desc()).limit(limit)
        return self._session.scalars(query).all()

    # --- deliveries ---------------------------------------------------------------------------

    def add_delivery(self, alert: AlertRow, **fields: Any) -> AlertDeliveryRow:
        now = clock.now()
        row = AlertDeliveryRow(
            id=new_id(),
            project_id=self._project_id,
            alert_id=alert.id,
            status="pending",
            attempts=0,
            created_at=now,
            updated_at=now,
            **fields,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def delivery(self, delivery_id: str) -> AlertDeliveryRow | None:
        return self._session.scalars(
            select(AlertDeliveryRow).where(
                AlertDeliveryRow.project_id == self._project_id,
                AlertDeliveryRow.id == delivery_id,
            )
        ).one_or_none()

    def deliveries(self, alert_id: str) -> Sequence[AlertDeliveryRow]:
        return self._session.scalars(
            select(AlertDeliveryRow)
            .where(
                AlertDeliveryRow.project_id == self._project_id,
                AlertDeliveryRow.alert_id == alert_id,
            )
            .order_by(AlertDeliveryRow.created_at, AlertDeliveryRow.id)
        ).all()

    def pending_deliveries(self, *, limit: int = 100) -> Sequence[AlertDeliveryRow]:
        return self._session.scalars(
            select(AlertDeliveryRow)
            .where(
                AlertDeliveryRow.project_id == self._project_id,
                AlertDeliveryRow.status == "pending",
            )
            .order_by(AlertDeliveryRow.created_at)
            .limit(limit)
        ).all()
