"""Triggers: what starts a pipeline, and the record of every firing with its cause.

Kinds and what their ``spec`` holds:

========  =========================================  ===========================================
kind      spec                                       fired by
========  =========================================  ===========================================
schedule  ``{"cron": "0 3 * * *"}`` (UTC)             the scheduler, at each occurrence
dataset   ``{"dataset": "churn"}``                   ``fire_event("dataset", "churn", …)``
alert     ``{"rule": "drift-high"}`` (or any rule)    ``fire_event("alert", rule, …)``
commit    ``{"repository": "org/repo",                a verified GitHub or GitLab webhook
          "branch": "main"}``
manual    ``{}``                                     ``keel triggers fire NAME``
========  =========================================  ===========================================

A firing is recorded once per occurrence (a unique key per trigger) and then claimed by one
scheduler replica under a lease, which runs the pipeline and records the run it started.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from keel import clock
from keel._cron import check_cron, cron_step, next_fire_time
from keel.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from keel.governance import Context, Governor, Permission
from keel.pipelines._model import Firing, Trigger
from keel.store import TriggerRepository
from keel.store._schema_pipelines import PipelineTriggerRow, TriggerFiringRow
from keel.types import new_id, validate_name

__all__ = ["TRIGGER_KINDS", "TriggerService", "check_cron", "next_fire_time"]

_log = logging.getLogger("keel.pipelines.scheduler")

TRIGGER_KINDS = ("schedule", "dataset", "alert", "commit", "manual")
_SUBJECT = {"dataset": "dataset", "alert": "rule", "commit": "repository"}
# The keys a spec may hold where an unknown one would silently change what fires (a
# ``timezone`` ignored, a misspelt ``branches`` that watches every branch).
_SPEC_KEYS = {"schedule": ("cron",), "commit": ("repository", "branch"), "manual": ()}
_MAX_COUNTED = 1000  # missed occurrences counted one by one before the count says "more"


def _catch_up(cron: object, due: datetime, now: datetime) -> tuple[datetime, datetime, int, bool]:
    """(latest occurrence at or before ``now``, the one after it, occurrences skipped before
    the latest, whether more were skipped than counted); ``due`` is the first one not fired."""
    expression = check_cron(cron)
    following = cron_step(expression, cron, due)
    if following > now:
        return due, following, 0, False
    upcoming = cron_step(expression, cron, now)
    latest = cron_step(expression, cron, upcoming, back=True)
    missed, moment = 0, due
    while moment < latest and missed < _MAX_COUNTED:
        moment, missed = cron_step(expression, cron, moment), missed + 1
    return latest, upcoming, missed, moment < latest


def _check_spec(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    if kind not in TRIGGER_KINDS:
        raise InvalidInputError(
            f"Unknown trigger kind {kind!r:.40}; use one of {', '.join(TRIGGER_KINDS)}."
        )
    clean = dict(spec)
    allowed = _SPEC_KEYS.get(kind)
    unknown = sorted(str(key) for key in clean if allowed is not None and key not in allowed)
    if unknown:
        zone = " Schedules are in UTC: write the time in UTC." if kind == "schedule" else ""
        raise InvalidInputError(
            f"A {kind} trigger's spec takes {', '.join(allowed or ()) or 'nothing'}; "
            f"unknown: {', '.join(unknown)[:200]}.{zone}",
            field="spec",
        )
    if kind == "schedule":
        next_fire_time(clean.get("cron", ""), clock.now())
    subject = _SUBJECT.get(kind)
    if subject is not None and kind != "alert" and not isinstance(clean.get(subject), str):
        raise InvalidInputError(
            f"A {kind} trigger needs spec {{'{subject}': ...}} naming what it watches."
        )
    optional = {"alert": "rule", "commit": "branch"}.get(kind)
    if optional is not None and not isinstance(clean.get(optional), str | None):
        raise InvalidInputError(
            f"A {kind} trigger's {optional} is a name (a string); got "
            f"{type(clean[optional]).__name__}.",
            field="spec",
        )
    return clean


def _matches(kind: str, spec: Mapping[str, Any], subject: str, details: Mapping[str, Any]) -> bool:
    if kind == "alert":
        return spec.get("rule") in (None, subject)
    watched = spec.get(_SUBJECT[kind])
    if kind == "commit":
        # GitHub and GitLab name repositories case-insensitively ('Acme/ML' is 'acme/ml')
        same = isinstance(watched, str) and watched.casefold() == subject.casefold()
        return same and spec.get("branch") in (None, details.get("branch"))
    return bool(watched == subject)


def _add_once(
    session: Session,
    repo: TriggerRepository,
    row: PipelineTriggerRow,
    *,
    dedupe_key: str,
    due_at: datetime,
    cause: dict[str, Any],
) -> TriggerFiringRow | None:
    """Record a firing unless its occurrence is recorded; None if it was (even meanwhile, by a
    concurrent delivery of the same event: its unique key then fails only this savepoint)."""
    try:
        with session.begin_nested():
            return repo.add_firing(row, dedupe_key=dedupe_key, due_at=due_at, cause=cause)
    except DBIntegrityError:
        return None


def to_trigger(row: PipelineTriggerRow) -> Trigger:
    return Trigger(
        id=row.id,
        name=row.name,
        pipeline=row.pipeline,
        kind=row.kind,
        spec=dict(row.spec),
        params=dict(row.params),
        enabled=row.enabled,
        next_fire_at=row.next_fire_at,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def to_firing(row: TriggerFiringRow, trigger_name: str) -> Firing:
    return Firing(
        id=row.id,
        trigger=trigger_name,
        due_at=row.due_at,
        cause=dict(row.cause),
        status=row.status,
        lease_owner=row.lease_owner,
        pipeline_run_id=row.pipeline_run_id,
        created_at=row.created_at,
        finished_at=row.finished_at,
        error=row.error,
    )


class TriggerService:
    """Create triggers, record firings (once each), and lease them to scheduler replicas."""

    def __init__(self, governor: Governor) -> None:
        self._gov = governor

    def create(
        self,
        ctx: Context,
        name: str,
        *,
        pipeline: str,
        kind: str,
        spec: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        enabled: bool = True,
        replace: bool = False,
    ) -> Trigger:
        """Create (or with ``replace`` update) a trigger of ``pipeline``."""
        validate_name(name, what="trigger name")
        validate_name(pipeline, what="pipeline name")
        clean = _check_spec(kind, spec or {})
        next_at = next_fire_time(clean["cron"], clock.now()) if kind == "schedule" else None
        with self._gov.write(
            ctx, Permission.PIPELINE_RUN, "trigger.create", object_type="trigger"
        ) as work:
            repo = TriggerRepository(work.session, ctx.project_id)
            row = repo.get_by_name(name)
            if row is not None and not replace:
                raise AlreadyExistsError(
                    f"A trigger named '{name}' already exists; pick another name or replace it.",
                    name=name,
                )
            if row is None:
                row = repo.add(
                    name=name,
                    pipeline=pipeline,
                    kind=kind,
                    spec=clean,
                    params=dict(params or {}),
                    enabled=enabled,
                    next_fire_at=next_at,
                    created_by=ctx.principal,
                )
            elif (row.pipeline, row.kind, row.spec, row.params, row.enabled) != (
                pipeline,
                kind,
                clean,
                dict(params or {}),
                enabled,
            ):
                row.pipeline, row.kind, row.spec, row.params = (
                    pipeline,
                    kind,
                    clean,
                    dict(params or {}),
                )
                row.enabled, row.next_fire_at, row.updated_at = enabled, next_at, clock.now()
            work.object_id = row.id
            work.details = {"name": name, "pipeline": pipeline, "kind": kind}
            return to_trigger(row)

    def all(self, ctx: Context, *, kind: str | None = None) -> list[Trigger]:
        with self._gov.read(
            ctx, Permission.PIPELINE_READ, "trigger.list", object_type="trigger"
        ) as s:
            return [to_trigger(row) for row in TriggerRepository(s, ctx.project_id).all(kind=kind)]

    def firings(
        self, ctx: Context, *, trigger: str | None = None, limit: int = 100
    ) -> list[Firing]:
        """Recorded firings, newest first (optionally of one trigger)."""
        with self._gov.read(
            ctx, Permission.PIPELINE_READ, "trigger.firings", object_type="trigger"
        ) as s:
            repo = TriggerRepository(s, ctx.project_id)
            names = {row.id: row.name for row in repo.all()}
            trigger_id = None
            if trigger is not None:
                row = repo.get_by_name(trigger)
                if row is None:
                    raise self._missing(trigger)
                trigger_id = row.id
            rows = repo.firings(trigger_id=trigger_id, limit=min(max(limit, 1), 1000))
            return [to_firing(r, names.get(r.trigger_id, r.trigger_id)) for r in rows]

    @staticmethod
    def _missing(name: str) -> NotFoundError:
        return NotFoundError(
            f"No trigger '{name}' in this project. List them with `keel triggers list`.",
            trigger=name,
        )

    def fire(self, ctx: Context, name: str, *, cause: Mapping[str, Any] | None = None) -> Firing:
        """Record a manual firing of trigger ``name`` (the scheduler runs it)."""
        with self._gov.write(
            ctx, Permission.PIPELINE_RUN, "trigger.fire", object_type="trigger"
        ) as work:
            repo = TriggerRepository(work.session, ctx.project_id)
            row = repo.get_by_name(name)
            if row is None:
                raise self._missing(name)
            now = clock.now()
            # the caller's details first: they cannot pass for another kind or another person
            reason = {**dict(cause or {}), "kind": "manual", "by": ctx.principal}
            firing = repo.add_firing(row, dedupe_key=f"manual:{new_id()}", due_at=now, cause=reason)
            assert firing is not None
            work.object_id = firing.id
            work.details = {"trigger": name, "cause": reason}
            return to_firing(firing, row.name)

    def fire_event(
        self,
        ctx: Context,
        kind: str,
        subject: str,
        *,
        event_id: str,
        details: Mapping[str, Any] | None = None,
    ) -> list[Firing]:
        """Record a firing of every enabled ``kind`` trigger watching ``subject``.

        The same ``event_id`` fires each trigger once, however often it is delivered (for
        example ``churn@7`` for version 7 of dataset churn, or a commit hash).

        Args:
            kind: ``dataset``, ``alert`` or ``commit``.
            subject: The dataset name, alert rule, or repository (``owner/name``).
        """
        if kind not in _SUBJECT:
            raise InvalidInputError(
                f"Events are of kind dataset, alert or commit; got {kind!r:.40}."
            )
        if not isinstance(event_id, str) or not 1 <= len(event_id) <= 150:
            raise InvalidInputError("event_id is 1-150 characters identifying the event.")
        extra = dict(details or {})
        fired: list[Firing] = []
        self._gov.check(ctx, Permission.PIPELINE_RUN, action="trigger.fire", object_type="trigger")
        with self._gov.db.write() as session:
            repo = TriggerRepository(session, ctx.project_id)
            now = clock.now()
            for row in repo.all(kind=kind):
                if not row.enabled or not _matches(kind, row.spec, subject, extra):
                    continue
                cause = {**extra, "kind": kind, "subject": subject, "event": event_id}
                firing = _add_once(
                    session, repo, row, dedupe_key=f"{kind}:{event_id}", due_at=now, cause=cause
                )
                if firing is None:
                    continue
                self._gov.audit.append(
                    session,
                    ctx,
                    "trigger.fire",
                    object_type="trigger",
                    object_id=firing.id,
                    details={"trigger": row.name, "cause": cause},
                )
                fired.append(to_firing(firing, row.name))
        return fired

    # -- scheduler side ------------------------------------------------------------------

    def record_due(self, ctx: Context, now: datetime, *, limit: int = 100) -> list[Firing]:
        """Record a firing for each schedule due at ``now`` and move it to its next time.

        Occurrences missed while no scheduler ran are not replayed: the latest one fires, and
        the cause says how many were missed (``missed``, counted up to 1000; ``missed_more``
        beyond) and since when. A stored schedule that no longer parses records one failed
        firing saying why and stops until the trigger is replaced.
        """
        self._gov.check(
            ctx, Permission.PIPELINE_RUN, action="trigger.schedule", object_type="trigger"
        )
        fired: list[Firing] = []
        with self._gov.db.write() as session:
            repo = TriggerRepository(session, ctx.project_id)
            for row in repo.claim_due_schedules(now, limit=limit):
                cron = row.spec.get("cron")
                first = row.next_fire_at
                assert first is not None
                cause: dict[str, Any] = {"kind": "schedule", "cron": cron}
                try:
                    due, row.next_fire_at, missed, more = _catch_up(cron, first, now)
                except InvalidInputError as exc:
                    row.next_fire_at = None  # off until the trigger is replaced
                    firing = self._broken(session, repo, row, first, cause, exc.message)
                else:
                    cause["scheduled_for"] = due.isoformat()
                    if missed:
                        cause.update(missed=missed, missed_since=first.isoformat())
                    if more:
                        cause["missed_more"] = True
                    firing = _add_once(
                        session,
                        repo,
                        row,
                        dedupe_key=f"schedule:{due.isoformat()}",
                        due_at=due,
                        cause=cause,
                    )
                if firing is None:
                    continue
                self._gov.audit.append(
                    session,
                    ctx,
                    "trigger.fire",
                    object_type="trigger",
                    object_id=firing.id,
                    details={"trigger": row.name, "cause": cause},
                )
                fired.append(to_firing(firing, row.name))
        return fired

    @staticmethod
    def _broken(
        session: Session,
        repo: TriggerRepository,
        row: PipelineTriggerRow,
        due: datetime,
        cause: dict[str, Any],
        problem: str,
    ) -> TriggerFiringRow | None:
        """A failed firing saying why a stored schedule cannot run (a schedule written before
        the parser refused it): visible in ``keel triggers history``, never run."""
        _log.error("Schedule %s is off: %s", row.name, problem)
        firing = _add_once(
            session, repo, row, dedupe_key=f"schedule:{due.isoformat()}", due_at=due, cause=cause
        )
        if firing is not None:
            firing.status, firing.finished_at = "failed", clock.now()
            firing.error = (
                f"{problem} The schedule is off until the trigger is replaced with a valid one "
                "(keel.yaml, or create_trigger(..., replace=True))."
            )[:2000]
        return firing

    def claim(
        self, ctx: Context, now: datetime, *, owner: str, lease: timedelta, limit: int = 10
    ) -> list[tuple[Firing, Trigger]]:
        """Lease pending firings (or ones whose lease expired) to ``owner``."""
        self._gov.check(ctx, Permission.PIPELINE_RUN, action="trigger.claim", object_type="trigger")
        with self._gov.db.write() as session:
            repo = TriggerRepository(session, ctx.project_id)
            claimed = []
            for row in repo.claim_firings(now, owner=owner, lease_until=now + lease, limit=limit):
                trigger = repo.get(row.trigger_id)
                assert trigger is not None
                claimed.append((to_firing(row, trigger.name), to_trigger(trigger)))
            return claimed

    @staticmethod
    def _held(session: Session, repo: TriggerRepository, firing_id: str) -> TriggerFiringRow | None:
        """The firing, its row locked until the transaction ends (a claim waits for it)."""
        row = repo.firing(firing_id)
        if row is not None:
            session.refresh(row, with_for_update=True)
        return row

    def extend(self, ctx: Context, firing_id: str, *, owner: str, until: datetime) -> bool:
        """Extend a lease still held by ``owner``; False when it was lost."""
        with self._gov.db.write() as session:
            row = self._held(session, TriggerRepository(session, ctx.project_id), firing_id)
            if row is None or row.lease_owner != owner or row.status != "running":
                return False
            row.lease_expires_at = until
            return True

    def complete(
        self,
        ctx: Context,
        firing_id: str,
        *,
        owner: str,
        status: str,
        pipeline_run_id: str | None,
        error: str | None = None,
    ) -> None:
        """Record how a claimed firing ended (``done`` or ``failed``) and the run it started.

        Raises:
            NotFoundError: For an unknown firing.
            ConflictError: If ``owner`` no longer holds the firing (its lease expired and
                another replica claimed it, which records the outcome); nothing is recorded.
        """
        with self._gov.write(
            ctx,
            Permission.PIPELINE_RUN,
            "trigger.complete",
            object_type="trigger",
            object_id=firing_id,
        ) as work:
            repo = TriggerRepository(work.session, ctx.project_id)
            row = self._held(work.session, repo, firing_id)
            if row is None:
                raise NotFoundError(f"No firing '{firing_id}'.", firing=firing_id)
            if row.lease_owner != owner or row.status != "running":
                raise ConflictError(
                    f"Firing '{firing_id}' is no longer held by {owner} (now {row.status}, "
                    f"held by {row.lease_owner}): its lease expired and another replica took "
                    "it over, which records how it ends.",
                    firing=firing_id,
                )
            row.status, row.pipeline_run_id, row.error = status, pipeline_run_id, error
            row.finished_at, row.lease_expires_at = clock.now(), None
            work.details = {"status": status, "run": pipeline_run_id, "owner": owner}
