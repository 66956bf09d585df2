"""Repository of the project file's applied state, and the apply lock (a renewable lease).

The lock is a row per project. Taking it is an insert, or an update of a row whose lease has
expired; on PostgreSQL the row is read ``FOR UPDATE`` and on SQLite every write transaction
begins ``IMMEDIATE``, so two appliers never both see the lock free.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_cicd import ApplyLockRow, ProjectResourceRow
from keel.types import new_id

__all__ = ["ProjectStateRepository"]


class ProjectStateRepository:
    """Applied resources and the apply lock of one project, inside the caller's transaction."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    # -- resources ---------------------------------------------------------------------------

    def resources(self) -> list[ProjectResourceRow]:
        stmt = (
            select(ProjectResourceRow)
            .where(ProjectResourceRow.project_id == self._project_id)
            .order_by(ProjectResourceRow.kind, ProjectResourceRow.name)
        )
        return list(self._session.execute(stmt).scalars())

    def get(self, kind: str, name: str) -> ProjectResourceRow | None:
        stmt = select(ProjectResourceRow).where(
            ProjectResourceRow.project_id == self._project_id,
            ProjectResourceRow.kind == kind,
            ProjectResourceRow.name == name,
        )
        return self._session.execute(stmt).scalar_one_or_none()

    def put(
        self, kind: str, name: str, *, spec: Mapping[str, Any], digest: str, principal: str
    ) -> ProjectResourceRow:
        """Record ``spec`` as the applied state of ``kind/name`` (insert or replace)."""
        row = self.get(kind, name)
        if row is None:
            row = ProjectResourceRow(
                id=new_id(),
                project_id=self._project_id,
                kind=kind,
                name=name,
                spec=dict(spec),
                digest=digest,
                applied_by=principal,
                applied_at=clock.now(),
            )
            self._session.add(row)
        else:
            row.spec = dict(spec)
            row.digest = digest
            row.applied_by = principal
            row.applied_at = clock.now()
        self._session.flush()
        return row

    def remove(self, kind: str, name: str) -> bool:
        result = self._session.execute(
            delete(ProjectResourceRow).where(
                ProjectResourceRow.project_id == self._project_id,
                ProjectResourceRow.kind == kind,
                ProjectResourceRow.name == name,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    # -- the apply lock ----------------------------------------------------------------------

    def lock_row(self, *, lock: bool = True) -> ApplyLockRow | None:
        stmt = select(ApplyLockRow).where(ApplyLockRow.project_id == self._project_id)
        if lock:
            stmt = stmt.with_for_update()
        return self._session.execute(stmt).scalar_one_or_none()

    def try_lock(
        self, token: str, holder: str, *, lease: timedelta, now: datetime | None = None
    ) -> ApplyLockRow:
        """Take the lock for ``token`` if it is free or expired; return the row that holds it."""
        moment = now or clock.now()
        row = self.lock_row()
        if row is None:
            row = ApplyLockRow(
                project_id=self._project_id,
                token=token,
                holder=holder,
                acquired_at=moment,
                expires_at=moment + lease,
            )
            self._session.add(row)
        elif row.token == token or row.expires_at <= moment:
            row.token, row.holder = token, holder
            row.acquired_at, row.expires_at = moment, moment + lease
        self._session.flush()
        return row

    def renew(self, token: str, *, lease: timedelta) -> bool:
        """Extend the lease of ``token``; False when another applier holds the lock now."""
        row = self.lock_row()
        if row is None or row.token != token:
            return False
        row.expires_at = clock.now() + lease
        self._session.flush()
        return True

    def unlock(self, token: str) -> None:
        self._session.execute(
            delete(ApplyLockRow).where(
                ApplyLockRow.project_id == self._project_id, ApplyLockRow.token == token
            )
        )

    def force_unlock(self) -> ApplyLockRow | None:
        """Remove the lock whoever holds it (after a crashed apply); the removed row."""
        row = self.lock_row()
        if row is not None:
            self._session.delete(row)
            self._session.flush()
        return row
