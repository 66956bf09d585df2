"""Plan and apply a project file against the recorded state, under a per-project apply lock.

Each change is one governed write: the resource's new state and its audit event commit
together, after the live effect (a role binding, a trigger, a registered model, a policy) has
been made through the owning service. Effects are idempotent and the state row is written last,
so an apply killed half-way leaves a plan whose remaining changes a rerun completes.

Two appliers of one project never interleave: the first takes a lease on the project's lock row
(renewed after every change); the second waits for it up to ``wait`` seconds and then fails
with ConflictError. A lease left by a killed process expires, or is taken over at once when its
holder was a process of this host that no longer exists.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol

from keel import clock
from keel.cicd._effects import Deferred
from keel.cicd._plan import Change, Plan, make_plan
from keel.cicd._project import ProjectFile
from keel.cicd._resources import resource_digest
from keel.errors import ConflictError
from keel.governance import Context, Governor, Permission
from keel.store import ProjectStateRepository
from keel.types import new_id

__all__ = ["ApplyResult", "Effects", "ProjectStateService"]

LEASE = timedelta(seconds=30)

#: Recorded state -> live state (for drift; see ``keel.cicd._drift.observe``).
Observe = Callable[[dict[tuple[str, str], dict[str, Any]]], dict[tuple[str, str], dict[str, Any]]]


class Effects(Protocol):
    """Makes a change real in the live services (idempotently); returns a note or None."""

    def apply(self, change: Change) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What an apply did: its plan, and a note per change that had a live effect."""

    plan: Plan
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.plan.to_dict(), "notes": dict(self.notes)}


def _holder(ctx: Context) -> str:
    return f"{ctx.principal}@{socket.gethostname()}:{os.getpid()}"[:256]


def _dead_local(holder: str) -> bool:
    """True when ``holder`` names a process of this host that no longer runs."""
    _, _, where = holder.rpartition("@")
    host, _, pid = where.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class ProjectStateService:
    """The recorded state of a project's file-managed resources, and plan/apply over it."""

    def __init__(self, governor: Governor) -> None:
        self._gov = governor

    def current(self, ctx: Context) -> dict[tuple[str, str], dict[str, Any]]:
        """Every resource as last applied, keyed by (kind, name)."""
        with self._gov.read(
            ctx, Permission.PROJECT_READ, "project.state.read", object_type="project"
        ) as session:
            rows = ProjectStateRepository(session, ctx.project_id).resources()
            return {(r.kind, r.name): dict(r.spec) for r in rows}

    @property
    def governor(self) -> Governor:
        return self._gov

    def plan(self, ctx: Context, project: ProjectFile, *, observe: Observe | None = None) -> Plan:
        """What applying ``project`` would change now.

        ``observe`` turns the recorded state into the live one (see ``keel.cicd._drift``), so
        that changes made by hand since the last apply show in the plan.
        """
        current = self.current(ctx)
        return make_plan(project.resources, observe(current) if observe is not None else current)

    def apply(
        self,
        ctx: Context,
        project: ProjectFile,
        *,
        effects: Effects | None = None,
        wait: float = 30.0,
        progress: Callable[[Change], None] | None = None,
        observe: Observe | None = None,
    ) -> ApplyResult:
        """Make the recorded state (and, through ``effects``, the live one) match ``project``."""
        self._gov.check(
            ctx, Permission.PROJECT_ADMIN, action="project.apply", object_type="project"
        )
        notes: dict[str, str] = {}
        with self._locked(ctx, wait=wait) as token:
            plan = self.plan(
                ctx, project, observe=observe
            )  # under the lock: nobody changes it meanwhile
            for change in plan.pending:
                if progress is not None:
                    progress(change)
                note = effects.apply(change) if effects is not None else None
                if note:
                    notes[f"{change.kind}/{change.name}"] = note
                if isinstance(note, Deferred) and change.after is not None:
                    # recorded as pending: the next plan shows an update, the next apply retries
                    change = replace(change, after={**change.after, "pending": str(note)})
                self._record(ctx, change, token)
        return ApplyResult(plan=plan, notes=notes)

    def _record(self, ctx: Context, change: Change, token: str) -> None:
        with self._gov.write(
            ctx,
            Permission.PROJECT_ADMIN,
            f"project.apply.{change.op}",
            object_type=change.kind,
            object_id=change.name,
        ) as work:
            repo = ProjectStateRepository(work.session, ctx.project_id)
            if not repo.renew(token, lease=LEASE):
                raise ConflictError(
                    "This apply lost its lock (its lease expired and another apply took it). "
                    "Run `keel plan` to see the state, then apply again.",
                    project=ctx.project_name,
                )
            if change.op == "delete":
                repo.remove(change.kind, change.name)
            else:
                assert change.after is not None
                repo.put(
                    change.kind,
                    change.name,
                    spec=change.after,
                    digest=resource_digest(change.after),
                    principal=ctx.principal,
                )
            work.details = {"kind": change.kind, "name": change.name, "op": change.op}
            if change.op == "update":
                work.details["diff"] = list(change.diff)[:50]

    @contextmanager
    def _locked(self, ctx: Context, *, wait: float) -> Iterator[str]:
        token = new_id()
        holder = _holder(ctx)
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                with self._gov.db.write() as session:
                    repo = ProjectStateRepository(session, ctx.project_id)
                    held = repo.lock_row()
                    if held is not None and held.token != token and _dead_local(held.holder):
                        repo.force_unlock()
                    row = repo.try_lock(token, holder, lease=LEASE)
                    mine = row.token == token
                    other, since = row.holder, row.acquired_at
            except ConflictError:  # two first appliers inserted the lock row at once
                mine, other, since = False, "another apply", clock.now()
            if mine:
                break
            if time.monotonic() >= deadline:
                raise ConflictError(
                    f"Another apply of project '{ctx.project_name}' is running ({other}, since "
                    f"{since.isoformat(timespec='seconds')}). Wait for it to finish and run "
                    "`keel apply` again; if it crashed, its lock expires within "
                    f"{int(LEASE.total_seconds())} s, or remove it with "
                    "`keel apply --force-unlock`.",
                    project=ctx.project_name,
                    holder=other,
                )
            time.sleep(0.2)
        try:
            yield token
        finally:
            with self._gov.db.write() as session:
                ProjectStateRepository(session, ctx.project_id).unlock(token)

    def force_unlock(self, ctx: Context) -> str | None:
        """Remove the apply lock whoever holds it; the holder it had, if any (audited)."""
        with self._gov.write(
            ctx, Permission.PROJECT_ADMIN, "project.apply.unlock", object_type="project"
        ) as work:
            row = ProjectStateRepository(work.session, ctx.project_id).force_unlock()
            work.object_id = ctx.project_id
            work.details = {"holder": None if row is None else row.holder}
            return None if row is None else row.holder

    def lock_holder(self, ctx: Context) -> str | None:
        """Who holds the apply lock now (None when free or expired)."""
        with self._gov.read(
            ctx, Permission.PROJECT_READ, "project.state.read", object_type="project"
        ) as session:
            row = ProjectStateRepository(session, ctx.project_id).lock_row(lock=False)
            if row is None or row.expires_at <= clock.now():
                return None
            return row.holder
