"""Repository of principals, API tokens and role-binding removal (identity is not per project)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Engine, and_, bindparam, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from keel import clock
from keel.errors import StorageError
from keel.store._schema import ProjectRow, RoleBindingRow
from keel.store._schema_identity import ApiTokenRow, PrincipalRow
from keel.types import new_id

__all__ = ["Credential", "IdentityRepository", "read_credential"]


class Credential(NamedTuple):
    """A token's stored facts with its principal, project and the principal's role there."""

    secret_hash: str
    role: str
    expires_at: datetime
    revoked_at: datetime | None
    principal: str
    disabled: bool
    project_id: str
    project: str
    held: str | None


# The per-request lookup, built once: one statement, plain columns (no ORM objects to build).
_CREDENTIAL = (
    select(
        ApiTokenRow.secret_hash,
        ApiTokenRow.role,
        ApiTokenRow.expires_at,
        ApiTokenRow.revoked_at,
        PrincipalRow.name.label("principal"),
        PrincipalRow.disabled,
        ProjectRow.id.label("project_id"),
        ProjectRow.name.label("project"),
        RoleBindingRow.role.label("held"),
    )
    .join(PrincipalRow, PrincipalRow.id == ApiTokenRow.principal_id)
    .join(ProjectRow, ProjectRow.id == ApiTokenRow.project_id)
    .outerjoin(
        RoleBindingRow,
        and_(
            RoleBindingRow.project_id == ApiTokenRow.project_id,
            RoleBindingRow.principal == PrincipalRow.name,
        ),
    )
    .where(ApiTokenRow.id == bindparam("token_id"))
)


def read_credential(engine: Engine, token_id: str) -> Credential | None:
    """The per-request lookup on a bare connection (no ORM session: it is the hot path)."""
    try:
        with engine.connect() as conn:
            row = conn.execute(_CREDENTIAL, {"token_id": token_id}).first()
    except SQLAlchemyError as exc:
        raise StorageError(
            f"The metadata store failed while checking a token: {str(exc)[:300]}. Check that "
            "the database is reachable (keel config show)."
        ) from exc
    return None if row is None else Credential(*row)


class IdentityRepository:
    """Principals and tokens, inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    # --- principals ---------------------------------------------------------------------

    def principal(self, name: str) -> PrincipalRow | None:
        return self._session.execute(
            select(PrincipalRow).where(PrincipalRow.name == name)
        ).scalar_one_or_none()

    def principals(self, *, kind: str | None = None) -> list[PrincipalRow]:
        stmt = select(PrincipalRow).order_by(PrincipalRow.name)
        if kind is not None:
            stmt = stmt.where(PrincipalRow.kind == kind)
        return list(self._session.execute(stmt).scalars())

    def add_principal(
        self, name: str, *, kind: str, display_name: str, email: str | None, is_admin: bool
    ) -> PrincipalRow:
        row = PrincipalRow(
            id=new_id(),
            name=name,
            kind=kind,
            display_name=display_name,
            email=email,
            is_admin=is_admin,
            disabled=False,
            created_at=clock.now(),
        )
        self._session.add(row)
        self._session.flush()
        return row

    def count_admins(self) -> int:
        stmt = select(func.count()).where(
            PrincipalRow.is_admin.is_(True), PrincipalRow.disabled.is_(False)
        )
        return int(self._session.execute(stmt).scalar_one())

    # --- tokens -------------------------------------------------------------------------

    def add_token(
        self,
        *,
        token_id: str,
        principal_id: str,
        project_id: str,
        role: str,
        secret_hash: str,
        description: str,
        created_by: str,
        expires_at: datetime,
    ) -> ApiTokenRow:
        row = ApiTokenRow(
            id=token_id,
            principal_id=principal_id,
            project_id=project_id,
            role=role,
            secret_hash=secret_hash,
            description=description,
            created_by=created_by,
            created_at=clock.now(),
            expires_at=expires_at,
            revoked_at=None,
            last_used_at=None,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def token(self, token_id: str) -> ApiTokenRow | None:
        return self._session.get(ApiTokenRow, token_id)

    def token_with_owner(
        self, token_id: str
    ) -> tuple[ApiTokenRow, PrincipalRow, ProjectRow] | None:
        """The token, its principal and its project in one query (the per-request path)."""
        stmt = (
            select(ApiTokenRow, PrincipalRow, ProjectRow)
            .join(PrincipalRow, PrincipalRow.id == ApiTokenRow.principal_id)
            .join(ProjectRow, ProjectRow.id == ApiTokenRow.project_id)
            .where(ApiTokenRow.id == token_id)
        )
        found = self._session.execute(stmt).first()
        return None if found is None else (found[0], found[1], found[2])

    def credential(self, token_id: str) -> Credential | None:
        """What authenticating a token needs, in one statement (None for an unknown id)."""
        row = self._session.execute(_CREDENTIAL, {"token_id": token_id}).first()
        return None if row is None else Credential(*row)

    def tokens(self, *, principal_id: str | None = None) -> list[tuple[ApiTokenRow, str, str]]:
        """Tokens with their principal's and project's names, newest first."""
        stmt = (
            select(ApiTokenRow, PrincipalRow.name, ProjectRow.name)
            .join(PrincipalRow, PrincipalRow.id == ApiTokenRow.principal_id)
            .join(ProjectRow, ProjectRow.id == ApiTokenRow.project_id)
            .order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id.desc())
        )
        if principal_id is not None:
            stmt = stmt.where(ApiTokenRow.principal_id == principal_id)
        return [(row[0], row[1], row[2]) for row in self._session.execute(stmt)]

    def touch_tokens(self, used: Iterable[tuple[str, datetime]]) -> None:
        """Record the last use of several tokens (one statement per token, one transaction)."""
        for token_id, moment in used:
            self._session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.id == token_id)
                .values(last_used_at=moment)
                .execution_options(synchronize_session=False)
            )

    # --- role bindings ------------------------------------------------------------------

    def unbind(self, project_id: str, principal: str) -> bool:
        """Remove ``principal``'s role in the project; True when it held one."""
        result = self._session.execute(
            delete(RoleBindingRow).where(
                RoleBindingRow.project_id == project_id, RoleBindingRow.principal == principal
            )
        )
        return bool(getattr(result, "rowcount", 0))
