"""The audit log: every governed write appends a hash-chained event in its own transaction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy.orm import Session

from keel import clock
from keel.governance._chain import ChainBreak, ChainLink, canonical_json, link_hash, walk_chain
from keel.governance._context import Context
from keel.governance._secrets import redact_mapping
from keel.store import AuditQuery, AuditRepository, Database
from keel.store._schema import AuditEventRow
from keel.types import new_id

__all__ = ["AuditEvent", "AuditLog", "ChainReport"]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event as read back."""

    seq: int
    id: str
    occurred_at: str
    principal: str
    project_id: str | None
    action: str
    object_type: str
    object_id: str | None
    outcome: str
    request_id: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of every field."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of walking the audit chain."""

    checked: int
    head_seq: int
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _to_event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        seq=row.seq,
        id=row.id,
        occurred_at=row.occurred_at.strftime(_TIME_FORMAT),
        principal=row.principal,
        project_id=row.project_id,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        outcome=row.outcome,
        request_id=row.request_id,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _to_link(row: AuditEventRow) -> ChainLink:
    return ChainLink(
        seq=row.seq,
        id=row.id,
        occurred_at=row.occurred_at.strftime(_TIME_FORMAT),
        principal=row.principal,
        project_id=row.project_id,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        outcome=row.outcome,
        request_id=row.request_id,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class AuditLog:
    """Appends, reads, verifies and exports the audit chain."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(
        self,
        session: Session,
        ctx: Context,
        action: str,
        *,
        object_type: str,
        object_id: str | None = None,
        outcome: str = "success",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one event inside the caller's transaction (commits or rolls back with it)."""
        repo = AuditRepository(session)
        head_seq, head_hash = repo.lock_head()
        occurred_at = clock.now()
        link = ChainLink(
            seq=head_seq + 1,
            id=new_id(),
            occurred_at=occurred_at.strftime(_TIME_FORMAT),
            principal=ctx.principal,
            project_id=ctx.project_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            outcome=outcome,
            request_id=ctx.request_id,
            details=canonical_json(redact_mapping({**(details or {}), **_source(ctx)})),
            prev_hash=head_hash,
            hash="",
        )
        event = link.payload()
        event["occurred_at"] = occurred_at  # stored as a timestamp, hashed as formatted text
        event["prev_hash"] = head_hash
        event["hash"] = link_hash(head_hash, link.payload())
        repo.append(event)

    def record(
        self,
        ctx: Context,
        action: str,
        *,
        object_type: str,
        object_id: str | None = None,
        outcome: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one event in a transaction of its own (denials, failures)."""
        with self._db.write() as session:
            self.append(
                session,
                ctx,
                action,
                object_type=object_type,
                object_id=object_id,
                outcome=outcome,
                details=details,
            )

    def events(self, query: AuditQuery) -> list[AuditEvent]:
        """Events matching ``query``, oldest first."""
        with self._db.read() as session:
            return [_to_event(row) for row in AuditRepository(session).find(query)]

    def verify(self) -> ChainReport:
        """Walk the whole chain; the report names the first broken event, if any."""
        with self._db.read() as session:
            repo = AuditRepository(session)
            head = repo.head()
            head_seq, head_hash = head.seq, head.hash
            checked, broken = walk_chain(
                (_to_link(row) for row in repo.iter_chain()),
                head_seq=head_seq,
                head_hash=head_hash,
            )
        return ChainReport(checked=checked, head_seq=head_seq, broken=broken)

    def export(self, out: IO[str], query: AuditQuery | None = None) -> int:
        """Write events as JSON lines to ``out``; returns how many were written."""
        count = 0
        for event in self._iter(query):
            out.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")
            count += 1
        return count

    def _iter(self, query: AuditQuery | None) -> Iterator[AuditEvent]:
        if query is not None:
            yield from self.events(query)
            return
        with self._db.read() as session:
            for row in AuditRepository(session).iter_chain():
                yield _to_event(row)


def _source(ctx: Context) -> dict[str, Any]:
    return {"source": ctx.source} if ctx.source else {}
