"""The governance of dataset versions: validation reports and the publish gate,
classification (with audited overrides), anonymization, and garbage collection of blobs.

The pseudonymization key is one random 256-bit key per project, created on first use and
kept as a blob of the project's scope: encrypted at rest with AES-256-GCM under the project's
data key, itself wrapped by the master key from the key provider. It is never stored in clear,
is stable across versions (so a value always maps to the same pseudonym in a project), and
destroying the project's data key (crypto-shredding) destroys it too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.data._folders import remove_stale_unpacks
from keel.data._ingest import Ingest
from keel.data._model import DatasetVersion, GcReport, StoredReport
from keel.data._parts import without_personal_values
from keel.data._rows import VersionRef, dataset_row, version_row, version_value
from keel.data._service import DatasetService
from keel.errors import ConflictError, InvalidInputError, KeelError, NotFoundError
from keel.governance import Context, Governor, Permission, allows
from keel.lineage import LineageService, Node
from keel.store import DatasetRepository
from keel.store._schema_data import ValidationReportRow
from keel.types import new_id

if TYPE_CHECKING:
    from keel.blobs import BlobStore

_log = logging.getLogger("keel.data")

__all__ = ["DatasetGate"]

PSEUDONYM_KEY = "pseudonymization-key"


class DatasetGate:
    """Validation gate, classification, anonymization and gc over the dataset service."""

    def __init__(self, governor: Governor, blobs: BlobStore, datasets: DatasetService) -> None:
        self._gov = governor
        self._blobs = blobs
        self._datasets = datasets
        self._on_publish: list[Callable[[Context, str, int], None]] = []

    def on_publish(self, callback: Callable[[Context, str, int], None]) -> None:
        """Call ``callback(ctx, dataset, version)`` after each version is published (after
        the commit; a callback that raises is logged and does not undo the publish). The
        workspace fires the pipelines' ``dataset`` triggers this way."""
        self._on_publish.append(callback)

    # --- validation and the gate ------------------------------------------------------------

    def validate(
        self,
        ctx: Context,
        name: str,
        suite: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        version: VersionRef = None,
        reference: VersionRef = None,
    ) -> StoredReport:
        """Run a check suite over a version and store the report (with its HTML page)."""
        from keel.data._checks import (
            parse_suite,
            run_suite_parts,
            streamed_columns,
            whole_columns,
        )
        from keel.data._report import render_html

        parsed = parse_suite(suite)
        self._gov.check(
            ctx, Permission.DATASET_WRITE, action="dataset.validate", object_type="validation"
        )
        target = self._datasets.version(ctx, name, version)
        # Only the columns the checks name are read (a row count alone reads one column), and
        # part by part: counts and bounds are folded over the parts, so memory holds one part
        # plus the few columns that `unique`, bias and reference checks need whole.
        whole_names = whole_columns(parsed)
        whole = None
        if whole_names:
            whole = self._datasets._frame(ctx, target, columns=_present(whole_names, target))
        ref: DatasetVersion | None = None
        ref_frame = None
        if reference is not None:
            ref = self._datasets.version(ctx, name, reference)
            ref_frame = self._datasets._frame(ctx, ref, columns=_present(whole_names, ref))
        streamed = _present(streamed_columns(parsed), target)
        parts = (
            self._datasets._frames(ctx, target, columns=streamed)
            if target.parts  # a version with no parts still has its columns, with no rows
            else iter([self._datasets._frame(ctx, target, columns=streamed)])
        )
        result = run_suite_parts(
            parts,
            parsed,
            whole=whole,
            reference=ref_frame,
            sensitive_columns=_sensitive_columns(target.classification),
            now=clock.now(),
            columns=target.columns,
        )
        html = render_html(result, title=f"Validation of {name} v{target.version}")
        work = Ingest(self._gov.db, self._blobs, ctx)
        html_digest = work.put(html.encode("utf-8"))
        work.flush()
        data = result.to_dict()
        with self._gov.write(
            ctx, Permission.DATASET_WRITE, "dataset.validate", object_type="validation"
        ) as w:
            repo = DatasetRepository(w.session, ctx.project_id)
            row = ValidationReportRow(
                id=new_id(),
                project_id=ctx.project_id,
                version_id=target.id,
                reference_version_id=None if ref is None else ref.id,
                suite={"checks": parsed.to_list()},
                result=data,
                passed=result.passed,
                errors=len(result.errors),
                warnings=len(result.warnings),
                html_digest=html_digest,
                created_by=ctx.principal,
                created_at=clock.now(),
            )
            repo.add_report(row)
            repo.clear_pending(work.id)
            # withdrawing takes the right to publish: anyone who may validate must not be able
            # to take a dataset out of service with a suite made to fail (the failing report
            # is stored either way, and the audit event says the published version failed)
            may_withdraw = allows(ctx.roles, Permission.DATASET_PUBLISH)
            failed_published = not result.passed and target.published
            unpublished = (
                failed_published and may_withdraw and _unpublish(repo, name, target.version)
            )
            node = Node("validation", row.id)
            LineageService.link(
                w.session, ctx, Node("dataset_version", target.id), node, "validated"
            )
            if ref is not None:
                LineageService.link(
                    w.session, ctx, Node("dataset_version", ref.id), node, "reference"
                )
            w.object_id = row.id
            w.details = {
                "dataset": name,
                "version": target.version,
                "passed": result.passed,
                "errors": row.errors,
                "warnings": row.warnings,
                "unpublished": unpublished,
                "published_failed": failed_published,
            }
        return self._report(row, name, target.version, None if ref is None else ref.version)

    def reports(self, ctx: Context, name: str, version: VersionRef = None) -> list[StoredReport]:
        target = self._datasets.version(ctx, name, version)
        with self._gov.read(
            ctx, Permission.DATASET_READ, "dataset.reports", object_type="validation"
        ) as s:
            repo = DatasetRepository(s, ctx.project_id)
            rows = repo.reports(target.id)
            refs = {r.reference_version_id for r in rows if r.reference_version_id}
            numbers = {i: v.version for i in refs if (v := repo.version_by_id(i)) is not None}
            return [
                self._report(r, name, target.version, numbers.get(r.reference_version_id or ""))
                for r in rows
            ]

    def report_html(self, ctx: Context, report_id: str) -> str:
        """The stored, self-contained HTML page of a report."""
        with self._gov.read(
            ctx, Permission.DATASET_READ, "dataset.report", object_type="validation"
        ) as s:
            row = DatasetRepository(s, ctx.project_id).report(report_id)
            if row is None or row.html_digest is None:
                raise NotFoundError(f"No validation report {report_id!r} in this project.")
            digest = row.html_digest
        return self._blobs.get_bytes(digest, scope=ctx.project_id).decode("utf-8")

    def publish(self, ctx: Context, name: str, version: VersionRef = None) -> DatasetVersion:
        """Pass the gate: the version's latest report must have no failed error-level check."""
        with self._gov.write(
            ctx, Permission.DATASET_PUBLISH, "dataset.publish", object_type="dataset_version"
        ) as work:
            repo = DatasetRepository(work.session, ctx.project_id)
            dataset = dataset_row(repo, name)
            row = version_row(repo, dataset, version)
            report = repo.latest_report(row.id)
            if report is None:
                raise ConflictError(
                    f"Version {row.version} of dataset '{name}' has no validation report, so "
                    "it cannot be published. Validate it first: keel datasets validate "
                    f"{name} --version {row.version} --suite checks.yaml",
                    dataset=name,
                    version=row.version,
                )
            if not report.passed:
                failed = [
                    c.get("name", c.get("kind", "?"))
                    for c in report.result.get("checks", [])
                    if not c.get("passed") and c.get("level") == "error"
                ]
                raise ConflictError(
                    f"Version {row.version} of dataset '{name}' failed the validation gate: "
                    f"{report.errors} error-level check(s) failed "
                    f"({', '.join(map(str, failed[:10]))}) "
                    f"in report {report.id}. Fix the data (a transform makes a new version) "
                    "and validate again.",
                    dataset=name,
                    version=row.version,
                    report=report.id,
                )
            row.published = True
            work.session.flush()
            previous = repo.set_tag(dataset.id, "published", row.version)
            LineageService.link(
                work.session,
                ctx,
                Node("validation", report.id),
                Node("dataset_version", row.id),
                "gated",
            )
            work.object_id = row.id
            work.details = {
                "dataset": name,
                "version": row.version,
                "report": report.id,
                "warnings": report.warnings,
                "previous": previous,
            }
            published = version_value(repo, dataset, row)
        for callback in self._on_publish:
            try:
                callback(ctx, name, published.version)
            except KeelError as exc:  # the version is published: say why the rest was not
                _log.error("after publishing %s:%s: %s", name, published.version, exc.message)
        return published

    # --- classification -----------------------------------------------------------------------

    def classify(
        self, ctx: Context, name: str, version: VersionRef = None, *, sample_size: int = 10_000
    ) -> DatasetVersion:
        """Detect personal data per column (on a seeded sample) and store the labels.

        A derived version keeps at least the labels it inherited (see ``_detected``), and the
        audited overrides on it (or inherited from its parent) replace what detection found.
        """
        self._gov.check(
            ctx,
            Permission.DATASET_CLASSIFY,
            action="dataset.classify",
            object_type="dataset_version",
        )
        target = self._datasets.version(ctx, name, version)
        labels = self._detected(ctx, target, sample_size)
        kept = dict((target.classification or {}).get("overrides", {}))
        if kept:
            labels["columns"].update(
                {c: o["label"] for c, o in kept.items() if c in labels["columns"]}
            )
            labels = _recomputed(labels)
            labels["overrides"] = kept
        return self._store_labels(
            ctx, name, target.version, labels, "dataset.classify", {"sample_size": sample_size}
        )

    def _detected(self, ctx: Context, target: DatasetVersion, sample_size: int) -> dict[str, Any]:
        """The labels detection gives ``target``, raised to those it inherited when it is a
        derived version: its stored labels came from its parent's through ``propagate``, which
        already lowered the columns an anonymization step cleaned, so anything higher there is
        a cause still present (or an audited override upstream) that the sample cannot undo."""
        from keel.data._classify import Classification, at_least, classify_frame

        detected = classify_frame(self._sample(ctx, target, sample_size), sample_size=sample_size)
        if target.parents and target.classification:
            detected = at_least(detected, Classification.from_dict(target.classification))
        return detected.to_dict()

    def _sample(self, ctx: Context, version: DatasetVersion, size: int) -> Any:
        """A seeded sample of about ``size`` rows, drawn part by part (bounded memory)."""
        import polars as pl

        total = max(version.row_count, 1)
        pieces = []
        for index, frame in enumerate(
            self._datasets.iter_frames(ctx, version.dataset, version.version)
        ):
            if version.row_count <= size:
                pieces.append(frame)
                continue
            take = min(frame.height, -(-size * frame.height // total))
            pieces.append(frame.sample(take, seed=index) if take < frame.height else frame)
        return (
            pl.concat(pieces)
            if pieces
            else self._datasets.read(ctx, version.dataset, version.version)
        )

    def override(
        self,
        ctx: Context,
        name: str,
        column: str,
        *,
        sensitivity: str,
        categories: Sequence[str] = (),
        reason: str,
        version: VersionRef = None,
    ) -> DatasetVersion:
        """Replace one column's labels by hand; the reason is required and audited."""
        from keel.data._classify import ColumnClassification, Sensitivity

        if not isinstance(reason, str) or len(reason.strip()) < 3:
            raise InvalidInputError(
                "An override needs a reason (at least 3 characters); it is audited."
            )
        try:
            level = Sensitivity(sensitivity)
        except ValueError:
            raise InvalidInputError(
                f"Unknown sensitivity {sensitivity!r}; use one of: "
                + ", ".join(s.value for s in Sensitivity),
            ) from None
        self._gov.check(  # before any data is read to classify the rest of the version
            ctx,
            Permission.DATASET_CLASSIFY,
            action="dataset.classification_override",
            object_type="dataset_version",
        )
        target = self._datasets.version(ctx, name, version)
        if column not in target.columns:
            raise NotFoundError(f"Version {target.version} of '{name}' has no column {column!r}.")
        # A never-classified version is classified first: its other columns get the labels
        # detection gives them, so an override on one column never leaves the rest unlabelled
        # (which would read as ``public``).
        labels = dict(target.classification or self._detected(ctx, target, 10_000))
        columns = dict(labels.get("columns", {}))
        label = ColumnClassification(tuple(categories), level, 1.0, 0, "override").to_dict()
        columns[column] = label
        labels["columns"] = columns
        overrides = dict(labels.get("overrides", {}))
        overrides[column] = {"label": label, "reason": reason.strip()[:500], "by": ctx.principal}
        labels = _recomputed(labels)
        labels["overrides"] = overrides
        return self._store_labels(
            ctx,
            name,
            target.version,
            labels,
            "dataset.classification_override",
            {
                "column": column,
                "sensitivity": level.value,
                "categories": list(categories),
                "reason": reason.strip()[:500],
            },
        )

    def _store_labels(
        self,
        ctx: Context,
        name: str,
        number: int,
        labels: dict[str, Any],
        action: str,
        details: dict[str, Any],
    ) -> DatasetVersion:
        with self._gov.write(
            ctx, Permission.DATASET_CLASSIFY, action, object_type="dataset_version"
        ) as work:
            repo = DatasetRepository(work.session, ctx.project_id)
            dataset = dataset_row(repo, name)
            row = version_row(repo, dataset, number)
            row.classification = labels
            row.sensitivity = labels.get("sensitivity")
            row.manifest = without_personal_values(row.manifest, labels)
            work.session.flush()
            work.object_id = row.id
            work.details = {
                "dataset": name,
                "version": number,
                "sensitivity": row.sensitivity,
                **details,
            }
            return version_value(repo, dataset, row)

    # --- anonymization --------------------------------------------------------------------

    def anonymize(
        self,
        ctx: Context,
        name: str,
        steps: Sequence[Mapping[str, Any]],
        *,
        version: VersionRef = None,
        target: str | None = None,
    ) -> DatasetVersion:
        """Apply anonymization steps; the new version records what was done and its labels
        drop for the columns whose cause was removed."""
        from keel.data._anonymize import apply_anonymization, parse_steps

        parsed = parse_steps(steps)
        self._gov.check(
            ctx, Permission.DATASET_WRITE, action="dataset.anonymize", object_type="dataset"
        )
        source = self._datasets.version(ctx, name, version)
        frame = self._datasets.read(ctx, name, source.version)
        result, record = apply_anonymization(frame, parsed, key=self.pseudonym_key(ctx))
        return self._datasets.commit_frame(
            ctx,
            target or name,
            result,
            parent=source,
            transform={
                "id": new_id(),
                "kind": "anonymization",
                "input": source.id,
                "record": record.to_dict(),
            },
            removed_columns=record.suppressed_columns,
            anonymized_columns=record.anonymized_columns,
        )

    def pseudonym_key(self, ctx: Context) -> bytes:
        """The project's pseudonymization key (created on first use; see the module doc)."""
        with self._gov.db.read() as session:
            digest = DatasetRepository(session, ctx.project_id).secret(PSEUDONYM_KEY)
        if digest is None:
            info = self._blobs.put_bytes(os.urandom(32), scope=ctx.project_id)
            with self._gov.db.write() as session:
                repo = DatasetRepository(session, ctx.project_id)
                digest = repo.secret(PSEUDONYM_KEY)
                if digest is None:
                    repo.set_secret(PSEUDONYM_KEY, info.digest)
                    digest = info.digest
        return self._blobs.get_bytes(digest, scope=ctx.project_id)

    # --- garbage collection ---------------------------------------------------------------

    def gc(
        self, ctx: Context, *, dry_run: bool = False, older_than_seconds: float = 3600.0
    ) -> GcReport:
        """Remove blobs that killed ingests wrote and no version references, and stale
        temporary files; ``dry_run`` only reports them."""
        if older_than_seconds < 0:
            raise InvalidInputError("older_than_seconds must be 0 or more.")
        before = clock.now() - timedelta(seconds=older_than_seconds)
        with self._gov.write(
            ctx, Permission.PROJECT_ADMIN, "dataset.gc", object_type="blob"
        ) as work:
            repo = DatasetRepository(work.session, ctx.project_id)
            stale = repo.stale_pending(before)
            digests = sorted(stale)
            referenced = repo.referenced(digests)
            # An ingest records a digest before it writes the blob, so one killed in between
            # leaves a record with nothing stored: only stored blobs are reported as orphans
            # (the record itself is dropped with the rest).
            orphans = [
                d
                for d in digests
                if d not in referenced and self._blobs.exists(d, scope=ctx.project_id)
            ]
            freed = 0
            temporaries = 0
            keys = 0
            if not dry_run:
                for digest in orphans:
                    if self._blobs.exists(digest, scope=ctx.project_id):
                        self._blobs.delete(digest, scope=ctx.project_id)
                        freed += 1
                repo.delete_pending([i for ids in stale.values() for i in ids])
                temporaries = self._blobs.gc_temporaries(older_than_seconds)
                temporaries += remove_stale_unpacks(older_than_seconds=older_than_seconds)
                keys = self._blobs.gc_orphan_keys(
                    scope=ctx.project_id, older_than_seconds=older_than_seconds
                )
            work.details = {
                "dry_run": dry_run,
                "orphans": len(orphans),
                "temporaries": temporaries,
                "orphan_keys": keys,
            }
            return GcReport(
                dry_run=dry_run,
                orphan_blobs=orphans,
                deleted=freed,
                temporaries=temporaries,
                orphan_keys=keys,
            )

    @staticmethod
    def _report(
        row: ValidationReportRow, name: str, version: int, reference: int | None
    ) -> StoredReport:
        return StoredReport(
            id=row.id,
            dataset=name,
            version=version,
            version_id=row.version_id,
            reference_version=reference,
            passed=row.passed,
            errors=row.errors,
            warnings=row.warnings,
            result=row.result,
            html_digest=row.html_digest,
            created_by=row.created_by,
            created_at=row.created_at,
        )


def _unpublish(repo: DatasetRepository, name: str, number: int) -> bool:
    """Withdraw a published version whose new report failed: the gate holds for the latest
    report, so asking for ``published`` must not serve a version that fails it now (the tag
    is removed, not moved back: which older version is right is the publisher's call)."""
    dataset = dataset_row(repo, name)
    row = version_row(repo, dataset, number)
    if not row.published:
        return False
    row.published = False
    if repo.tags(dataset.id).get("published") == number:
        repo.delete_tag(dataset.id, "published")
    return True


def _present(names: Sequence[str], version: DatasetVersion) -> list[str]:
    """The version's columns among ``names`` (at least one, so the frame keeps its row
    count); a check naming a missing column fails with a message of its own."""
    present = [c for c in version.columns if c in set(names)]
    return present or list(version.columns[:1])


def _sensitive_columns(classification: Mapping[str, Any] | None) -> list[str]:
    if not classification:
        return []
    order = ["public", "internal", "confidential", "restricted"]
    return [
        c
        for c, label in classification.get("columns", {}).items()
        if order.index(str(label.get("sensitivity", "internal"))) >= 2 or label.get("categories")
    ]


def _recomputed(labels: dict[str, Any]) -> dict[str, Any]:
    from keel.data._classify import Classification

    return Classification.from_dict(labels).to_dict()
