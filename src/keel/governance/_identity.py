"""Identity: users and service accounts, API tokens, role bindings, and authentication.

Authentication turns a credential (a Keel API token or an OIDC bearer token) into the
:class:`Context` every service call carries. It fails closed: anything it cannot verify raises
AuthenticationError. Identity administration needs an identity administrator (``is_admin``) or
the local operator (the CLI, which already holds the store's files).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from keel.governance._context import Context
from keel.governance._governor import Governor
from keel.governance._permissions import Permission, Role
from keel.governance._principals import check_principal_name
from keel.governance._projects import ProjectService
from keel.governance._tokens import (
    TOKEN_PREFIX,
    effective_roles,
    hash_token,
    make_token,
    matches,
    parse_token,
    role_covers,
)
from keel.store import IdentityRepository, ProjectRepository
from keel.store._identity import read_credential

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keel.governance._oidc import OidcVerifier
    from keel.store._schema_identity import ApiTokenRow, PrincipalRow

__all__ = [
    "OPERATOR_ROLE",
    "ApiToken",
    "IdentityService",
    "IssuedToken",
    "Principal",
    "RoleBinding",
    "check_principal_name",
]

#: The marker role of the local operator (the CLI); no stored binding can hold it.
OPERATOR_ROLE = "keel:operator"
_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime(_ISO)


@dataclass(frozen=True, slots=True)
class Principal:
    """A user or a service account."""

    id: str
    name: str
    kind: str
    display_name: str
    email: str | None
    is_admin: bool
    disabled: bool
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "display_name": self.display_name,
            "email": self.email,
            "is_admin": self.is_admin,
            "disabled": self.disabled,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token as listed (never its secret)."""

    id: str
    principal: str
    project: str
    role: str
    description: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= clock.now() else "active"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "principal": self.principal,
            "project": self.project,
            "role": self.role,
            "description": self.description,
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just made: ``secret`` is the token itself, shown this once and never again."""

    token: ApiToken
    secret: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.token.to_dict(), "token": self.secret}


@dataclass(frozen=True, slots=True)
class RoleBinding:
    principal: str
    role: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"principal": self.principal, "role": self.role, "created_at": _iso(self.created_at)}


def _to_principal(row: PrincipalRow) -> Principal:
    return Principal(
        row.id, row.name, row.kind, row.display_name, row.email, row.is_admin, row.disabled,
        row.created_at,
    )  # fmt: skip


def _to_token(row: ApiTokenRow, principal: str, project: str) -> ApiToken:
    return ApiToken(
        row.id, principal, project, row.role, row.description, row.created_by, row.created_at,
        row.expires_at, row.revoked_at, row.last_used_at,
    )  # fmt: skip


def _check_role(role: str) -> str:
    try:
        return Role(role).value
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInputError(f"Unknown role '{role}'. Use one of: {allowed}.") from None


def _unauthenticated(reason: str) -> AuthenticationError:
    return AuthenticationError(
        f"Authentication failed: {reason}. Send 'Authorization: Bearer <token>' with a valid "
        "Keel API token (keel tokens create) or an OIDC token of the configured issuer.",
        reason=reason,
    )


class IdentityService:
    """Principals, tokens and role bindings; and credentials resolved into a Context."""

    def __init__(
        self,
        governor: Governor,
        *,
        default_project: str = "default",
        token_max_days: int = 365,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self._gov = governor
        self._default_project = default_project
        self._max_days = token_max_days
        self._oidc = oidc
        self._used: dict[str, datetime] = {}
        self._used_lock = threading.Lock()

    # --- administrators -----------------------------------------------------------------

    def has_admin(self) -> bool:
        """Whether an enabled identity administrator exists (``keel server`` needs one)."""
        with self._gov.db.read() as session:
            return IdentityRepository(session).count_admins() > 0

    def create_admin(
        self, operator: Context, name: str, *, project: str = "default", days: int = 90
    ) -> IssuedToken:
        """Make ``user:<name>`` an identity administrator and an admin of ``project``.

        Only the local operator may do this (``keel admin create``). Returns the admin's first
        API token, scoped to ``project`` with the admin role.
        """
        self._require_admin(operator, "identity.create_admin")
        principal = check_principal_name(name if ":" in name else f"user:{name}")
        ProjectService(self._gov).bootstrap(owner=principal, project=project)
        with self._gov.db.write() as session:
            ids = IdentityRepository(session)
            row = ids.principal(principal)
            if row is None:
                row = ids.add_principal(
                    principal, kind=principal.split(":", 1)[0], display_name="", email=None,
                    is_admin=True,
                )  # fmt: skip
            else:
                row.is_admin = True
                row.disabled = False
            projects = ProjectRepository(session)
            found = projects.by_name(project)
            if found is None:
                raise NotFoundError(f"Project '{project}' does not exist.", project=project)
            if not role_covers(projects.roles_of(found.id, principal), Role.ADMIN.value):
                projects.bind(found.id, principal, Role.ADMIN.value)
            self._gov.audit.append(
                session, operator, "identity.create_admin", object_type="principal",
                object_id=row.id, details={"principal": principal, "project": project},
            )  # fmt: skip
        return self.create_token(
            operator, principal=principal, project=project, role=Role.ADMIN.value, days=days,
            description="first token of the administrator",
        )  # fmt: skip

    # --- principals ---------------------------------------------------------------------

    def create_principal(
        self,
        ctx: Context,
        name: str,
        *,
        display_name: str = "",
        email: str | None = None,
        is_admin: bool = False,
    ) -> Principal:
        """Create a user (``user:NAME``) or service account (``service:NAME``)."""
        self._require_admin(ctx, "identity.create_principal")
        check_principal_name(name)
        if email is not None and (len(email) > 320 or "@" not in email):
            raise InvalidInputError(f"Invalid e-mail address {email[:60]!r}.")
        with self._gov.db.write() as session:
            ids = IdentityRepository(session)
            if ids.principal(name) is not None:
                raise AlreadyExistsError(
                    f"Principal '{name}' already exists. List principals with `keel users list`.",
                    principal=name,
                )
            row = ids.add_principal(
                name, kind=name.split(":", 1)[0], display_name=display_name[:200], email=email,
                is_admin=is_admin,
            )  # fmt: skip
            self._gov.audit.append(
                session, ctx, "identity.create_principal", object_type="principal",
                object_id=row.id, details={"principal": name, "is_admin": is_admin},
            )  # fmt: skip
            return _to_principal(row)

    def disable_principal(self, ctx: Context, name: str) -> Principal:
        """Disable a principal: its tokens stop working at once. The last admin stays."""
        self._require_admin(ctx, "identity.disable_principal")
        with self._gov.db.write() as session:
            ids = IdentityRepository(session)
            row = ids.principal(name)
            if row is None:
                raise NotFoundError(
                    f"Principal '{name[:80]}' does not exist. List them with `keel users list`.",
                    principal=name[:80],
                )
            if row.is_admin and not row.disabled and ids.count_admins() <= 1:
                raise ConflictError(
                    f"'{name}' is the last identity administrator; create another with "
                    "`keel admin create` before disabling it.",
                    principal=name,
                )
            row.disabled = True
            session.flush()
            self._gov.audit.append(
                session, ctx, "identity.disable_principal", object_type="principal",
                object_id=row.id, details={"principal": name},
            )  # fmt: skip
            return _to_principal(row)

    def principals(self, ctx: Context) -> list[Principal]:
        self._require_admin(ctx, "identity.list_principals")
        with self._gov.db.read() as session:
            return [_to_principal(row) for row in IdentityRepository(session).principals()]

    # --- tokens -------------------------------------------------------------------------

    def create_token(
        self,
        ctx: Context,
        *,
        role: str,
        principal: str | None = None,
        project: str | None = None,
        days: int = 90,
        description: str = "",
    ) -> IssuedToken:
        """Issue a token for ``principal`` (default: the caller) in ``project`` with ``role``.

        The principal must hold a role in the project that covers ``role``; only an identity
        administrator may issue tokens for someone else. The secret is returned once.
        """
        target = check_principal_name(principal or ctx.principal)
        chosen = _check_role(role)
        if isinstance(days, bool) or not 1 <= days <= self._max_days:
            raise InvalidInputError(
                f"A token lives 1 to {self._max_days} days; got {days!r}.", days=days
            )
        if target != ctx.principal:
            self._require_admin(ctx, "token.create")
        project_name = project or ctx.project_name
        token_id, secret = make_token()
        with self._gov.db.read() as session:
            projects = ProjectRepository(session)
            found = projects.by_name(project_name)
            if found is None:
                raise NotFoundError(
                    f"Project '{project_name[:80]}' does not exist.", project=project_name[:80]
                )
            covered = role_covers(projects.roles_of(found.id, target), chosen)
        if not covered:
            self._deny(
                ctx, "token.create", f"{target} holds no role covering '{chosen}' in project "
                f"'{found.name}'; grant one first (ws.projects.grant)",
            )  # fmt: skip
        with self._gov.db.write() as session:
            ids = IdentityRepository(session)
            projects = ProjectRepository(session)
            # Re-checked in the write transaction: the role may have been revoked meanwhile.
            if not role_covers(projects.roles_of(found.id, target), chosen):
                raise ConflictError(
                    f"{target}'s role in project '{found.name}' changed meanwhile; retry.",
                    principal=target,
                )
            owner = ids.principal(target)
            if owner is None:
                owner = ids.add_principal(
                    target, kind=target.split(":", 1)[0], display_name="", email=None,
                    is_admin=False,
                )  # fmt: skip
            if owner.disabled:
                raise ConflictError(f"Principal '{target}' is disabled.", principal=target)
            row = ids.add_token(
                token_id=token_id, principal_id=owner.id, project_id=found.id, role=chosen,
                secret_hash=hash_token(secret), description=description[:500],
                created_by=ctx.principal, expires_at=clock.now() + timedelta(days=days),
            )  # fmt: skip
            self._gov.audit.append(
                session, ctx, "token.create", object_type="api_token", object_id=token_id,
                details={"principal": target, "project": found.name, "role": chosen,
                         "days": days},
            )  # fmt: skip
            return IssuedToken(_to_token(row, target, found.name), secret)

    def tokens(self, ctx: Context, *, everyone: bool = False) -> list[ApiToken]:
        """The caller's tokens (every principal's with ``everyone``, for administrators)."""
        if everyone:
            self._require_admin(ctx, "token.list")
        with self._gov.db.read() as session:
            ids = IdentityRepository(session)
            owner_id: str | None = None
            if not everyone:
                owner = ids.principal(ctx.principal)
                if owner is None:
                    return []
                owner_id = owner.id
            return [
                _to_token(row, who, proj) for row, who, proj in ids.tokens(principal_id=owner_id)
            ]

    def revoke_token(self, ctx: Context, token_id: str) -> ApiToken:
        """Revoke a token now (its owner or an administrator)."""
        with self._gov.db.write() as session:
            ids = IdentityRepository(session)
            found = ids.token_with_owner(token_id) if len(token_id) == 26 else None
            if found is None:
                raise NotFoundError(
                    f"Token '{token_id[:40]}' does not exist. List tokens with `keel tokens list`.",
                    token_id=token_id[:40],
                )
            row, owner, project = found
            if owner.name != ctx.principal and not self._is_admin(session, ctx):
                raise NotFoundError(
                    f"Token '{token_id[:40]}' does not exist. List tokens with `keel tokens list`.",
                    token_id=token_id[:40],
                )
            if row.revoked_at is None:
                row.revoked_at = clock.now()
            self._gov.audit.append(
                session, ctx, "token.revoke", object_type="api_token", object_id=token_id,
                details={"principal": owner.name},
            )  # fmt: skip
            return _to_token(row, owner.name, project.name)

    # --- role bindings ------------------------------------------------------------------

    def bindings(self, ctx: Context) -> list[RoleBinding]:
        """Who holds which role in the caller's project."""
        with self._gov.read(
            ctx, Permission.PROJECT_ADMIN, "project.bindings", object_type="project"
        ) as session:
            rows = ProjectRepository(session).bindings(ctx.project_id)
            return [RoleBinding(r.principal, r.role, r.created_at) for r in rows]

    def revoke_role(self, ctx: Context, principal: str) -> None:
        """Remove ``principal``'s role in the caller's project (its tokens there stop working)."""
        with self._gov.write(
            ctx, Permission.PROJECT_ADMIN, "project.revoke", object_type="project",
            object_id=ctx.project_id,
        ) as work:  # fmt: skip
            if not IdentityRepository(work.session).unbind(ctx.project_id, principal):
                raise NotFoundError(
                    f"'{principal[:80]}' holds no role in project '{ctx.project_name}'.",
                    principal=principal[:80],
                )
            work.details = {"principal": principal}

    # --- authentication -----------------------------------------------------------------

    def authenticate(
        self,
        credential: str | None,
        *,
        project: str | None = None,
        source: str | None = None,
        request_id: str | None = None,
    ) -> Context:
        """The Context of a bearer credential in ``project`` (default: the token's project).

        Raises:
            AuthenticationError: no credential, or one that does not verify.
            PermissionDeniedError: a token used outside the project it is scoped to.
        """
        if not credential:
            raise _unauthenticated("no credential was sent")
        if credential.startswith(TOKEN_PREFIX):
            ctx = self._from_api_token(credential, project, source)
        elif self._oidc is not None and credential.count(".") == 2:
            ctx = self._from_oidc(credential, project, source)
        else:
            raise _unauthenticated("the credential is not a Keel API token")
        return ctx.for_request(request_id) if request_id else ctx

    def _from_api_token(self, token: str, project: str | None, source: str | None) -> Context:
        token_id = parse_token(token)
        if token_id is None:
            raise _unauthenticated("the token is malformed")
        row = read_credential(self._gov.db.engine, token_id)
        if row is None or not matches(token, row.secret_hash):
            raise _unauthenticated("the token is not valid")
        if row.revoked_at is not None:
            raise _unauthenticated("the token was revoked")
        now = clock.now()
        if row.expires_at <= now:
            raise _unauthenticated("the token has expired")
        if row.disabled:
            raise _unauthenticated(f"the principal {row.principal} is disabled")
        if project is not None and project != row.project:
            raise PermissionDeniedError(
                f"This token is scoped to project '{row.project}', not '{project[:80]}'. "
                "Use a token made for that project (keel tokens create --project ...).",
                principal=row.principal,
            )
        with self._used_lock:
            self._used[token_id] = now
        held = () if row.held is None else (row.held,)
        return Context(
            principal=row.principal,
            project_id=row.project_id,
            project_name=row.project,
            roles=effective_roles(row.role, held),
            source=source,
        )

    def _from_oidc(self, token: str, project: str | None, source: str | None) -> Context:
        assert self._oidc is not None
        principal = self._oidc.principal(self._oidc.verify(token))
        name = project or self._default_project
        with self._gov.db.read() as session:
            owner = IdentityRepository(session).principal(principal)
            if owner is not None and owner.disabled:
                raise _unauthenticated(f"the principal {principal} is disabled")
            projects = ProjectRepository(session)
            scope = projects.by_name(name)
            if scope is None:
                raise NotFoundError(f"Project '{name[:80]}' does not exist.", project=name[:80])
            roles = projects.roles_of(scope.id, principal)
        return Context(principal, scope.id, scope.name, roles, source=source)

    def flush_last_use(self, session: Session | None = None) -> int:
        """Write the last-use times recorded since the previous flush; returns how many."""
        with self._used_lock:
            used, self._used = self._used, {}
        if not used:
            return 0
        if session is not None:
            IdentityRepository(session).touch_tokens(used.items())
        else:
            with self._gov.db.write() as own:
                IdentityRepository(own).touch_tokens(used.items())
        return len(used)

    # --- helpers ------------------------------------------------------------------------

    def _is_admin(self, session: Session, ctx: Context) -> bool:
        if OPERATOR_ROLE in ctx.roles:
            return True
        row = IdentityRepository(session).principal(ctx.principal)
        return row is not None and row.is_admin and not row.disabled

    def _require_admin(self, ctx: Context, action: str) -> None:
        with self._gov.db.read() as session:
            if self._is_admin(session, ctx):
                return
        self._deny(ctx, action, "it is not an identity administrator")

    def _deny(self, ctx: Context, action: str, why: str) -> None:
        self._gov.audit.record(
            ctx, action, object_type="identity", outcome="denied", details={"reason": why}
        )
        raise PermissionDeniedError(
            f"{ctx.principal} may not {action}: {why}. Ask an identity administrator.",
            principal=ctx.principal,
        )
