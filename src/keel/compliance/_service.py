"""The compliance service: find, export and erase a data subject; enforce retention.

Every method needs ``compliance.admin`` (project admins and owners): locating or exporting
a subject reveals personal data, erasing destroys it. Each is audited with the subject's
keyed hash, never the id.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.compliance._access import live_versions, provenance, subject_rejects, subject_rows
from keel.compliance._common import models_downstream
from keel.compliance._erase import Eraser
from keel.compliance._gaps import MATCHING, coverage_notes, prediction_note
from keel.compliance._lease import LEASE, describe, runner, take_over
from keel.compliance._model import AccessExport, ErasedVersion, ErasureReport, SubjectLocation
from keel.compliance._retention import RetentionEnforcer, report_of
from keel.compliance._scan import logged_predictions
from keel.compliance._subjects import Coverage, Progress, SubjectIndex
from keel.errors import ConflictError, NotFoundError
from keel.governance import Context, Governor, Permission
from keel.store import ComplianceRepository, DatasetRepository, ErasureRepository
from keel.types import new_id

if TYPE_CHECKING:
    from keel.blobs import BlobStore
    from keel.data import DatasetService

__all__ = ["ErasureService"]

#: The most rows of one subject an access export carries.
MAX_EXPORT_ROWS = 100_000
_ADMIN = Permission.COMPLIANCE_ADMIN
RENEW_SECONDS = 60.0
_ACTION = {"subject": "erase", "retention": "retention"}


class ErasureService:
    """Subject index, right of access, right to erasure and retention of one store."""

    def __init__(self, governor: Governor, blobs: BlobStore, datasets: DatasetService) -> None:
        self._gov = governor
        self._blobs = blobs
        self.index = SubjectIndex(governor, blobs)
        self._eraser = Eraser(governor, blobs, datasets, self.index)
        self._retention = RetentionEnforcer(governor, blobs, datasets)

    def locate(
        self, ctx: Context, subject: str, *, progress: Progress | None = None
    ) -> builtins.list[SubjectLocation]:
        """The dataset versions that hold (or held, if erased) rows of ``subject``."""
        self._gov.check(ctx, _ADMIN, action="compliance.locate", object_type="subject")
        digest = self.index.hash(ctx, subject)
        self.index.refresh(ctx, progress=progress)
        keys = self.index.keys(ctx, subject, self.index.covered(ctx))
        found = self._locations(ctx, list(keys.values()))
        with self._gov.write(ctx, _ADMIN, "compliance.locate", object_type="subject") as work:
            work.details = {"subject": digest, "versions": len(found)}
        return found

    def _locations(
        self, ctx: Context, subject_hashes: builtins.list[str]
    ) -> builtins.list[SubjectLocation]:
        parts, uses = self.index.locate(ctx, subject_hashes)
        out: list[SubjectLocation] = []
        with self._gov.db.read() as session:
            repo = DatasetRepository(session, ctx.project_id)
            erased = ErasureRepository(session, ctx.project_id).erased_versions()
            names = {d.id: d.name for d in repo.datasets()}
            for version_id in sorted({v for v, _ in uses}):
                row = repo.version_by_id(version_id)
                if row is None:
                    continue
                rows = sum(parts.get(p["digest"], 0) for p in row.manifest.get("parts", []))
                out.append(
                    SubjectLocation(names[row.dataset_id], row.version, rows, row.id in erased)
                )
        return sorted(out, key=lambda loc: (loc.dataset, loc.version))

    def erase(
        self,
        ctx: Context,
        subject: str,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> ErasureReport:
        """Erase ``subject`` everywhere the index finds them (resumes an interrupted run)."""
        self._gov.check(ctx, _ADMIN, action="compliance.erase", object_type="subject")
        digest = self.index.hash(ctx, subject)
        self.index.refresh(ctx, progress=progress)
        with self._gov.db.read() as session:
            pending = ErasureRepository(session, ctx.project_id).running("subject", digest)
            if pending is not None:
                erasure_id, plan = pending.id, pending.plan
                started = pending.created_at.isoformat()
        if pending is None:
            coverage = self.index.covered(ctx)
            keys = self.index.keys(ctx, subject, coverage)
            plan = {"subject": digest, **self._eraser.plan(ctx, list(keys.values()), coverage)}
            if dry_run:
                return self._planned(ctx, plan)
            erasure_id, plan, created = self._start(ctx, "subject", digest, plan)
            started = created.isoformat()
        elif dry_run:
            return self._planned(ctx, plan, erasure_id=erasure_id)
        with self._claim(ctx, erasure_id, plan, progress) as tick:
            return self._eraser.run(
                ctx, subject, erasure_id, plan, started_at=started, progress=tick
            )

    def _start(
        self, ctx: Context, kind: str, subject: str | None, plan: dict[str, Any]
    ) -> tuple[str, dict[str, Any], datetime]:
        """Record a running erasure, or find the one a concurrent request just started (a
        unique index allows one running erasure per subject, and one retention run)."""
        details: dict[str, Any] = {"versions": len(plan["versions"]), "parts": len(plan["parts"])}
        if subject is not None:
            details["subject"] = subject
        attempts = 0
        while True:
            try:
                action = f"compliance.{_ACTION[kind]}.start"
                with self._gov.write(ctx, _ADMIN, action, object_type="erasure") as work:
                    repo = ErasureRepository(work.session, ctx.project_id)
                    row = repo.running(kind, subject) or repo.add_erasure(
                        kind=kind, subject=subject, plan=plan, requested_by=ctx.principal
                    )
                    work.object_id, work.details = row.id, details
                    return row.id, row.plan, row.created_at
            except ConflictError:
                with self._gov.db.read() as session:
                    found = ErasureRepository(session, ctx.project_id).running(kind, subject)
                    if found is not None:
                        return found.id, found.plan, found.created_at
                attempts += 1
                if attempts == 3:
                    raise
                # the concurrent one finished in between: start ours (the run leaves out
                # what that one erased, see drop_erased_elsewhere)

    @contextmanager
    def _claim(
        self, ctx: Context, erasure_id: str, plan: dict[str, Any], progress: Progress | None
    ) -> Iterator[Progress]:
        """Hold the erasure's lease while it runs (renewed as it advances), so a retry of
        the same request (a client that timed out) waits instead of running it twice."""
        owner = new_id()
        me = runner(owner)
        with self._gov.db.write() as session:
            repo = ErasureRepository(session, ctx.project_id)
            taken = repo.claim(erasure_id, owner, LEASE) or take_over(
                session, ctx, erasure_id, owner
            )
            row = repo.erasure(erasure_id)
            if taken and row is not None:
                # who runs it, so that a retry on this machine can tell when it was killed
                row.plan = {**row.plan, "runner": me}
                session.flush()
            holder = None if row is None else (row.plan or {}).get("runner")
            until = None if row is None else row.claimed_until
        if not taken:
            raise ConflictError(
                f"Erasure {erasure_id} is being run by another request right now "
                f"({describe(holder)}), which renews its claim as it advances"
                + (f" (claimed until {until.isoformat(timespec='seconds')})" if until else "")
                + ". It goes on by itself: see its report with `keel compliance erasure "
                f"{erasure_id}`. If that process died, run the same command again: on its "
                "machine it is taken over at once, from elsewhere once the claim runs out.",
                erasure_id=erasure_id,
            )
        plan["runner"] = me  # kept when the plan is stored again
        renewed = [time.monotonic()]

        def tick(what: str, done: int, total: int) -> None:
            # not while shredding: that runs inside the datasets' lock (one SQLite writer)
            if what != "shred" and time.monotonic() - renewed[0] > RENEW_SECONDS:
                with self._gov.db.write() as session:
                    repo = ErasureRepository(session, ctx.project_id)
                    if not repo.claim(erasure_id, owner, LEASE):
                        raise ConflictError(
                            f"Erasure {erasure_id} was taken over by another request after "
                            "this one stalled; this one stops.",
                            erasure_id=erasure_id,
                        )
                renewed[0] = time.monotonic()
            if progress is not None:
                progress(what, done, total)

        try:
            yield tick
        except BaseException:
            with self._gov.db.write() as session:
                ErasureRepository(session, ctx.project_id).release(erasure_id, owner)
            raise

    def _planned(
        self, ctx: Context, plan: dict[str, Any], *, erasure_id: str = ""
    ) -> ErasureReport:
        with self._gov.write(ctx, _ADMIN, "compliance.erase.plan", object_type="subject") as work:
            work.object_id = erasure_id or None
            work.details = {
                "subject": plan["subject"],
                "versions": [f"{v['dataset']}:{v['version']}" for v in plan["versions"]][:200],
                "parts": len(plan["parts"]),
            }
        return ErasureReport(
            id=erasure_id,
            kind="subject",
            subject=plan["subject"],
            state="planned",
            dry_run=True,
            requested_by=ctx.principal,
            started_at=clock.now().isoformat(),
            finished_at=None,
            versions=tuple(
                ErasedVersion(
                    dataset=v["dataset"],
                    version=v["version"],
                    rows_removed=int(v["rows"]),
                    replaced_by=None,
                    tags_moved=tuple(v["tags"]),
                )
                for v in plan["versions"]
            ),
            parts={"to_shred": len(plan["parts"])},
            models_flagged=(),
            notes=("dry run: tagged versions would be replaced and their tags moved",),
        )

    def access(
        self, ctx: Context, subject: str, *, progress: Progress | None = None
    ) -> AccessExport:
        """Everything held about ``subject``: their rows (with where each version's rows
        came from), rejected lines and logged predictions naming them, the models trained
        on them, the records of processing, past erasures, and what was not searched
        (audited)."""
        self._gov.check(ctx, _ADMIN, action="compliance.access", object_type="subject")
        digest = self.index.hash(ctx, subject)
        self.index.refresh(ctx, progress=progress)
        coverage = self.index.covered(ctx)
        keys = self.index.keys(ctx, subject, coverage)
        texts = set(keys)
        locations = self._locations(ctx, list(keys.values()))
        parts, uses = self.index.locate(ctx, list(keys.values()))
        with self._gov.db.read() as session:
            live = live_versions(session, ctx, [v for v, _ in uses])
        rows, total = subject_rows(
            self._blobs, ctx, coverage, (parts, uses, live), texts, limit=MAX_EXPORT_ROWS
        )
        rejected = subject_rejects(self._blobs, ctx, coverage, texts)
        fields = {r.column for r in coverage.refs}
        logged = logged_predictions(
            self._gov, self._blobs, ctx, texts, fields, keep=MAX_EXPORT_ROWS, progress=progress
        )
        notes: list[str] = []
        if total >= MAX_EXPORT_ROWS:
            notes.append(f"the export stops at {MAX_EXPORT_ROWS} rows")
        notes += self._not_searched(coverage, [v for v, _ in uses], verb="exported")
        said = prediction_note(logged, fields, verb="exported")
        if said:
            notes.append(said)
        if logged.total > len(logged.rows):
            notes.append(f"the export holds the first {len(logged.rows)} logged predictions")
        datasets = {loc.dataset for loc in locations}
        with self._gov.write(ctx, _ADMIN, "compliance.access", object_type="subject") as work:
            records = tuple(
                {
                    "dataset": r.dataset,
                    "purpose": r.purpose,
                    "lawful_basis": r.lawful_basis,
                    "categories": list(r.categories),
                    "retention_days": r.retention_days,
                    "allowed_regions": list(r.allowed_regions),
                }
                for r in ComplianceRepository(work.session, ctx.project_id).records()
                if r.dataset in datasets
            )
            unrecorded = sorted(datasets - {r["dataset"] for r in records})
            if unrecorded:
                notes.append(
                    "the subject's rows are held in datasets with no record of processing "
                    "(purpose, lawful basis, retention): " + ", ".join(unrecorded[:50])
                )
            models = self._model_names(work.session, ctx, sorted({v for v, _ in uses}))
            erasures = tuple(
                {
                    "id": e.id,
                    "state": e.state,
                    "requested_at": e.created_at.isoformat(),
                    "finished_at": e.finished_at.isoformat() if e.finished_at else None,
                }
                for e in ErasureRepository(work.session, ctx.project_id).erasures(subject=digest)
            )
            sources = provenance(work.session, ctx, [*rows, *rejected])
            work.details = {"subject": digest, "versions": len(rows), "rows": total}
            if rejected or logged.total:
                work.details["rejected"] = sum(len(v) for v in rejected.values())
                work.details["predictions"] = logged.total
        return AccessExport(
            subject=digest,
            generated_at=clock.now().isoformat(),
            locations=tuple(locations),
            rows=rows,
            models=tuple(models),
            records=records,
            erasures=erasures,
            notes=tuple(notes),
            sources=sources,
            rejected=rejected,
            predictions=tuple(logged.rows),
        )

    @staticmethod
    def _not_searched(coverage: Coverage, held: builtins.list[str], *, verb: str) -> list[str]:
        notes = []
        if coverage.not_searched:
            notes.append(
                "datasets not searched (no declared subject column, or one of a type that "
                "holds no single id): " + ", ".join(coverage.not_searched[:50])
            )
        notes += coverage_notes(coverage, held, verb=verb)
        notes.append(MATCHING)
        return notes

    @staticmethod
    def _model_names(session: Any, ctx: Context, version_ids: list[str]) -> list[str]:
        from sqlalchemy import select

        from keel.store._schema import ModelVersionRow, RegisteredModelRow

        ids = models_downstream(session, ctx, version_ids, skip=set())
        if not ids:
            return []
        stmt = (
            select(RegisteredModelRow.name, ModelVersionRow.version)
            .join(ModelVersionRow, ModelVersionRow.model_id == RegisteredModelRow.id)
            .where(ModelVersionRow.id.in_(ids), RegisteredModelRow.project_id == ctx.project_id)
        )
        return sorted(f"{name}:{version}" for name, version in session.execute(stmt))

    def enforce_retention(
        self,
        ctx: Context,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
        progress: Progress | None = None,
    ) -> ErasureReport:
        """Erase the versions past their retention (the scheduled job's function)."""
        moment = now or clock.now()
        if moment.tzinfo is None:  # a naive time is taken as UTC, like every stored time
            moment = moment.replace(tzinfo=UTC)
        self._gov.check(ctx, _ADMIN, action="compliance.retention", object_type="erasure")
        with self._gov.db.read() as session:
            pending = ErasureRepository(session, ctx.project_id).running("retention", None)
            resumed = None if pending is None else (pending.id, pending.plan, pending.created_at)
        if resumed is None:
            plan = self._retention.plan(ctx, moment)
            if dry_run:
                with self._gov.write(
                    ctx, _ADMIN, "compliance.retention.plan", object_type="erasure"
                ) as work:
                    work.details = {
                        "due": [f"{v['dataset']}:{v['version']}" for v in plan["versions"]][:200],
                        "parts": len(plan["parts"]),
                    }
                return report_of(ctx, "", plan, started_at=moment.isoformat(), dry_run=True)
            resumed = self._start(ctx, "retention", None, plan)
        erasure_id, stored, created = resumed
        if dry_run:
            return report_of(ctx, erasure_id, stored, started_at=created.isoformat(), dry_run=True)
        with self._claim(ctx, erasure_id, stored, progress) as tick:
            return self._retention.run(
                ctx, erasure_id, stored, started_at=created.isoformat(), progress=tick
            )

    def _job_slot(self, ctx: Context, owner: str, now: datetime, until: datetime) -> bool:
        """Whether this process runs the retention job at ``now`` (one replica per interval)."""
        with self._gov.db.write() as session:
            return ErasureRepository(session, ctx.project_id).take_lease(
                "retention-job", owner, now=now, until=until
            )

    def erasures(self, ctx: Context, *, limit: int = 100) -> builtins.list[ErasureReport]:
        """Past and running erasures, newest first."""
        with self._gov.read(ctx, _ADMIN, "compliance.erasures", object_type="erasure") as session:
            rows = ErasureRepository(session, ctx.project_id).erasures(limit=limit)
            return [self._report(row) for row in rows]

    def erasure(self, ctx: Context, erasure_id: str) -> ErasureReport:
        """One erasure's report."""
        with self._gov.read(ctx, _ADMIN, "compliance.erasure", object_type="erasure") as session:
            row = ErasureRepository(session, ctx.project_id).erasure(erasure_id)
            if row is None:
                raise NotFoundError(
                    f"No erasure {erasure_id[:40]!r} in project '{ctx.project_name}'. List "
                    "them with `keel compliance erasures`.",
                    erasure_id=erasure_id[:40],
                )
            return self._report(row)

    @staticmethod
    def _report(row: Any) -> ErasureReport:
        if row.report is not None:
            return ErasureReport.from_dict(row.report)
        return ErasureReport(
            id=row.id,
            kind=row.kind,
            subject=row.subject,
            state=row.state,
            dry_run=False,
            requested_by=row.requested_by,
            started_at=row.created_at.isoformat(),
            finished_at=None,
            versions=(),
            parts={},
            models_flagged=(),
            notes=("interrupted: run the same command again to resume it",),
        )
