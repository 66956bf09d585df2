"""Repositories of pipeline runs (with their steps and the step cache) and of triggers.

Scheduler replicas coordinate through row locks: on PostgreSQL the claims below use
``SELECT … FOR UPDATE SKIP LOCKED``, so two replicas never claim the same row; on SQLite every
write transaction begins ``IMMEDIATE`` (see ``_database.py``), which serialises the claims the
same way. A unique ``(trigger_id, dedupe_key)`` makes each occurrence fire once even then.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update, bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_lineage import LineageEdgeRow
from keel.store._schema_pipelines import (
    PipelineRunRow,
    PipelineTriggerRow,
    StepCacheRow,
    StepRunRow,
    TriggerFiringRow,
)
from keel.types import new_id

__all__ = ["PipelineRunRepository", "TriggerRepository", "cache_get"]


class PipelineRunRepository:
    """Pipeline runs, step runs and cached step outputs of one project."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def create(self, *, steps: Sequence[dict[str, Any]], **fields: Any) -> PipelineRunRow:
        """A RUNNING run with one PENDING row per step (``steps``: name, code_digest, params)."""
        now = clock.now()
        run = PipelineRunRow(
            id=new_id(),
            project_id=self._project_id,
            status="RUNNING",
            created_at=now,
            heartbeat_at=now,
            attempt=1,
            cancel_requested=False,
            **fields,
        )
        self._session.add(run)
        self._session.flush()
        self._conn.execute(
            _ADD_STEP,
            [
                {
                    "id": new_id(),
                    "project_id": self._project_id,
                    "pipeline_run_id": run.id,
                    "position": position,
                    "status": "PENDING",
                    "attempts": 0,
                    "cache_key": None,
                    "inputs": None,
                    "outputs": None,
                    "started_at": None,
                    "ended_at": None,
                    "error": None,
                    "traceback": None,
                    **item,
                }
                for position, item in enumerate(steps)
            ],
        )
        return run

    def get(self, run_id: str, *, lock: bool = False) -> PipelineRunRow | None:
        stmt = select(PipelineRunRow).where(
            PipelineRunRow.id == run_id, PipelineRunRow.project_id == self._project_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return self._session.execute(stmt).scalar_one_or_none()

    def recent(self, *, pipeline: str | None, limit: int) -> list[PipelineRunRow]:
        stmt = select(PipelineRunRow).where(PipelineRunRow.project_id == self._project_id)
        if pipeline is not None:
            stmt = stmt.where(PipelineRunRow.pipeline == pipeline)
        stmt = stmt.order_by(PipelineRunRow.created_at.desc(), PipelineRunRow.id.desc())
        return list(self._session.execute(stmt.limit(limit)).scalars())

    def latest_by_pipeline(self, names: Iterable[str]) -> dict[str, PipelineRunRow]:
        found: dict[str, PipelineRunRow] = {}
        for name in names:
            rows = self.recent(pipeline=name, limit=1)
            if rows:
                found[name] = rows[0]
        return found

    def steps(self, run_id: str) -> list[StepRunRow]:
        stmt = (
            select(StepRunRow)
            .where(StepRunRow.pipeline_run_id == run_id, StepRunRow.project_id == self._project_id)
            .order_by(StepRunRow.position)
        )
        return list(self._session.execute(stmt).scalars())

    def step(self, run_id: str, name: str) -> StepRunRow | None:
        stmt = select(StepRunRow).where(
            StepRunRow.pipeline_run_id == run_id,
            StepRunRow.name == name,
            StepRunRow.project_id == self._project_id,
        )
        return self._session.execute(stmt).scalar_one_or_none()

    def step_ids(self, run_id: str) -> dict[str, str]:
        rows = self._conn.execute(_STEP_IDS, {"b_run": run_id, "b_project": self._project_id})
        return {str(name): str(ident) for name, ident in rows}

    @property
    def _conn(self) -> Connection:
        return self._session.connection()

    def update_step(self, step_id: str, **values: Any) -> None:
        """Set columns of one step run: one prepared UPDATE, no ORM load."""
        self._conn.execute(
            _step_update(tuple(sorted(values))),
            {"b_id": step_id, "b_project": self._project_id}
            | {f"v_{key}": value for key, value in values.items()},
        )

    def update_rows(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Several step runs, each with the same set of columns (one executemany)."""
        if rows:
            self._conn.execute(
                _step_update(tuple(sorted(rows[0][1]))),
                [
                    {"b_id": step_id, "b_project": self._project_id}
                    | {f"v_{key}": value for key, value in values.items()}
                    for step_id, values in rows
                ],
            )

    def update_steps(self, step_ids: Sequence[str], **values: Any) -> None:
        """The same columns of several step runs (one executemany)."""
        if step_ids:
            self._conn.execute(
                _step_update(tuple(sorted(values))),
                [
                    {"b_id": step_id, "b_project": self._project_id}
                    | {f"v_{key}": value for key, value in values.items()}
                    for step_id in step_ids
                ],
            )

    def touch(self, run_id: str) -> bool:
        """Record a heartbeat of the run; returns whether cancellation was requested."""
        found = self._conn.execute(
            _TOUCH, {"b_id": run_id, "b_project": self._project_id, "b_now": clock.now()}
        ).scalar_one_or_none()
        return bool(found)

    def add_new_edges(
        self, edges: Sequence[tuple[str, str, str, str, str]], *, request_id: str
    ) -> None:
        """Insert lineage edges known to be new (each touches a run or step made just now).

        ``edges`` are ``(src_type, src_id, dst_type, dst_id, relation)``; one executemany.
        """
        if not edges:
            return
        now = clock.now()
        self._conn.execute(
            _ADD_EDGE,
            [
                {
                    "project_id": self._project_id,
                    "src_type": src_type,
                    "src_id": src_id,
                    "dst_type": dst_type,
                    "dst_id": dst_id,
                    "relation": relation,
                    "details": None,
                    "created_at": now,
                    "request_id": request_id,
                }
                for src_type, src_id, dst_type, dst_id, relation in dict.fromkeys(edges)
            ],
        )

    # -- the step cache ------------------------------------------------------------------

    def cache_get(self, cache_key: str) -> dict[str, str] | None:
        return cache_get(self._conn, self._project_id, cache_key)

    def cache_put(
        self, cache_key: str, *, step: str, outputs: dict[str, str], step_run_id: str
    ) -> None:
        self.cache_drop(cache_key)
        self._conn.execute(
            _CACHE_PUT,
            {
                "project_id": self._project_id,
                "cache_key": cache_key,
                "step": step,
                "outputs": outputs,
                "step_run_id": step_run_id,
                "created_at": clock.now(),
            },
        )

    def cache_drop(self, cache_key: str) -> None:
        self._conn.execute(_CACHE_DROP, {"b_project": self._project_id, "b_key": cache_key})


# Statements built once: building a statement costs more than running it on SQLite.
_STEP_IDS = select(StepRunRow.name, StepRunRow.id).where(
    StepRunRow.pipeline_run_id == bindparam("b_run"),
    StepRunRow.project_id == bindparam("b_project"),
)
_TOUCH = (
    update(PipelineRunRow)
    .where(
        PipelineRunRow.id == bindparam("b_id"),
        PipelineRunRow.project_id == bindparam("b_project"),
    )
    .values(heartbeat_at=bindparam("b_now"))
    .returning(PipelineRunRow.cancel_requested)
)
_ADD_EDGE = insert(LineageEdgeRow)
_ADD_STEP = insert(StepRunRow)
_CACHE_GET = select(StepCacheRow.outputs).where(
    StepCacheRow.project_id == bindparam("b_project"),
    StepCacheRow.cache_key == bindparam("b_key"),
)
_CACHE_PUT = insert(StepCacheRow)
_CACHE_DROP = delete(StepCacheRow).where(
    StepCacheRow.project_id == bindparam("b_project"),
    StepCacheRow.cache_key == bindparam("b_key"),
)


def cache_get(conn: Connection, project_id: str, cache_key: str) -> dict[str, str] | None:
    """The outputs cached under ``cache_key`` (usable on a bare Core connection)."""
    found = conn.execute(
        _CACHE_GET, {"b_project": project_id, "b_key": cache_key}
    ).scalar_one_or_none()
    return None if found is None else dict(found)


@functools.lru_cache(maxsize=32)
def _step_update(columns: tuple[str, ...]) -> Update:
    return (
        update(StepRunRow)
        .where(StepRunRow.id == bindparam("b_id"), StepRunRow.project_id == bindparam("b_project"))
        .values({column: bindparam(f"v_{column}") for column in columns})
    )


class TriggerRepository:
    """Triggers of one project and their firings, with lease-based claims."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def add(self, **fields: Any) -> PipelineTriggerRow:
        now = clock.now()
        row = PipelineTriggerRow(
            id=new_id(), project_id=self._project_id, created_at=now, updated_at=now, **fields
        )
        self._session.add(row)
        self._session.flush()
        return row

    def get_by_name(self, name: str) -> PipelineTriggerRow | None:
        stmt = select(PipelineTriggerRow).where(
            PipelineTriggerRow.project_id == self._project_id, PipelineTriggerRow.name == name
        )
        return self._session.execute(stmt).scalar_one_or_none()

    def get(self, trigger_id: str) -> PipelineTriggerRow | None:
        stmt = select(PipelineTriggerRow).where(
            PipelineTriggerRow.project_id == self._project_id, PipelineTriggerRow.id == trigger_id
        )
        return self._session.execute(stmt).scalar_one_or_none()

    def all(self, *, kind: str | None = None) -> list[PipelineTriggerRow]:
        stmt = select(PipelineTriggerRow).where(PipelineTriggerRow.project_id == self._project_id)
        if kind is not None:
            stmt = stmt.where(PipelineTriggerRow.kind == kind)
        return list(self._session.execute(stmt.order_by(PipelineTriggerRow.name)).scalars())

    def claim_due_schedules(self, now: datetime, *, limit: int) -> list[PipelineTriggerRow]:
        """Enabled schedule triggers due at ``now``, locked (skipping rows others hold)."""
        stmt = (
            select(PipelineTriggerRow)
            .where(
                PipelineTriggerRow.project_id == self._project_id,
                PipelineTriggerRow.kind == "schedule",
                PipelineTriggerRow.enabled.is_(True),
                PipelineTriggerRow.next_fire_at <= now,
            )
            .order_by(PipelineTriggerRow.next_fire_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self._session.execute(stmt).scalars())

    def add_firing(
        self,
        trigger: PipelineTriggerRow,
        *,
        dedupe_key: str,
        due_at: datetime,
        cause: dict[str, Any],
    ) -> TriggerFiringRow | None:
        """Record a pending firing; None when this occurrence was recorded already."""
        exists = self._session.execute(
            select(TriggerFiringRow.id).where(
                TriggerFiringRow.trigger_id == trigger.id,
                TriggerFiringRow.dedupe_key == dedupe_key,
            )
        ).first()
        if exists is not None:
            return None
        row = TriggerFiringRow(
            id=new_id(),
            project_id=self._project_id,
            trigger_id=trigger.id,
            dedupe_key=dedupe_key,
            due_at=due_at,
            cause=cause,
            status="pending",
            created_at=clock.now(),
        )
        self._session.add(row)
        self._session.flush()
        return row

    def claim_firings(
        self, now: datetime, *, owner: str, lease_until: datetime, limit: int
    ) -> list[TriggerFiringRow]:
        """Lease pending firings (and running ones whose lease expired) to ``owner``."""
        stmt = (
            select(TriggerFiringRow)
            .where(
                TriggerFiringRow.project_id == self._project_id,
                or_(
                    TriggerFiringRow.status == "pending",
                    (TriggerFiringRow.status == "running")
                    & (TriggerFiringRow.lease_expires_at < now),
                ),
            )
            .order_by(TriggerFiringRow.due_at, TriggerFiringRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list(self._session.execute(stmt).scalars())
        for row in rows:
            row.status, row.lease_owner, row.lease_expires_at = "running", owner, lease_until
        return rows

    def firing(self, firing_id: str) -> TriggerFiringRow | None:
        stmt = select(TriggerFiringRow).where(
            TriggerFiringRow.project_id == self._project_id, TriggerFiringRow.id == firing_id
        )
        return self._session.execute(stmt).scalar_one_or_none()

    def firings(self, *, trigger_id: str | None = None, limit: int = 100) -> list[TriggerFiringRow]:
        stmt = select(TriggerFiringRow).where(TriggerFiringRow.project_id == self._project_id)
        if trigger_id is not None:
            stmt = stmt.where(TriggerFiringRow.trigger_id == trigger_id)
        stmt = stmt.order_by(TriggerFiringRow.created_at.desc(), TriggerFiringRow.id.desc())
        return list(self._session.execute(stmt.limit(limit)).scalars())
