"""The compliance service: find, export and erase a data subject; enforce retention.

Every method needs ``compliance.admin`` (project admins and owners): locating or exporting
a subject reveals personal data, erasing destroys it. Each is audited with the subject's
keyed hash, never the id.
"""

from __future__ import annotations

import builtins
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.compliance._common import models_downstream
from keel.compliance._erase import Eraser
from keel.compliance._model import AccessExport, ErasedVersion, ErasureReport, SubjectLocation
from keel.compliance._retention import RetentionEnforcer, report_of
from keel.compliance._subjects import Progress, SubjectIndex
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
#: How long a running erasure stays claimed without news from the process running it.
LEASE = timedelta(minutes=30)
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
        found = self._locations(ctx, digest)
        with self._gov.write(ctx, _ADMIN, "compliance.locate", object_type="subject") as work:
            work.details = {"subject": digest, "versions": len(found)}
        return found

    def _locations(self, ctx: Context, subject_hash: str) -> builtins.list[SubjectLocation]:
        parts, uses = self.index.locate(ctx, subject_hash)
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
            plan = {"subject": digest, **self._eraser.plan(ctx, digest)}
            if dry_run:
                return self._planned(ctx, plan)
            erasure_id, plan, created = self._start(ctx, "subject", digest, plan)
            started = created.isoformat()
        elif dry_run:
            return self._planned(ctx, plan, erasure_id=erasure_id)
        with self._claim(ctx, erasure_id, progress) as tick:
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
                if found is None:
                    raise
                return found.id, found.plan, found.created_at

    @contextmanager
    def _claim(
        self, ctx: Context, erasure_id: str, progress: Progress | None
    ) -> Iterator[Progress]:
        """Hold the erasure's lease while it runs (renewed as it advances), so a retry of
        the same request (a client that timed out) waits instead of running it twice."""
        owner = new_id()
        with self._gov.db.write() as session:
            taken = ErasureRepository(session, ctx.project_id).claim(erasure_id, owner, LEASE)
        if not taken:
            raise ConflictError(
                f"Erasure {erasure_id} is being run by another request right now. It goes on "
                "by itself: see its report with `keel compliance erasure "
                f"{erasure_id}`; run the same command again once it is done to check.",
                erasure_id=erasure_id,
            )
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
        """Everything held about ``subject``: their rows, the models trained on them, the
        records of processing, past erasures (audited)."""
        import polars as pl

        self._gov.check(ctx, _ADMIN, action="compliance.access", object_type="subject")
        digest = self.index.hash(ctx, subject)
        self.index.refresh(ctx, progress=progress)
        locations = self._locations(ctx, digest)
        parts, uses = self.index.locate(ctx, digest)
        refs = {r.id: r for r in self.index.covered(ctx)[0]}
        rows: dict[str, list[dict[str, Any]]] = {}
        total = 0
        notes: list[str] = []
        for version_id in sorted({v for v, _ in uses}):
            ref = refs.get(version_id)
            if ref is None:  # erased: nothing left to read
                continue
            found: list[dict[str, Any]] = []
            for part in ref.parts:
                if part not in parts or total >= MAX_EXPORT_ROWS:
                    continue
                frame = pl.read_parquet(
                    io.BytesIO(self._blobs.get_bytes(part, scope=ctx.project_id))
                )
                match = frame.filter(pl.col(ref.column).cast(pl.String) == subject)
                found.extend(match.head(MAX_EXPORT_ROWS - total).to_dicts())
                total = min(total + match.height, MAX_EXPORT_ROWS)
            rows[f"{ref.dataset}@{ref.version}"] = found
        if total >= MAX_EXPORT_ROWS:
            notes.append(f"the export stops at {MAX_EXPORT_ROWS} rows")
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
            work.details = {"subject": digest, "versions": len(rows), "rows": total}
        return AccessExport(
            subject=digest,
            generated_at=clock.now().isoformat(),
            locations=tuple(locations),
            rows=rows,
            models=tuple(models),
            records=records,
            erasures=erasures,
            notes=tuple(notes),
        )

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
        with self._claim(ctx, erasure_id, progress) as tick:
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
