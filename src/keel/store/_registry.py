"""Repository of the model registry: models, versions, tags, aliases and alias history."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema import (
    AliasHistoryRow,
    AliasRow,
    ModelTagRow,
    ModelVersionRow,
    ModelVersionTagRow,
    RegisteredModelRow,
)
from keel.types import new_id

__all__ = ["RegistryRepository"]


class RegistryRepository:
    """Registered models of one project, inside the caller's transaction."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    # --- models -------------------------------------------------------------------------

    def model(self, name: str, *, lock: bool = False) -> RegisteredModelRow | None:
        stmt = select(RegisteredModelRow).where(
            RegisteredModelRow.project_id == self._project_id, RegisteredModelRow.name == name
        )
        if lock:
            stmt = stmt.with_for_update()
        return self._session.execute(stmt).scalar_one_or_none()

    def create_model(self, name: str, *, description: str = "") -> RegisteredModelRow:
        now = clock.now()
        row = RegisteredModelRow(
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

    def models(self, *, name_like: str | None = None) -> list[RegisteredModelRow]:
        stmt = select(RegisteredModelRow).where(RegisteredModelRow.project_id == self._project_id)
        if name_like:
            stmt = stmt.where(RegisteredModelRow.name.like(name_like))
        return list(self._session.execute(stmt.order_by(RegisteredModelRow.name)).scalars())

    def model_tags(self, model_id: str) -> dict[str, str]:
        rows = self._session.execute(
            select(ModelTagRow).where(ModelTagRow.model_id == model_id)
        ).scalars()
        return {row.key: row.value for row in rows}

    def set_model_tag(self, model_id: str, key: str, value: str) -> None:
        row = self._session.get(ModelTagRow, (model_id, key))
        if row is None:
            self._session.add(ModelTagRow(model_id=model_id, key=key, value=value))
        else:
            row.value = value
        self._session.flush()

    # --- versions -----------------------------------------------------------------------

    def next_version(self, model: RegisteredModelRow) -> int:
        """The number of ``model``'s next version, taken: one above every number it ever gave,
        so a deleted version's number is never given to another model (a deployment or a
        ``name:3`` written down keeps meaning one artifact). The caller holds the model's
        row lock."""
        current = self._session.execute(
            select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model.id)
        ).scalar_one()
        number = max(int(current or 0), model.last_version or 0) + 1
        model.last_version = number
        return number

    def add_version(self, row: ModelVersionRow) -> ModelVersionRow:
        row.id = new_id()
        row.created_at = row.updated_at = clock.now()
        self._session.add(row)
        self._session.flush()
        return row

    def version(self, model_id: str, version: int) -> ModelVersionRow | None:
        return self._session.execute(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model_id, ModelVersionRow.version == version
            )
        ).scalar_one_or_none()

    def versions(self, model_id: str) -> list[ModelVersionRow]:
        return list(
            self._session.execute(
                select(ModelVersionRow)
                .where(ModelVersionRow.model_id == model_id)
                .order_by(ModelVersionRow.version)
            ).scalars()
        )

    def latest_version(self, model_id: str) -> ModelVersionRow | None:
        return self._session.execute(
            select(ModelVersionRow)
            .where(ModelVersionRow.model_id == model_id)
            .order_by(ModelVersionRow.version.desc())
            .limit(1)
        ).scalar_one_or_none()

    def version_tags(self, version_id: str) -> dict[str, str]:
        rows = self._session.execute(
            select(ModelVersionTagRow).where(ModelVersionTagRow.version_id == version_id)
        ).scalars()
        return {row.key: row.value for row in rows}

    def set_version_tag(self, version_id: str, key: str, value: str) -> None:
        row = self._session.get(ModelVersionTagRow, (version_id, key))
        if row is None:
            self._session.add(ModelVersionTagRow(version_id=version_id, key=key, value=value))
        else:
            row.value = value
        self._session.flush()

    # --- aliases ------------------------------------------------------------------------

    def aliases(self, model_id: str) -> dict[str, int]:
        rows = self._session.execute(
            select(AliasRow).where(AliasRow.model_id == model_id).order_by(AliasRow.alias)
        ).scalars()
        return {row.alias: row.version for row in rows}

    def alias(self, model_id: str, alias: str) -> AliasRow | None:
        return self._session.get(AliasRow, (model_id, alias))

    def move_alias(
        self,
        model_id: str,
        alias: str,
        version: int | None,
        *,
        principal: str,
        kind: str,
        reason: str = "",
    ) -> int | None:
        """Point ``alias`` at ``version`` (None deletes it), record the move; return the old."""
        row = self._session.get(AliasRow, (model_id, alias))
        previous = None if row is None else row.version
        if version is None:
            if row is not None:
                self._session.delete(row)
        elif row is None:
            self._session.add(
                AliasRow(model_id=model_id, alias=alias, version=version, updated_at=clock.now())
            )
        else:
            row.version = version
            row.updated_at = clock.now()
        self._session.add(
            AliasHistoryRow(
                model_id=model_id,
                alias=alias,
                kind=kind,
                from_version=previous,
                to_version=version,
                principal=principal,
                reason=reason,
                moved_at=clock.now(),
            )
        )
        self._session.flush()
        return previous

    def history(self, model_id: str, alias: str | None = None) -> list[AliasHistoryRow]:
        stmt = select(AliasHistoryRow).where(AliasHistoryRow.model_id == model_id)
        if alias is not None:
            stmt = stmt.where(AliasHistoryRow.alias == alias)
        return list(self._session.execute(stmt.order_by(AliasHistoryRow.id)).scalars())

    def last_undoable_move(self, model_id: str, alias: str) -> AliasHistoryRow | None:
        """The newest 'set' move of ``alias`` that no rollback has undone yet."""
        return self._session.execute(
            select(AliasHistoryRow)
            .where(
                AliasHistoryRow.model_id == model_id,
                AliasHistoryRow.alias == alias,
                AliasHistoryRow.kind == "set",
                AliasHistoryRow.undone.is_(False),
            )
            .order_by(AliasHistoryRow.id.desc())
            .limit(1)
        ).scalar_one_or_none()
