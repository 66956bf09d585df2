"""Repository of the audit chain: the locked head, appended events, ordered reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from keel.store._schema import AuditEventRow, AuditHeadRow

__all__ = ["AuditQuery", "AuditRepository"]

_HEAD_ID = 1

# The append path as three prebuilt Core statements (no ORM unit of work per event).
_LOCK_HEAD = (
    select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == _HEAD_ID).with_for_update()
)
_INSERT_EVENT = insert(AuditEventRow)
_MOVE_HEAD = (
    update(AuditHeadRow)
    .where(AuditHeadRow.id == _HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


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

    def lock_head(self) -> tuple[int, str]:
        """The chain head's ``(seq, hash)``, locked until the transaction ends (SELECT … FOR
        UPDATE on PostgreSQL; SQLite's write transaction already holds the database)."""
        seq, head_hash = self._session.connection().execute(_LOCK_HEAD).one()
        return int(seq), str(head_hash)

    def head(self) -> AuditHeadRow:
        """The chain head without locking it."""
        return self._session.execute(
            select(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID)
        ).scalar_one()

    def append(self, event: Mapping[str, Any]) -> None:
        """Insert ``event`` (column name → value) and move the locked head to it."""
        connection = self._session.connection()
        connection.execute(_INSERT_EVENT, dict(event))
        connection.execute(_MOVE_HEAD, {"new_seq": event["seq"], "new_hash": event["hash"]})

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
