"""Values the dataset services return: frozen, serialisable, never database rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ColumnChange",
    "Dataset",
    "DatasetVersion",
    "GcReport",
    "Part",
    "Reject",
    "StoredReport",
    "VersionDiff",
]


@dataclass(frozen=True, slots=True)
class Part:
    """One immutable Parquet part (zstd) of a version, addressed by its digest."""

    digest: str
    rows: int
    size: int
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Part:
        return cls(
            digest=str(data["digest"]),
            rows=int(data["rows"]),
            size=int(data["size"]),
            stats=dict(data.get("stats") or {}),
        )


@dataclass(frozen=True, slots=True)
class Reject:
    """A source row that could not be read: where it was, why, and its text (bounded)."""

    line: int
    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class Dataset:
    id: str
    name: str
    description: str
    versions: int
    latest: int | None
    tags: dict[str, int]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """An immutable dataset version: manifest, provenance and labels.

    Attributes:
        schema: ``(column, Polars dtype)`` pairs, in order.
        stats: per column ``count``, ``nulls``, ``min``, ``max`` and for numbers ``mean`` and
            ``std``.
        parts: the content-addressed Parquet parts, in row order.
        classification: per-column labels (``Classification.to_dict()``) or None.
        sensitivity: the highest column sensitivity, or None when never classified.
    """

    id: str
    dataset: str
    dataset_id: str
    version: int
    kind: str
    digest: str
    row_count: int
    size_bytes: int
    schema: list[tuple[str, str]]
    stats: dict[str, dict[str, Any]]
    parts: list[Part]
    source: dict[str, Any] | None
    parents: list[str]
    transform: dict[str, Any] | None
    classification: dict[str, Any] | None
    sensitivity: str | None
    residency: str | None
    rejected_rows: int
    published: bool
    tags: list[str]
    created_by: str
    created_at: datetime
    erased: bool = False  # its data was erased (a subject's erasure or retention)
    replaced_by: int | None = None  # the version written without the erased rows

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.schema]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = [{"name": n, "dtype": t} for n, t in self.schema]
        return data


@dataclass(frozen=True, slots=True)
class ColumnChange:
    column: str
    change: str  # added | removed | type | stats
    before: Any = None
    after: Any = None


@dataclass(frozen=True, slots=True)
class VersionDiff:
    dataset: str
    before: int
    after: int
    rows_before: int
    rows_after: int
    parts_shared: int
    parts_added: int
    parts_removed: int
    changes: list[ColumnChange]

    @property
    def is_same(self) -> bool:
        return not self.changes and self.parts_added == 0 and self.parts_removed == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["is_same"] = self.is_same
        return data


@dataclass(frozen=True, slots=True)
class StoredReport:
    """A validation report as stored: the result of DATA's checks, and the gate's verdict."""

    id: str
    dataset: str
    version: int
    version_id: str
    reference_version: int | None
    passed: bool
    errors: int
    warnings: int
    result: dict[str, Any]
    html_digest: str | None
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GcReport:
    dry_run: bool
    orphan_blobs: list[str]
    deleted: int
    temporaries: int
    orphan_keys: int = 0  # dedicated key files whose blob was never published

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
