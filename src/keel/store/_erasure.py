"""Repository of the subject index, erasure requests and erased versions (one project)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_compliance import (
    ComplianceLeaseRow,
    ErasedVersionRow,
    ErasureRow,
    IndexedPartRow,
    SubjectIndexRow,
    SubjectSecretRow,
)
from keel.store._schema_data import DatasetBlobRow
from keel.types import new_id

__all__ = ["ErasureRepository"]

_CHUNK = 500
MAX_LIST = 1000


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _insert_new(session: Session, entity: Any, values: dict[str, Any], keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING (PostgreSQL or SQLite); the first key column of the
    inserted row, or None when the row existed (a concurrent writer won)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql as dialect
    else:
        from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
    first = entity.id if hasattr(entity, "id") else getattr(entity, keys[-1])
    stmt = (
        dialect.insert(entity)
        .values(**values)
        .on_conflict_do_nothing(index_elements=keys)
        .returning(first)
    )
    return session.execute(stmt).scalar_one_or_none()


class ErasureRepository:
    """Subject index, erasures and erased versions of one project, in the caller's session."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    # --- the index secret -----------------------------------------------------------------

    def secret(self) -> str | None:
        row = self._session.get(SubjectSecretRow, self._project_id)
        return None if row is None else row.digest

    def set_secret(self, digest: str) -> str:
        """Keep ``digest`` as the project's secret unless one exists; return the one kept."""
        row = self._session.get(SubjectSecretRow, self._project_id)
        if row is not None:
            return row.digest
        self._session.add(
            SubjectSecretRow(project_id=self._project_id, digest=digest, created_at=clock.now())
        )
        self._session.flush()
        return digest

    # --- the index ------------------------------------------------------------------------

    def indexed(self, digests: Sequence[str], column: str) -> set[str]:
        """The parts among ``digests`` already indexed for ``column``."""
        found: set[str] = set()
        for chunk in _chunks(sorted(set(digests))):
            stmt = select(IndexedPartRow.digest).where(
                IndexedPartRow.project_id == self._project_id,
                IndexedPartRow.column == column,
                IndexedPartRow.digest.in_(chunk),
            )
            found.update(self._session.execute(stmt).scalars())
        return found

    def add_index(self, digest: str, column: str, counts: Mapping[str, int]) -> bool:
        """Record one part's subjects (keyed hashes and row counts), batched; False when a
        concurrent refresh indexed it first (then nothing is written)."""
        values = {
            "project_id": self._project_id,
            "digest": digest,
            "column": column,
            "subjects": len(counts),
            "indexed_at": clock.now(),
        }
        part_id = _insert_new(
            self._session, IndexedPartRow, values, ["project_id", "digest", "column"]
        )
        if part_id is None:
            return False
        rows = [{"part_id": part_id, "subject": s, "rows": counts[s]} for s in sorted(counts)]
        table = SubjectIndexRow.__table__
        assert isinstance(table, Table)
        for start in range(0, len(rows), 20_000):  # Core executemany: no ORM bookkeeping
            self._session.execute(table.insert(), rows[start : start + 20_000])
        return True

    def parts_of(self, subject: str) -> dict[str, int]:
        """The parts holding ``subject`` (a keyed hash) and its rows in each."""
        stmt = (
            select(IndexedPartRow.digest, SubjectIndexRow.rows)
            .join(IndexedPartRow, IndexedPartRow.id == SubjectIndexRow.part_id)
            .where(
                SubjectIndexRow.subject == subject,
                IndexedPartRow.project_id == self._project_id,
            )
        )
        out: dict[str, int] = {}
        for digest, rows in self._session.execute(stmt):
            out[digest] = out.get(digest, 0) + int(rows)
        return out

    def drop_parts(self, digests: Sequence[str]) -> None:
        """Forget the index of erased parts."""
        for chunk in _chunks(sorted(set(digests))):
            ids = list(
                self._session.execute(
                    select(IndexedPartRow.id).where(
                        IndexedPartRow.project_id == self._project_id,
                        IndexedPartRow.digest.in_(chunk),
                    )
                ).scalars()
            )
            if not ids:
                continue
            self._session.execute(delete(SubjectIndexRow).where(SubjectIndexRow.part_id.in_(ids)))
            self._session.execute(delete(IndexedPartRow).where(IndexedPartRow.id.in_(ids)))

    def part_refs(
        self, digests: Sequence[str] | None = None, *, any_role: bool = False
    ) -> list[tuple[str, str]]:
        """``(version_id, digest)`` of the project's versions' parts (all, or these digests);
        ``any_role``: every reference to the blob (a folder's file, rejected rows), too."""
        base = select(DatasetBlobRow.version_id, DatasetBlobRow.digest).where(
            DatasetBlobRow.project_id == self._project_id
        )
        if not any_role:
            base = base.where(DatasetBlobRow.role == "part")
        if digests is None:
            return [(v, d) for v, d in self._session.execute(base)]
        out: list[tuple[str, str]] = []
        for chunk in _chunks(sorted(set(digests))):
            stmt = base.where(DatasetBlobRow.digest.in_(chunk))
            out.extend((v, d) for v, d in self._session.execute(stmt))
        return out

    # --- erasures -------------------------------------------------------------------------

    def running(self, kind: str, subject: str | None) -> ErasureRow | None:
        """The unfinished erasure of this kind and subject, to resume it."""
        stmt = select(ErasureRow).where(
            ErasureRow.project_id == self._project_id,
            ErasureRow.kind == kind,
            ErasureRow.state == "running",
        )
        if subject is not None:
            stmt = stmt.where(ErasureRow.subject == subject)
        return self._session.execute(stmt.order_by(ErasureRow.id).limit(1)).scalar_one_or_none()

    def add_erasure(
        self, *, kind: str, subject: str | None, plan: dict[str, Any], requested_by: str
    ) -> ErasureRow:
        row = ErasureRow(
            id=new_id(),
            project_id=self._project_id,
            kind=kind,
            subject=subject,
            state="running",
            plan=plan,
            report=None,
            requested_by=requested_by,
            created_at=clock.now(),
            finished_at=None,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def erasure(self, erasure_id: str) -> ErasureRow | None:
        stmt = select(ErasureRow).where(
            ErasureRow.project_id == self._project_id, ErasureRow.id == erasure_id
        )
        return self._session.execute(stmt).scalar_one_or_none()

    def erasures(self, *, subject: str | None = None, limit: int = 100) -> list[ErasureRow]:
        stmt = select(ErasureRow).where(ErasureRow.project_id == self._project_id)
        if subject is not None:
            stmt = stmt.where(ErasureRow.subject == subject)
        stmt = stmt.order_by(ErasureRow.id.desc()).limit(min(limit, MAX_LIST))
        return list(self._session.execute(stmt).scalars())

    def claim(self, erasure_id: str, owner: str, lease: timedelta) -> bool:
        """Take (or renew) the erasure for ``owner`` until ``lease`` from now, unless another
        owner holds an unexpired claim; whether it is ``owner``'s now."""
        now = clock.now()
        result = self._session.execute(
            update(ErasureRow)
            .where(
                ErasureRow.project_id == self._project_id,
                ErasureRow.id == erasure_id,
                ErasureRow.state == "running",
                or_(
                    ErasureRow.claimed_until.is_(None),
                    ErasureRow.claimed_until < now,
                    ErasureRow.claimed_by == owner,
                ),
            )
            .values(claimed_by=owner, claimed_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    def release(self, erasure_id: str, owner: str) -> None:
        """Give the claim up (an interrupted run: a retry may take it at once)."""
        self._session.execute(
            update(ErasureRow)
            .where(
                ErasureRow.project_id == self._project_id,
                ErasureRow.id == erasure_id,
                ErasureRow.claimed_by == owner,
            )
            .values(claimed_until=None)
            .execution_options(synchronize_session=False)
        )

    def take_lease(self, name: str, owner: str, *, now: datetime, until: datetime) -> bool:
        """Hold the project's lease ``name`` until ``until`` unless another owner holds it
        at ``now`` (a conditional update, or the first insert); whether ``owner`` holds it."""
        result = self._session.execute(
            update(ComplianceLeaseRow)
            .where(
                ComplianceLeaseRow.project_id == self._project_id,
                ComplianceLeaseRow.name == name,
                or_(ComplianceLeaseRow.until <= now, ComplianceLeaseRow.owner == owner),
            )
            .values(owner=owner, until=until)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0):
            return True
        if self._session.get(ComplianceLeaseRow, (self._project_id, name)) is not None:
            return False
        values = {"project_id": self._project_id, "name": name, "owner": owner, "until": until}
        return (
            _insert_new(self._session, ComplianceLeaseRow, values, ["project_id", "name"])
            is not None
        )

    def update_plan(self, erasure_id: str, plan: dict[str, Any]) -> None:
        """Store a plan that grew during the run (versions committed meanwhile)."""
        row = self.erasure(erasure_id)
        if row is not None:
            row.plan = dict(plan)
            self._session.flush()

    def finish(self, erasure_id: str, report: dict[str, Any]) -> None:
        row = self.erasure(erasure_id)
        if row is not None:
            row.state = "done"
            row.report = report
            row.finished_at = clock.now()
            self._session.flush()

    # --- erased versions ------------------------------------------------------------------

    def erased_versions(self) -> dict[str, ErasedVersionRow]:
        stmt = select(ErasedVersionRow).where(ErasedVersionRow.project_id == self._project_id)
        return {row.version_id: row for row in self._session.execute(stmt).scalars()}

    def mark_erased(
        self,
        version_id: str,
        *,
        erasure_id: str,
        dataset: str,
        version: int,
        replaced_by: int | None,
        reason: str,
        at: datetime | None = None,
    ) -> None:
        row = self._session.get(ErasedVersionRow, version_id)
        if row is not None:
            row.replaced_by = replaced_by if replaced_by is not None else row.replaced_by
            self._session.flush()
            return
        self._session.add(
            ErasedVersionRow(
                version_id=version_id,
                project_id=self._project_id,
                erasure_id=erasure_id,
                dataset=dataset,
                version=version,
                replaced_by=replaced_by,
                reason=reason,
                erased_at=at or clock.now(),
            )
        )
        self._session.flush()
