"""Repository of the audit chain: the locked head, appended events, ordered reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from keel.store._schema import AuditEventRow, AuditHeadRow

__all__ = ["AuditQuery", "AuditRepository"]

_HEAD_ID = 1


class AuditQuery:
    """Filters for reading audit events (all optional, combined with AND)."""

    def __init__(
        self,
        *,
        project_id: str | None = None,
        principal: str | None = None,
        action: str | None = None,
        object_id: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> None:
        self.project_id = project_id
        self.principal = principal
        self.action = action
        self.object_id = object_id
        self.outcome = outcome
        self.since = since
        self.until = until
        self.limit = limit


class AuditRepository:
    """Reads and appends audit events inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def lock_head(self) -> AuditHeadRow:
        """The chain head, locked until the transaction ends (SELECT … FOR UPDATE)."""
        return self._session.execute(
            select(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID).with_for_update()
        ).scalar_one()

    def head(self) -> AuditHeadRow:
        """The chain head without locking it."""
        return self._session.execute(
            select(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID)
        ).scalar_one()

    def append(self, event: AuditEventRow, head: AuditHeadRow) -> None:
        """Add ``event`` and move the locked ``head`` to it."""
        self._session.add(event)
        head.seq = event.seq
        head.hash = event.hash
        self._session.flush()

    def iter_chain(self, *, batch: int = 5000) -> Iterator[AuditEventRow]:
        """Every event in ``seq`` order, read in batches (bounded memory)."""
        last = 0
        while True:
            rows = (
                self._session.execute(
                    select(AuditEventRow)
                    .where(AuditEventRow.seq > last)
                    .order_by(AuditEventRow.seq)
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            self._session.expunge_all()

    def find(self, query: AuditQuery) -> list[AuditEventRow]:
        """Events matching ``query``, oldest first (the newest ``limit`` when one is given)."""
        stmt = select(AuditEventRow).order_by(AuditEventRow.seq)
        if query.project_id is not None:
            stmt = stmt.where(AuditEventRow.project_id == query.project_id)
        if query.principal is not None:
            stmt = stmt.where(AuditEventRow.principal == query.principal)
        if query.action is not None:
            stmt = stmt.where(AuditEventRow.action == query.action)
        if query.object_id is not None:
            stmt = stmt.where(AuditEventRow.object_id == query.object_id)
        if query.outcome is not None:
            stmt = stmt.where(AuditEventRow.outcome == query.outcome)
        if query.since is not None:
            stmt = stmt.where(AuditEventRow.occurred_at >= query.since)
        if query.until is not None:
            stmt = stmt.where(AuditEventRow.occurred_at < query.until)
        if query.limit is not None:
            newest = stmt.order_by(None).order_by(AuditEventRow.seq.desc()).limit(query.limit)
            return list(reversed(self._session.execute(newest).scalars().all()))
        return list(self._session.execute(stmt).scalars())
