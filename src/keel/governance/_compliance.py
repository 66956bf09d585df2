"""GDPR and UAE PDPL duties: records of processing, locations with regions, retention.

A record of processing (GDPR art. 30, PDPL art. 31) is declared per dataset: purpose, lawful
basis, data-subject kinds, personal-data categories, allowed regions, retention and the
subject-id column. :meth:`ComplianceService.records` reports every dataset of the project
with its record — or flags it ``undeclared`` — joined with what the store knows (categories
from the latest version's classification, the regions its versions are in, its sensitivity).
:func:`retention_due` is pure; :meth:`ComplianceService.retention` lists the versions kept
past their retention (not erased yet) and audits the finding; ``keel.compliance`` erases them
(``keel compliance enforce-retention``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from keel import clock
from keel.errors import InvalidInputError
from keel.governance._context import Context
from keel.governance._governor import Governor
from keel.governance._permissions import Permission
from keel.governance._residency import normalise_region
from keel.store import ComplianceRepository, DatasetRepository, ErasureRepository
from keel.store._schema_policy import ProcessingRecordRow
from keel.types import validate_name

__all__ = [
    "LAWFUL_BASES",
    "ComplianceService",
    "Location",
    "ProcessingRecord",
    "RetentionItem",
    "retention_due",
]

#: GDPR art. 6(1) bases (PDPL art. 4 and 5 map onto the same set).
LAWFUL_BASES = frozenset(
    {
        "consent",
        "contract",
        "legal_obligation",
        "vital_interests",
        "public_task",
        "legitimate_interests",
    }
)
_KINDS = frozenset({"storage", "deployment", "compute"})


@dataclass(frozen=True, slots=True)
class Location:
    """A storage location or deployment target and its region."""

    name: str
    kind: str
    region: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "region": self.region}


@dataclass(frozen=True, slots=True)
class ProcessingRecord:
    """One line of the records-of-processing report."""

    dataset: str
    declared: bool
    purpose: str
    lawful_basis: str
    subjects: tuple[str, ...]
    categories: tuple[str, ...]
    allowed_regions: tuple[str, ...]
    stored_regions: tuple[str, ...]
    retention_days: int | None
    subject_column: str | None
    versions: int
    sensitivity: str | None
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass(frozen=True, slots=True)
class RetentionItem:
    """A dataset version kept past its retention period."""

    dataset: str
    version: int
    created_at: datetime
    expired_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "expired_at": self.expired_at.isoformat(),
        }


def retention_due(
    versions: Iterable[tuple[str, int, datetime]],
    retention_days: dict[str, int | None],
    now: datetime,
) -> list[RetentionItem]:
    """Versions ``(dataset, version, created_at)`` older than their dataset's retention."""
    due = []
    for dataset, number, created in versions:
        days = retention_days.get(dataset)
        if days is None:
            continue
        expired = created + timedelta(days=days)
        if expired <= now:
            due.append(RetentionItem(dataset, number, created, expired))
    return sorted(due, key=lambda item: (item.dataset, item.version))


#: Column types a subject id can have (as Keel records them: ``str`` of the Polars type).
SUBJECT_TYPES = ("String", "Utf8", "Int", "UInt", "Categorical", "Enum")


def subject_type_ok(dtype: str) -> bool:
    """Whether a column of this type can name data subjects (a scalar id: text or integer)."""
    return dtype.startswith(SUBJECT_TYPES)


def _strings(values: Sequence[str] | None, what: str, *, limit: int = 50) -> list[str]:
    out = [str(v).strip() for v in (values or []) if str(v).strip()]
    if len(out) > limit or any(len(v) > 64 for v in out):
        raise InvalidInputError(f"Give at most {limit} {what}, each up to 64 characters.")
    return sorted(set(out))


