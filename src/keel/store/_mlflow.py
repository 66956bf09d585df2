"""Repository of the MLflow-only records: logged models and their files, run I/O, versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_mlflow import LoggedModelFileRow, LoggedModelRow, MlflowVersionRow, RunIoRow

__all__ = ["MlflowRepository"]


class MlflowRepository:
    """MLflow records of one project, inside the caller's transaction."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    # --- logged models ------------------------------------------------------------------

    def add_model(self, row: LoggedModelRow) -> LoggedModelRow:
        row.project_id = self._project_id
        self._session.add(row)
        self._session.flush()
        return row

    def model(self, model_id: str) -> LoggedModelRow | None:
        return self._session.execute(
            select(LoggedModelRow).where(
                LoggedModelRow.id == model_id, LoggedModelRow.project_id == self._project_id
            )
        ).scalar_one_or_none()

    def models(
        self, experiment_ids: Sequence[str] | None, *, limit: int, offset: int
    ) -> list[LoggedModelRow]:
        stmt = select(LoggedModelRow).where(
            LoggedModelRow.project_id == self._project_id, LoggedModelRow.lifecycle == "active"
        )
        if experiment_ids is not None:
            stmt = stmt.where(LoggedModelRow.experiment_id.in_(list(experiment_ids)))
        stmt = stmt.order_by(LoggedModelRow.created_ms.desc(), LoggedModelRow.id)
        return list(self._session.execute(stmt.limit(limit).offset(offset)).scalars())

    def add_file(self, model_id: str, path: str, *, digest: str, size: int) -> None:
        row = self._session.get(LoggedModelFileRow, (model_id, path))
        if row is None:
            self._session.add(
                LoggedModelFileRow(
                    model_id=model_id, path=path, digest=digest, size=size, created_at=clock.now()
                )
            )
        else:
            row.digest, row.size = digest, size

    def files(self, model_id: str) -> list[LoggedModelFileRow]:
        stmt = (
            select(LoggedModelFileRow)
            .where(LoggedModelFileRow.model_id == model_id)
            .order_by(LoggedModelFileRow.path)
        )
        return list(self._session.execute(stmt).scalars())

    def file(self, model_id: str, path: str) -> LoggedModelFileRow | None:
        return self._session.get(LoggedModelFileRow, (model_id, path))

    # --- run inputs and outputs ---------------------------------------------------------

    def add_io(self, run_id: str, kind: str, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Record inputs or outputs of a run; one already recorded (same ref) is kept as is."""
        known = set(
            self._session.execute(
                select(RunIoRow.ref).where(RunIoRow.run_id == run_id, RunIoRow.kind == kind)
            ).scalars()
        )
        for ref, body in items:
            if ref not in known:
                known.add(ref)
                self._session.add(RunIoRow(run_id=run_id, kind=kind, ref=ref, body=body))
        self._session.flush()

    def io(self, run_ids: Sequence[str]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Each run's inputs and outputs as (kind, body), in the order they were recorded."""
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return out
        stmt = select(RunIoRow).where(RunIoRow.run_id.in_(list(run_ids))).order_by(RunIoRow.id)
        for row in self._session.execute(stmt).scalars():
            out[row.run_id].append((row.kind, row.body))
        return out

    # --- model versions -----------------------------------------------------------------

    def put_version(self, row: MlflowVersionRow) -> None:
        row.project_id = self._project_id
        self._session.merge(row)

    def versions(self, version_ids: Sequence[str]) -> dict[str, MlflowVersionRow]:
        if not version_ids:
            return {}
        stmt = select(MlflowVersionRow).where(
            MlflowVersionRow.version_id.in_(list(version_ids)),
            MlflowVersionRow.project_id == self._project_id,
        )
        return {row.version_id: row for row in self._session.execute(stmt).scalars()}

    def drop_version(self, version_id: str) -> None:
        self._session.execute(
            delete(MlflowVersionRow).where(MlflowVersionRow.version_id == version_id)
        )
