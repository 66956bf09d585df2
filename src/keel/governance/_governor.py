"""The one seam every service goes through: authorize (fail closed), work, audit — together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from keel.errors import PermissionDeniedError
from keel.governance._audit import AuditLog
from keel.governance._context import Context
from keel.governance._permissions import Permission, allows
from keel.store import Database

__all__ = ["Governor", "Write"]


@dataclass(slots=True)
class Write:
    """A governed write in progress: its session, and what the audit event will say."""

    session: Session
    object_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Governor:
    """Runs service work under authorization and audit.

    ``write`` checks the permission, opens a write transaction, and appends the audit event in
    that same transaction, so an object never exists without its audit record. A denial is
    audited in a transaction of its own and raised as PermissionDeniedError.
    """

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def check(
        self,
        ctx: Context,
        permission: Permission,
        *,
        action: str,
        object_type: str,
        object_id: str | None = None,
    ) -> None:
        """Raise PermissionDeniedError (and audit the denial) unless ``ctx`` may act."""
        if allows(ctx.roles, permission):
            return
        self.audit.record(
            ctx,
            action,
            object_type=object_type,
            object_id=object_id,
            outcome="denied",
            details={"permission": permission.value},
        )
        held = (
            f"its role ({', '.join(sorted(ctx.roles))}) does not grant it"
            if ctx.roles
            else "it holds no role in this project"
        )
        raise PermissionDeniedError(
            f"{ctx.principal} may not {action} in project '{ctx.project_name}': that needs the "
            f"permission '{permission.value}', and {held}. Ask a project admin for a role "
            "that does.",
            principal=ctx.principal,
            permission=permission.value,
        )

    @contextmanager
    def write(
        self,
        ctx: Context,
        permission: Permission,
        action: str,
        *,
        object_type: str,
        object_id: str | None = None,
    ) -> Iterator[Write]:
        """Authorize, then yield a write transaction that is audited when it commits."""
        self.check(ctx, permission, action=action, object_type=object_type, object_id=object_id)
        with self.db.write() as session:
            work = Write(session=session, object_id=object_id)
            yield work
            self.audit.append(
                session,
                ctx,
                action,
                object_type=object_type,
                object_id=work.object_id,
                details=work.details,
            )

    @contextmanager
    def read(
        self,
        ctx: Context,
        permission: Permission,
        action: str,
        *,
        object_type: str,
        object_id: str | None = None,
    ) -> Iterator[Session]:
        """Authorize, then yield a read-only transaction."""
        self.check(ctx, permission, action=action, object_type=object_type, object_id=object_id)
        with self.db.read() as session:
            yield session
