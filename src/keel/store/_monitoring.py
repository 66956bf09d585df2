"""Repository of monitors and their reports, scoped to one project."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_monitoring import MonitorReportRow, MonitorRow
from keel.types import new_id

__all__ = ["MonitorRepository"]


class MonitorRepository:
    """Monitors and their reports of one project."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def get(self, name: str, *, for_update: bool = False) -> MonitorRow | None:
        query = select(MonitorRow).where(
            MonitorRow.project_id == self._project_id, MonitorRow.name == name
        )
        if for_update:
            query = query.with_for_update()
        return self._session.scalars(query).one_or_none()

    def by_id(self, monitor_id: str) -> MonitorRow | None:
        return self._session.scalars(
            select(MonitorRow).where(
                MonitorRow.project_id == self._project_id, MonitorRow.id == monitor_id
            )
        ).one_or_none()

    def list(self) -> Sequence[MonitorRow]:
        return self._session.scalars(
            select(MonitorRow)
            .where(MonitorRow.project_id == self._project_id)
            .order_by(MonitorRow.name)
        ).all()

    def add(self, **fields: Any) -> MonitorRow:
        now = clock.now()
        row = MonitorRow(
            id=new_id(), project_id=self._project_id, created_at=now, updated_at=now, **fields
        )
        self._session.add(row)
        self._session.flush()
        return row

    def remove(self, row: MonitorRow) -> None:
        self._session.execute(
            delete(MonitorReportRow).where(
                MonitorReportRow.project_id == self._project_id,
                MonitorReportRow.monitor_id == row.id,
            )
        )
        self._session.delete(row)
        self._session.flush()

    def claim_due(self, now: datetime, *, limit: int = 20) -> Sequence[MonitorRow]:
        """Scheduled monitors due at ``now``, locked (other replicas skip them)."""
        query = (
            select(MonitorRow)
            .where(
                MonitorRow.project_id == self._project_id,
                MonitorRow.next_run_at.is_not(None),
                MonitorRow.next_run_at <= now,
            )
            .order_by(MonitorRow.next_run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self._session.scalars(query).all()

    # --- reports ------------------------------------------------------------------------------

    def add_report(
        self,
        monitor: MonitorRow,
        *,
        status: str,
        rows: int,
        window_start: datetime | None,
        window_end: datetime | None,
        body: dict[str, Any],
        principal: str,
        created_at: datetime | None = None,
    ) -> MonitorReportRow:
        row = MonitorReportRow(
            id=new_id(),
            project_id=self._project_id,
            monitor_id=monitor.id,
            status=status,
            rows=rows,
            window_start=window_start,
            window_end=window_end,
            body=body,
            created_by=principal,
            created_at=created_at or clock.now(),
        )
        self._session.add(row)
        self._session.flush()
        return row

    def report(self, report_id: str) -> MonitorReportRow | None:
        return self._session.scalars(
            select(MonitorReportRow).where(
                MonitorReportRow.project_id == self._project_id,
                MonitorReportRow.id == report_id,
            )
        ).one_or_none()

    def reports(
        self, monitor_id: str, *, since: datetime | None = None, limit: int = 50
    ) -> Sequence[MonitorReportRow]:
        """Reports of a monitor, newest first."""
        query = select(MonitorReportRow).where(
            MonitorReportRow.project_id == self._project_id,
            MonitorReportRow.monitor_id == monitor_id,
        )
        if since is not None:
            query = query.where(MonitorReportRow.created_at >= since)
        query = query.order_by(MonitorReportRow.created_at.desc(), MonitorReportRow.id.desc())
        return self._session.scalars(query.limit(limit)).all()
