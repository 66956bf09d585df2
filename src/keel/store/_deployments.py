"""Repository of deployments, their revisions, and prediction log batches of one project."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_serving import (
    DeploymentRevisionRow,
    DeploymentRow,
    PredictionLogBatchRow,
)
from keel.types import new_id

__all__ = ["DeploymentRepository"]


class DeploymentRepository:
    """Deployments (with every revision) and prediction log batches, scoped to one project."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def get(self, name: str, *, for_update: bool = False) -> DeploymentRow | None:
        query = select(DeploymentRow).where(
            DeploymentRow.project_id == self._project_id, DeploymentRow.name == name
        )
        if for_update:
            query = query.with_for_update()
        return self._session.scalars(query).one_or_none()

    def list(self, *, environment: str | None = None) -> Sequence[DeploymentRow]:
        query = select(DeploymentRow).where(DeploymentRow.project_id == self._project_id)
        if environment is not None:
            query = query.where(DeploymentRow.environment == environment)
        return self._session.scalars(query.order_by(DeploymentRow.name)).all()

    def create(self, **fields: Any) -> DeploymentRow:
        now = clock.now()
        row = DeploymentRow(
            id=new_id(),
            project_id=self._project_id,
            revision=0,
            created_at=now,
            updated_at=now,
            **fields,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def add_revision(
        self,
        row: DeploymentRow,
        *,
        action: str,
        state: dict[str, Any],
        reason: str,
        principal: str,
        analysis: dict[str, Any] | None = None,
    ) -> DeploymentRevisionRow:
        """Move ``row`` to ``state`` and keep the move as the next revision."""
        now = clock.now()
        row.revision += 1
        row.state = state
        row.phase = str(state["phase"])
        row.strategy = str(state["strategy"])
        row.updated_at = now
        revision = DeploymentRevisionRow(
            id=new_id(),
            project_id=self._project_id,
            deployment_id=row.id,
            revision=row.revision,
            action=action,
            state=state,
            reason=reason,
            analysis=analysis,
            created_by=principal,
            created_at=now,
        )
        self._session.add(revision)
        self._session.flush()
        return revision

    def revisions(self, deployment_id: str) -> Sequence[DeploymentRevisionRow]:
        return self._session.scalars(
            select(DeploymentRevisionRow)
            .where(
                DeploymentRevisionRow.project_id == self._project_id,
                DeploymentRevisionRow.deployment_id == deployment_id,
            )
            .order_by(DeploymentRevisionRow.revision)
        ).all()

    def revision(self, deployment_id: str, number: int) -> DeploymentRevisionRow | None:
        return self._session.scalars(
            select(DeploymentRevisionRow).where(
                DeploymentRevisionRow.project_id == self._project_id,
                DeploymentRevisionRow.deployment_id == deployment_id,
                DeploymentRevisionRow.revision == number,
            )
        ).one_or_none()

    # --- prediction log batches -----------------------------------------------------------

    def add_log_batch(
        self,
        *,
        deployment: str,
        batch_key: str,
        digest: str,
        rows: int,
        first_at: datetime,
        last_at: datetime,
    ) -> bool:
        """Record a stored batch; False if ``batch_key`` was already recorded (a retry)."""
        exists = self._session.scalars(
            select(PredictionLogBatchRow.id).where(
                PredictionLogBatchRow.project_id == self._project_id,
                PredictionLogBatchRow.batch_key == batch_key,
            )
        ).first()
        if exists is not None:
            return False
        self._session.add(
            PredictionLogBatchRow(
                id=new_id(),
                project_id=self._project_id,
                deployment=deployment,
                batch_key=batch_key,
                digest=digest,
                rows=rows,
                first_at=first_at,
                last_at=last_at,
                created_at=clock.now(),
            )
        )
        self._session.flush()
        return True

    def log_batches(
        self, deployment: str | None, *, since: datetime | None, until: datetime | None
    ) -> Sequence[PredictionLogBatchRow]:
        """Batches holding rows with ``since <= timestamp < until``, by their first row's time;
        ``deployment=None``: of every deployment."""
        query = select(PredictionLogBatchRow).where(
            PredictionLogBatchRow.project_id == self._project_id
        )
        if deployment is not None:
            query = query.where(PredictionLogBatchRow.deployment == deployment)
        if since is not None:
            query = query.where(PredictionLogBatchRow.last_at >= since)
        if until is not None:
            query = query.where(PredictionLogBatchRow.first_at < until)
        return self._session.scalars(query.order_by(PredictionLogBatchRow.first_at)).all()