class ComplianceService:
    """Records of processing, locations and retention (COMPLIANCE_ADMIN to change)."""

    def __init__(self, governor: Governor) -> None:
        self._gov = governor

    def declare(
        self,
        ctx: Context,
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
        """Create or replace the record of processing of ``dataset``."""
        validate_name(dataset, what="dataset name")
        if not purpose.strip() or len(purpose) > 2000:
            raise InvalidInputError("State the purpose of processing (1-2000 characters).")
        if lawful_basis not in LAWFUL_BASES:
            raise InvalidInputError(
                f"Unknown lawful basis {lawful_basis!r}; use one of {sorted(LAWFUL_BASES)}."
            )
        if retention_days is not None and not 1 <= retention_days <= 36_500:
            raise InvalidInputError("Retention is 1 to 36500 days (or none).")
        regions = sorted({normalise_region(r) for r in allowed_regions})
        with self._gov.write(
            ctx, Permission.COMPLIANCE_ADMIN, "compliance.declare", object_type="dataset"
        ) as work:
            if subject_column:
                _check_subject_column(work.session, ctx, dataset, subject_column)
            row = ComplianceRepository(work.session, ctx.project_id).upsert_record(
                dataset,
                updated_by=ctx.principal,
                purpose=purpose.strip(),
                lawful_basis=lawful_basis,
                categories=_strings(categories, "categories"),
                subjects=_strings(subjects, "subject kinds"),
                allowed_regions=regions,
                retention_days=retention_days,
                subject_column=subject_column,
            )
            work.object_id = row.id
            work.details = {"dataset": dataset, "lawful_basis": lawful_basis, "regions": regions}
            return self._record(work.session, ctx, row.dataset, row)

    def set_location(self, ctx: Context, name: str, *, kind: str, region: str) -> Location:
        """Declare where a storage location or deployment target is."""
        validate_name(name, what="location name")
        if kind not in _KINDS:
            raise InvalidInputError(f"Location kind must be one of {sorted(_KINDS)}.")
        code = normalise_region(region)
        with self._gov.write(
            ctx, Permission.COMPLIANCE_ADMIN, "compliance.location", object_type="location"
        ) as work:
            row = ComplianceRepository(work.session, ctx.project_id).set_location(
                name, kind=kind, region=code
            )
            work.object_id = row.id
            work.details = {"name": name, "kind": kind, "region": code}
            return Location(row.name, row.kind, row.region)

    def locations(self, ctx: Context) -> builtins.list[Location]:
        with self._gov.read(
            ctx, Permission.PROJECT_READ, "compliance.locations", object_type="location"
        ) as session:
            rows = ComplianceRepository(session, ctx.project_id).locations()
            return [Location(r.name, r.kind, r.region) for r in rows]

    def records(self, ctx: Context) -> builtins.list[ProcessingRecord]:
        """The records-of-processing report: every dataset, declared or not."""
        with self._gov.read(
            ctx, Permission.AUDIT_READ, "compliance.records", object_type="dataset"
        ) as session:
            declared = {
                r.dataset: r for r in ComplianceRepository(session, ctx.project_id).records()
            }
            names = {d.name for d in DatasetRepository(session, ctx.project_id).datasets()}
            return [
                self._record(session, ctx, name, declared.get(name))
                for name in sorted(names | set(declared))
            ]

    def retention(
        self, ctx: Context, *, now: datetime | None = None
    ) -> builtins.list[RetentionItem]:
        """The job function: versions past their retention, found and audited."""
        moment = now or clock.now()
        if moment.tzinfo is None:  # a naive time is taken as UTC, like every stored time
            moment = moment.replace(tzinfo=UTC)
        with self._gov.write(
            ctx, Permission.COMPLIANCE_ADMIN, "compliance.retention", object_type="dataset"
        ) as work:
            records = ComplianceRepository(work.session, ctx.project_id).records()
            days = {r.dataset: r.retention_days for r in records}
            datasets = DatasetRepository(work.session, ctx.project_id)
            erased = ErasureRepository(work.session, ctx.project_id).erased_versions()
            versions = [
                (d.name, v.version, v.created_at)
                for d in datasets.datasets()
                if days.get(d.name) is not None
                for v in datasets.versions(d.id)
                if v.id not in erased  # already erased (keel compliance enforce-retention)
            ]
            due = retention_due(versions, days, moment)
            work.details = {
                "checked": len(versions),
                "overdue": [f"{i.dataset}:{i.version}" for i in due][:200],
            }
            return due

    @staticmethod
    def _record(
        session: Any, ctx: Context, name: str, row: ProcessingRecordRow | None
    ) -> ProcessingRecord:
        datasets = DatasetRepository(session, ctx.project_id)
        found = datasets.dataset(name)
        versions = datasets.versions(found.id) if found is not None else []
        latest = versions[-1] if versions else None
        classified = tuple((latest.classification or {}).get("categories", [])) if latest else ()
        stored = tuple(sorted({v.residency for v in versions if v.residency}))
        problems: list[str] = []
        if row is None:
            problems.append("no record of processing declared")
        else:
            missing = sorted(set(classified) - set(row.categories))
            if missing:
                problems.append(f"classified categories not declared: {', '.join(missing)}")
            if row.allowed_regions:
                outside = [r for r in stored if r not in row.allowed_regions]
                if outside:
                    problems.append(f"versions stored outside allowed regions: {outside}")
            if row.retention_days is None:
                problems.append("no retention period")
            columns = [c[0] for c in (latest.manifest.get("schema", []) if latest else [])]
            if row.subject_column and latest is not None and row.subject_column not in columns:
                problems.append(
                    f"subject column {row.subject_column!r} is not a column of version "
                    f"{latest.version}: subjects cannot be found there"
                )
        return ProcessingRecord(
            dataset=name,
            declared=row is not None,
            purpose=row.purpose if row else "",
            lawful_basis=row.lawful_basis if row else "",
            subjects=tuple(row.subjects) if row else (),
            categories=tuple(sorted(set(classified) | set(row.categories if row else ()))),
            allowed_regions=tuple(row.allowed_regions) if row else (),
            stored_regions=stored,
            retention_days=row.retention_days if row else None,
            subject_column=row.subject_column if row else None,
            versions=len(versions),
            sensitivity=latest.sensitivity if latest else None,
            problems=tuple(problems),
        )


def _check_subject_column(session: Any, ctx: Context, dataset: str, column: str) -> None:
    """Refuse a subject column whose type holds no scalar id (in the latest version)."""
    repo = DatasetRepository(session, ctx.project_id)
    found = repo.dataset(dataset)
    if found is None:
        return
    number = repo.latest_number(found.id)
    latest = repo.version(found.id, number) if number else None
    types = {c[0]: c[1] for c in (latest.manifest.get("schema", []) if latest else [])}
    dtype = types.get(column)
    if dtype is not None and not subject_type_ok(dtype):
        raise InvalidInputError(
            f"Column {column!r} of dataset '{dataset}' is of type {dtype[:80]}, which holds no "
            "single subject id: a subject column must be text (String), an integer or a "
            "categorical. Declare the column that holds the id itself.",
            field="subject_column",
            dtype=dtype[:80],
        )
