"""``ws.compliance``: GDPR and UAE PDPL duties of the workspace's project."""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from keel.compliance._model import AccessExport, ErasureReport, SubjectLocation, write_access_zip
from keel.types import new_id

if TYPE_CHECKING:
    from keel.compliance._service import ErasureService
    from keel.compliance._subjects import Progress
    from keel.governance import (
        ComplianceService,
        Context,
        Location,
        ProcessingRecord,
        RetentionItem,
    )

__all__ = ["Compliance"]


class Compliance:
    """Records of processing, locations, the subject index, access, erasure and retention.

    Args:
        records: The records-of-processing service (``keel.governance.ComplianceService``).
        subjects: The erasure service (or its remote stand-in).
        ctx: The caller.
    """

    def __init__(self, records: ComplianceService, subjects: ErasureService, ctx: Context) -> None:
        self._s, self._e, self._ctx = records, subjects, ctx

    def declare(
        self,
        dataset: str,
        *,
        purpose: str,
        lawful_basis: str,
        categories: Sequence[str] = (),
        subjects: Sequence[str] = (),
        allowed_regions: Sequence[str] = (),
        retention_days: int | None = None,
        subject_column: str | None = None,
    ) -> ProcessingRecord:
        """Create or replace the record of processing of a dataset."""
        return self._s.declare(
            self._ctx,
            dataset,
            purpose=purpose,
            lawful_basis=lawful_basis,
            categories=categories,
            subjects=subjects,
            allowed_regions=allowed_regions,
            retention_days=retention_days,
            subject_column=subject_column,
        )

    def records(self) -> builtins.list[ProcessingRecord]:
        """The records-of-processing report (every dataset, declared or not)."""
        return self._s.records(self._ctx)

    def retention(self, *, now: datetime | None = None) -> builtins.list[RetentionItem]:
        """Dataset versions kept past their retention (a report; see enforce_retention)."""
        return self._s.retention(self._ctx, now=now)

    def set_location(self, name: str, *, kind: str, region: str) -> Location:
        return self._s.set_location(self._ctx, name, kind=kind, region=region)

    def locations(self) -> builtins.list[Location]:
        return self._s.locations(self._ctx)

    def locate(
        self, subject: str, *, progress: Progress | None = None
    ) -> builtins.list[SubjectLocation]:
        """The dataset versions that hold rows of ``subject``."""
        return self._e.locate(self._ctx, subject, progress=progress)

    def erase(
        self, subject: str, *, dry_run: bool = False, progress: Progress | None = None
    ) -> ErasureReport:
        """Erase ``subject``: new versions without their rows, old parts crypto-shredded,
        tags moved, trained models flagged for retraining."""
        return self._e.erase(self._ctx, subject, dry_run=dry_run, progress=progress)

    def access(
        self,
        subject: str,
        *,
        out: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> AccessExport:
        """What is held about ``subject``; with ``out``, also written there as a zip."""
        export = self._e.access(self._ctx, subject, progress=progress)
        if out is not None:
            write_access_zip(export, out)
        return export

    def enforce_retention(
        self,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
        progress: Progress | None = None,
    ) -> ErasureReport:
        """Erase the dataset versions past their retention (``dry_run`` only plans)."""
        return self._e.enforce_retention(self._ctx, dry_run=dry_run, now=now, progress=progress)

    def retention_job(
        self, *, every: timedelta = timedelta(hours=1)
    ) -> Callable[[datetime], ErasureReport | None]:
        """A scheduler job (``Scheduler(jobs=[...])``) that enforces retention every ``every``.

        At most once per ``every`` it looks for versions past their retention (an audited
        check) and, when there are some, erases them as ``enforce_retention`` does; it returns
        the erasure report, or None when it did not run or found nothing due. With several
        scheduler replicas on one store, one of them (the first to take a lease in the
        database for the interval) runs it.
        """
        last: list[datetime] = []
        owner = f"retention-job:{new_id()}"

        def enforce_retention_due(moment: datetime) -> ErasureReport | None:
            if last and moment - last[0] < every:
                return None
            last[:] = [moment]
            # every scheduler replica has this job: the first to take the interval's lease
            # runs it, the others skip it until the lease expires
            if not self._e._job_slot(self._ctx, owner, moment, moment + every):
                return None
            if not self.retention(now=moment):
                return None
            return self.enforce_retention(now=moment)

        return enforce_retention_due

    def erasures(self, *, limit: int = 100) -> builtins.list[ErasureReport]:
        """Past and running erasures, newest first."""
        return self._e.erasures(self._ctx, limit=limit)

    def erasure(self, erasure_id: str) -> ErasureReport:
        """One erasure's report."""
        return self._e.erasure(self._ctx, erasure_id)
