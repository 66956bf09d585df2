"""Repository of datasets: versions, their blobs, tags, validation reports, stream ledgers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema import ModelVersionRow, RegisteredModelRow, RunArtifactRow, RunRow
from keel.store._schema_data import (
    DatasetBlobRow,
    DatasetPendingBlobRow,
    DatasetRow,
    DatasetSecretRow,
    DatasetStreamMessageRow,
    DatasetTagRow,
    DatasetVersionRow,
    ValidationReportRow,
)
from keel.types import new_id

__all__ = ["DatasetRepository"]

_CHUNK = 500


class DatasetRepository:
    """Datasets of one project, inside the caller's transaction."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    # --- datasets -------------------------------------------------------------------------

    def dataset(self, name: str, *, lock: bool = False) -> DatasetRow | None:
        stmt = select(DatasetRow).where(
            DatasetRow.project_id == self._project_id, DatasetRow.name == name
        )
        if lock:
            stmt = stmt.with_for_update()
        return self._session.execute(stmt).scalar_one_or_none()

    def create_dataset(self, name: str, *, description: str = "") -> DatasetRow:
        now = clock.now()
        row = DatasetRow(
            id=new_id(),
            project_id=self._project_id,
            name=name,
            description=description,
            created_at=now,
            updated_at=now,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def datasets(self) -> list[DatasetRow]:
        stmt = (
            select(DatasetRow)
            .where(DatasetRow.project_id == self._project_id)
            .order_by(DatasetRow.name)
        )
        return list(self._session.execute(stmt).scalars())

    def touch(self, row: DatasetRow) -> None:
        row.updated_at = clock.now()
        self._session.flush()

    # --- versions -------------------------------------------------------------------------

    def add_version(self, row: DatasetVersionRow, blobs: Iterable[tuple[str, str]]) -> None:
        self._session.add(row)
        self._session.flush()
        unique = dict(blobs)
        items = [
            {"version_id": row.id, "digest": d, "project_id": self._project_id, "role": r}
            for d, r in unique.items()
        ]
        if items:
            self._session.execute(insert(DatasetBlobRow), items)

    def add_blob(self, version_id: str, digest: str, role: str) -> None:
        if self._session.get(DatasetBlobRow, (version_id, digest)) is None:
            self._session.add(
                DatasetBlobRow(
                    version_id=version_id, digest=digest, project_id=self._project_id, role=role
                )
            )
            self._session.flush()

    def version(self, dataset_id: str, number: int) -> DatasetVersionRow | None:
        return self._session.execute(
            select(DatasetVersionRow).where(
                DatasetVersionRow.dataset_id == dataset_id,
                DatasetVersionRow.version == number,
                DatasetVersionRow.project_id == self._project_id,
            )
        ).scalar_one_or_none()

    def version_by_id(self, version_id: str) -> DatasetVersionRow | None:
        return self._session.execute(
            select(DatasetVersionRow).where(
                DatasetVersionRow.id == version_id,
                DatasetVersionRow.project_id == self._project_id,
            )
        ).scalar_one_or_none()

    def latest_number(self, dataset_id: str) -> int:
        rows = self._session.execute(
            select(DatasetVersionRow.version)
            .where(DatasetVersionRow.dataset_id == dataset_id)
            .order_by(DatasetVersionRow.version.desc())
            .limit(1)
        ).first()
        return 0 if rows is None else int(rows[0])

    def versions(self, dataset_id: str) -> list[DatasetVersionRow]:
        stmt = (
            select(DatasetVersionRow)
            .where(
                DatasetVersionRow.dataset_id == dataset_id,
                DatasetVersionRow.project_id == self._project_id,
            )
            .order_by(DatasetVersionRow.version)
        )
        return list(self._session.execute(stmt).scalars())

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per dataset id: (number of versions, latest version number)."""
        from sqlalchemy import func

        stmt = (
            select(
                DatasetVersionRow.dataset_id,
                func.count(DatasetVersionRow.id),
                func.max(DatasetVersionRow.version),
            )
            .where(DatasetVersionRow.project_id == self._project_id)
            .group_by(DatasetVersionRow.dataset_id)
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in self._session.execute(stmt)}

    # --- tags -----------------------------------------------------------------------------

    def tags(self, dataset_id: str) -> dict[str, int]:
        stmt = select(DatasetTagRow.tag, DatasetTagRow.version).where(
            DatasetTagRow.dataset_id == dataset_id
        )
        return {row.tag: int(row.version) for row in self._session.execute(stmt)}

    def set_tag(self, dataset_id: str, tag: str, version: int) -> int | None:
        """Point ``tag`` at ``version``; return the version it pointed at before."""
        row = self._session.get(DatasetTagRow, (dataset_id, tag))
        if row is None:
            self._session.add(
                DatasetTagRow(
                    dataset_id=dataset_id, tag=tag, version=version, updated_at=clock.now()
                )
            )
            self._session.flush()
            return None
        previous = int(row.version)
        row.version = version
        row.updated_at = clock.now()
        self._session.flush()
        return previous

    def delete_tag(self, dataset_id: str, tag: str) -> bool:
        result = self._session.execute(
            delete(DatasetTagRow).where(
                DatasetTagRow.dataset_id == dataset_id, DatasetTagRow.tag == tag
            )
        )
        return bool(getattr(result, "rowcount", 0))

    # --- validation reports ---------------------------------------------------------------

    def add_report(self, row: ValidationReportRow) -> None:
        self._session.add(row)
        self._session.flush()

    def latest_report(self, version_id: str) -> ValidationReportRow | None:
        return self._session.execute(
            select(ValidationReportRow)
            .where(
                ValidationReportRow.version_id == version_id,
                ValidationReportRow.project_id == self._project_id,
            )
            .order_by(ValidationReportRow.created_at.desc(), ValidationReportRow.id.desc())
            .limit(1)
        ).scalar_one_or_none()

    def report(self, report_id: str) -> ValidationReportRow | None:
        return self._session.execute(
            select(ValidationReportRow).where(
                ValidationReportRow.id == report_id,
                ValidationReportRow.project_id == self._project_id,
            )
        ).scalar_one_or_none()

    def reports(self, version_id: str) -> list[ValidationReportRow]:
        return list(
            self._session.execute(
                select(ValidationReportRow)
                .where(
                    ValidationReportRow.version_id == version_id,
                    ValidationReportRow.project_id == self._project_id,
                )
                .order_by(ValidationReportRow.created_at, ValidationReportRow.id)
            ).scalars()
        )

    # --- pending blobs and garbage collection ---------------------------------------------

    def add_pending(self, ingest_id: str, digests: Sequence[str]) -> None:
        now = clock.now()
        rows = [
            {"project_id": self._project_id, "ingest_id": ingest_id, "digest": d, "created_at": now}
            for d in digests
        ]
        if rows:
            self._session.execute(insert(DatasetPendingBlobRow), rows)

    def clear_pending(self, ingest_id: str) -> None:
        self._session.execute(
            delete(DatasetPendingBlobRow).where(
                DatasetPendingBlobRow.ingest_id == ingest_id,
                DatasetPendingBlobRow.project_id == self._project_id,
            )
        )

    def stale_pending(self, before: datetime) -> dict[str, list[int]]:
        """Digests whose only pending entries are older than ``before`` → their entry ids."""
        recent = set(
            self._session.execute(
                select(DatasetPendingBlobRow.digest).where(
                    DatasetPendingBlobRow.project_id == self._project_id,
                    DatasetPendingBlobRow.created_at >= before,
                )
            ).scalars()
        )
        found: dict[str, list[int]] = {}
        for row in self._session.execute(
            select(DatasetPendingBlobRow.id, DatasetPendingBlobRow.digest).where(
                DatasetPendingBlobRow.project_id == self._project_id,
                DatasetPendingBlobRow.created_at < before,
            )
        ):
            if row.digest not in recent:
                found.setdefault(row.digest, []).append(int(row.id))
        return found

    def delete_pending(self, ids: Sequence[int]) -> None:
        for start in range(0, len(ids), _CHUNK):
            self._session.execute(
                delete(DatasetPendingBlobRow).where(
                    DatasetPendingBlobRow.id.in_(list(ids[start : start + _CHUNK]))
                )
            )

    def referenced(self, digests: Sequence[str]) -> set[str]:
        """Which of ``digests`` any object of the project still references."""
        found: set[str] = set()
        for start in range(0, len(digests), _CHUNK):
            chunk = list(digests[start : start + _CHUNK])
            queries: list[Any] = [
                select(DatasetBlobRow.digest).where(
                    DatasetBlobRow.project_id == self._project_id, DatasetBlobRow.digest.in_(chunk)
                ),
                select(ValidationReportRow.html_digest).where(
                    ValidationReportRow.project_id == self._project_id,
                    ValidationReportRow.html_digest.in_(chunk),
                ),
                select(DatasetSecretRow.digest).where(
                    DatasetSecretRow.project_id == self._project_id,
                    DatasetSecretRow.digest.in_(chunk),
                ),
                select(RunArtifactRow.digest)
                .join(RunRow, RunRow.id == RunArtifactRow.run_id)
                .where(RunRow.project_id == self._project_id, RunArtifactRow.digest.in_(chunk)),
                select(ModelVersionRow.artifact_digest)
                .join(RegisteredModelRow, RegisteredModelRow.id == ModelVersionRow.model_id)
                .where(
                    RegisteredModelRow.project_id == self._project_id,
                    ModelVersionRow.artifact_digest.in_(chunk),
                ),
            ]
            for query in queries:
                found.update(str(d) for d in self._session.execute(query).scalars() if d)
        return found

    # --- streams and secrets --------------------------------------------------------------

    def seen_messages(self, dataset_id: str, stream: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            found.update(
                self._session.execute(
                    select(DatasetStreamMessageRow.message_id).where(
                        DatasetStreamMessageRow.dataset_id == dataset_id,
                        DatasetStreamMessageRow.stream == stream,
                        DatasetStreamMessageRow.message_id.in_(list(ids[start : start + _CHUNK])),
                    )
                ).scalars()
            )
        return found

    def record_messages(
        self, dataset_id: str, stream: str, ids: Sequence[str], version: int
    ) -> None:
        rows = [
            {"dataset_id": dataset_id, "stream": stream, "message_id": i, "version": version}
            for i in ids
        ]
        if rows:
            self._session.execute(insert(DatasetStreamMessageRow), rows)

    def secret(self, purpose: str) -> str | None:
        row = self._session.get(DatasetSecretRow, (self._project_id, purpose))
        return None if row is None else row.digest

    def set_secret(self, purpose: str, digest: str) -> None:
        self._session.add(
            DatasetSecretRow(
                project_id=self._project_id, purpose=purpose, digest=digest, created_at=clock.now()
            )
        )
        self._session.flush()
