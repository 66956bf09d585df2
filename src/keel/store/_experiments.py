"""Repository of experiments and their tags."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema import ExperimentRow, ExperimentTagRow
from keel.types import new_id

__all__ = ["ExperimentRepository"]


class ExperimentRepository:
    """Experiments of one project, inside the caller's transaction."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def get(self, experiment_id: str) -> ExperimentRow | None:
        return self._session.execute(
            select(ExperimentRow).where(
                ExperimentRow.id == experiment_id, ExperimentRow.project_id == self._project_id
            )
        ).scalar_one_or_none()

    def by_name(self, name: str) -> ExperimentRow | None:
        return self._session.execute(
            select(ExperimentRow).where(
                ExperimentRow.name == name, ExperimentRow.project_id == self._project_id
            )
        ).scalar_one_or_none()

    def create(self, name: str, *, description: str = "") -> ExperimentRow:
        now = clock.now()
        row = ExperimentRow(
            id=new_id(),
            project_id=self._project_id,
            name=name,
            description=description,
            lifecycle="active",
            created_at=now,
            updated_at=now,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def list(self, *, include_deleted: bool = False) -> list[ExperimentRow]:
        stmt = select(ExperimentRow).where(ExperimentRow.project_id == self._project_id)
        if not include_deleted:
            stmt = stmt.where(ExperimentRow.lifecycle == "active")
        return list(self._session.execute(stmt.order_by(ExperimentRow.name)).scalars())

    def tags(self, experiment_id: str) -> dict[str, str]:
        rows = self._session.execute(
            select(ExperimentTagRow).where(ExperimentTagRow.experiment_id == experiment_id)
        ).scalars()
        return {row.key: row.value for row in rows}

    def set_tag(self, experiment_id: str, key: str, value: str) -> None:
        row = self._session.get(ExperimentTagRow, (experiment_id, key))
        if row is None:
            self._session.add(ExperimentTagRow(experiment_id=experiment_id, key=key, value=value))
        else:
            row.value = value
        self._session.flush()
