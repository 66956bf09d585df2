"""Repository of projects (tenants) and the role bindings inside them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema import ProjectRow, RoleBindingRow
from keel.types import new_id

__all__ = ["ProjectRepository"]


class ProjectRepository:
    """Projects and role bindings, inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def count(self) -> int:
        return int(self._session.execute(select(func.count()).select_from(ProjectRow)).scalar_one())

    def by_name(self, name: str) -> ProjectRow | None:
        return self._session.execute(
            select(ProjectRow).where(ProjectRow.name == name)
        ).scalar_one_or_none()

    def create(self, name: str, *, description: str = "") -> ProjectRow:
        row = ProjectRow(id=new_id(), name=name, description=description, created_at=clock.now())
        self._session.add(row)
        self._session.flush()
        return row

    def list_for(self, principal: str) -> list[ProjectRow]:
        """Projects where ``principal`` holds a role, by name."""
        stmt = (
            select(ProjectRow)
            .join(RoleBindingRow, RoleBindingRow.project_id == ProjectRow.id)
            .where(RoleBindingRow.principal == principal)
            .order_by(ProjectRow.name)
        )
        return list(self._session.execute(stmt).scalars())

    def roles_of(self, project_id: str, principal: str) -> frozenset[str]:
        rows = self._session.execute(
            select(RoleBindingRow.role).where(
                RoleBindingRow.project_id == project_id, RoleBindingRow.principal == principal
            )
        ).scalars()
        return frozenset(rows)

    def bind(self, project_id: str, principal: str, role: str) -> None:
        """Give ``principal`` exactly ``role`` in the project (replacing an earlier one)."""
        row = self._session.get(RoleBindingRow, (project_id, principal))
        if row is None:
            self._session.add(
                RoleBindingRow(
                    project_id=project_id, principal=principal, role=role, created_at=clock.now()
                )
            )
        else:
            row.role = role
        self._session.flush()

    def bindings(self, project_id: str) -> list[RoleBindingRow]:
        return list(
            self._session.execute(
                select(RoleBindingRow)
                .where(RoleBindingRow.project_id == project_id)
                .order_by(RoleBindingRow.principal)
            ).scalars()
        )
