"""Repository of late ground truth: one label per prediction id, written in batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_monitoring import GroundTruthRow
from keel.types import new_id

__all__ = ["GroundTruthRepository", "LabelWrite"]

_CHUNK = 500


class LabelWrite:
    """What a batch write did: stored, exact duplicates, conflicting duplicates."""

    __slots__ = ("conflicts", "duplicates", "replaced", "stored")

    def __init__(self) -> None:
        self.stored = 0
        self.duplicates = 0
        self.conflicts = 0
        self.replaced = 0


class GroundTruthRepository:
    """Ground truth labels of one project, keyed by prediction id."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def find(self, prediction_ids: Iterable[str]) -> dict[str, str]:
        """The stored (JSON-encoded) label of each known prediction id."""
        ids = list(dict.fromkeys(prediction_ids))
        found: dict[str, str] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = self._session.execute(
                select(GroundTruthRow.prediction_id, GroundTruthRow.label).where(
                    GroundTruthRow.project_id == self._project_id,
                    GroundTruthRow.prediction_id.in_(chunk),
                )
            ).all()
            found.update(dict(rows))
        return found

    def add(
        self,
        labels: Sequence[tuple[str, str]],
        *,
        deployment: str | None = None,
        replace: bool = False,
    ) -> tuple[LabelWrite, str]:
        """Store ``(prediction_id, json_label)`` pairs once each; returns counts and batch id.

        A prediction id already stored with the same label is a duplicate; with another
        label it is a conflict, kept as first stored unless ``replace``.
        """
        result = LabelWrite()
        batch = new_id()
        existing = self.find(pid for pid, _ in labels)
        now = clock.now()
        fresh: dict[str, str] = {}
        for pid, label in labels:
            before = existing.get(pid, fresh.get(pid))
            if before is None:
                fresh[pid] = label
            elif before == label:
                result.duplicates += 1
            else:
                result.conflicts += 1
                if replace:
                    if pid in fresh:
                        fresh[pid] = label
                    else:
                        existing[pid] = label
                        self._replace(pid, label, now)
                    result.replaced += 1
        rows = [
            {
                "id": new_id(),
                "project_id": self._project_id,
                "prediction_id": pid,
                "label": label,
                "deployment": deployment,
                "batch": batch,
                "received_at": now,
            }
            for pid, label in fresh.items()
        ]
        for start in range(0, len(rows), _CHUNK):
            self._session.execute(insert(GroundTruthRow), rows[start : start + _CHUNK])
        result.stored = len(rows)
        return result, batch

    def _replace(self, prediction_id: str, label: str, now: datetime) -> None:
        row = self._session.scalars(
            select(GroundTruthRow).where(
                GroundTruthRow.project_id == self._project_id,
                GroundTruthRow.prediction_id == prediction_id,
            )
        ).one()
        row.label, row.received_at = label, now

    def received_since(self, since: datetime, *, limit: int = 50_000) -> list[tuple[str, str]]:
        """``(prediction_id, label)`` received at or after ``since``, oldest first."""
        rows = self._session.execute(
            select(GroundTruthRow.prediction_id, GroundTruthRow.label)
            .where(
                GroundTruthRow.project_id == self._project_id,
                GroundTruthRow.received_at >= since,
            )
            .order_by(GroundTruthRow.received_at)
            .limit(limit)
        ).all()
        return [(pid, label) for pid, label in rows]

    def count(self) -> int:
        from sqlalchemy import func

        found = self._session.scalar(
            select(func.count()).where(GroundTruthRow.project_id == self._project_id)
        )
        return int(found or 0)
