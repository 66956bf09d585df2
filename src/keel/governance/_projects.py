"""Projects (tenants), role bindings, and resolving a principal into a Context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from keel.errors import AlreadyExistsError, ConflictError, InvalidInputError, NotFoundError
from keel.governance._context import Context
from keel.governance._governor import Governor
from keel.governance._permissions import Permission, Role
from keel.store import ProjectRepository
from keel.types import validate_name

__all__ = ["Project", "ProjectService", "SYSTEM_PRINCIPAL"]

#: The principal recorded for what Keel does by itself (bootstrap, scheduled jobs).
SYSTEM_PRINCIPAL = "system:keel"


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    description: str
    created_at: datetime


class ProjectService:
    """Creates projects, grants roles, and turns (principal, project) into a Context."""

    def __init__(self, governor: Governor) -> None:
        self._gov = governor

    def bootstrap(self, *, owner: str, project: str = "default") -> bool:
        """On an empty store, create ``project`` and make ``owner`` its owner.

        Returns True when it created them. Does nothing if any project exists, so it can never
        grant a role in a store that is already in use.
        """
        validate_name(project, what="project name")
        with self._gov.db.read() as session:
            if ProjectRepository(session).count():
                return False
        try:
            return self._bootstrap(owner, project)
        except ConflictError:
            # Another connection bootstrapped the empty store at the same moment (PostgreSQL
            # refuses the second project of the same name): theirs stands.
            with self._gov.db.read() as session:
                if ProjectRepository(session).count():
                    return False
            raise

    def _bootstrap(self, owner: str, project: str) -> bool:
        with self._gov.db.write() as session:
            repo = ProjectRepository(session)
            if repo.count():
                return False
            row = repo.create(project, description="Created by keel init.")
            repo.bind(row.id, owner, Role.OWNER.value)
            system = Context(
                principal=SYSTEM_PRINCIPAL,
                project_id=row.id,
                project_name=row.name,
                roles=frozenset(),
            )
            self._gov.audit.append(
                session,
                system,
                "project.bootstrap",
                object_type="project",
                object_id=row.id,
                details={"owner": owner},
            )
            return True

    def context(self, principal: str, project: str, *, source: str | None = None) -> Context:
        """The Context of ``principal`` in ``project`` (its roles resolved once, here)."""
        with self._gov.db.read() as session:
            repo = ProjectRepository(session)
            row = repo.by_name(project)
            if row is None:
                raise NotFoundError(
                    f"Project '{project}' does not exist. Create it with "
                    "ws.projects.create(...) or pick another with KEEL_PROJECT.",
                    project=project,
                )
            roles = repo.roles_of(row.id, principal)
        return Context(
            principal=principal,
            project_id=row.id,
            project_name=row.name,
            roles=roles,
            source=source,
        )

    def create(self, ctx: Context, name: str, *, description: str = "") -> Project:
        """Create a project; the caller (an admin of the current one) becomes its owner."""
        validate_name(name, what="project name")
        with self._gov.write(
            ctx, Permission.PROJECT_ADMIN, "project.create", object_type="project"
        ) as work:
            repo = ProjectRepository(work.session)
            if repo.by_name(name) is not None:
                raise AlreadyExistsError(
                    f"A project named '{name}' already exists. Choose another name.", name=name
                )
            row = repo.create(name, description=description)
            repo.bind(row.id, ctx.principal, Role.OWNER.value)
            work.object_id = row.id
            work.details = {"name": name}
            return Project(row.id, row.name, row.description, row.created_at)

    def grant(self, ctx: Context, principal: str, role: str) -> None:
        """Give ``principal`` a role in the caller's project."""
        try:
            chosen = Role(role)
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise InvalidInputError(
                f"Unknown role '{role}'. Use one of: {allowed}.", role=role
            ) from None
        with self._gov.write(
            ctx, Permission.PROJECT_ADMIN, "project.grant", object_type="project"
        ) as work:
            ProjectRepository(work.session).bind(ctx.project_id, principal, chosen.value)
            work.object_id = ctx.project_id
            work.details = {"principal": principal, "role": chosen.value}

    def list(self, ctx: Context) -> list[Project]:
        """The projects where the caller holds a role."""
        with self._gov.db.read() as session:
            rows = ProjectRepository(session).list_for(ctx.principal)
            return [Project(r.id, r.name, r.description, r.created_at) for r in rows]
