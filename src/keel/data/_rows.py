"""Rows to values, and the lookups every dataset service shares (pure over a repository)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keel.data._model import Dataset, DatasetVersion, Part
from keel.data._parts import schema_of, stats_changes
from keel.errors import InvalidInputError, NotFoundError
from keel.store import DatasetRepository
from keel.store._schema_data import DatasetRow, DatasetVersionRow

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "VersionRef",
    "conform",
    "dataset_row",
    "dataset_value",
    "missing_dataset",
    "schema_mismatch",
    "source_id",
    "version_row",
    "version_value",
]

#: A version: its number, a tag name (``latest``, ``published``, …), or None for latest.
VersionRef = int | str | None


def missing_dataset(name: str) -> NotFoundError:
    return NotFoundError(
        f"Dataset '{name}' does not exist in this project. List datasets with "
        "`keel datasets list`, or ingest one with `keel datasets ingest`.",
        dataset=name,
    )


def version_value(
    repo: DatasetRepository, dataset: DatasetRow, row: DatasetVersionRow
) -> DatasetVersion:
    manifest = row.manifest or {}
    tags = sorted(t for t, v in repo.tags(dataset.id).items() if v == row.version)
    return DatasetVersion(
        id=row.id,
        dataset=dataset.name,
        dataset_id=dataset.id,
        version=row.version,
        kind=row.kind,
        digest=row.digest,
        row_count=row.row_count,
        size_bytes=row.size_bytes,
        schema=[(str(n), str(t)) for n, t in manifest.get("schema", [])],
        stats=dict(manifest.get("stats", {})),
        parts=[Part.from_dict(p) for p in manifest.get("parts", [])],
        source=row.source,
        parents=list((row.parents or {}).get("versions", [])),
        transform=row.transform,
        classification=row.classification,
        sensitivity=row.sensitivity,
        residency=row.residency,
        rejected_rows=row.rejected_rows,
        published=row.published,
        tags=tags,
        created_by=row.created_by,
        created_at=row.created_at,
        erased=bool(manifest.get("erased")),
        replaced_by=manifest.get("replaced_by"),
    )


def source_id(source: Mapping[str, Any]) -> str:
    keyed = {k: source.get(k) for k in ("kind", "url", "path", "table", "query", "stream")}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:32]


def dataset_value(row: DatasetRow, count: int, latest: int, tags: dict[str, int]) -> Dataset:
    return Dataset(
        id=row.id,
        name=row.name,
        description=row.description,
        versions=count,
        latest=latest or None,
        tags=tags,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def dataset_row(repo: DatasetRepository, name: str) -> DatasetRow:
    row = repo.dataset(name)
    if row is None:
        raise missing_dataset(name)
    return row


def version_row(repo: DatasetRepository, dataset: DatasetRow, ref: VersionRef) -> DatasetVersionRow:
    number: int | None
    if ref is None:
        ref = "latest"
    if isinstance(ref, bool):
        raise InvalidInputError("A version is a number or a tag name.")
    if isinstance(ref, int):
        number = ref
    elif ref.isdigit():
        number = int(ref)
    else:
        number = repo.tags(dataset.id).get(ref)
        if number is None:
            raise NotFoundError(
                f"Dataset '{dataset.name}' has no tag '{ref}'"
                + (
                    " (no version is published: none has passed the gate, or the published "
                    "one was withdrawn when a validation of it failed)"
                    if ref == "published"
                    else ""
                )
                + ". See its versions with `keel datasets versions "
                + dataset.name
                + "`.",
                dataset=dataset.name,
                tag=ref,
            )
    row = repo.version(dataset.id, number)
    if row is None:
        raise NotFoundError(
            f"Dataset '{dataset.name}' has no version {number}. See its versions with "
            f"`keel datasets versions {dataset.name}`.",
            dataset=dataset.name,
            version=number,
        )
    return row


def schema_mismatch(
    name: str, expected: Sequence[tuple[str, str]], got: Sequence[tuple[str, str]]
) -> str:
    changes = stats_changes(expected, got, {}, {})
    shown = (
        "; ".join(f"{c.column}: {c.change} ({c.before} → {c.after})" for c in changes[:10])
        or f"column order differs ({[c for c, _ in got][:10]})"
    )
    return (
        f"The rows to append do not match the schema of dataset '{name}': {shown}. Cast or "
        "rename the source columns (schema overrides for CSV), or ingest with mode='new'."
    )


def conform(frame: pl.DataFrame, first: Any, name: str) -> pl.DataFrame:
    """Later batches of one source must keep the first batch's columns and types."""
    import polars as pl

    if frame.columns != list(first):
        raise InvalidInputError(
            schema_mismatch(name, [(c, str(t)) for c, t in first.items()], schema_of(frame)),
            dataset=name,
        )
    try:
        return frame.cast(dict(first))
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(
            schema_mismatch(name, [(c, str(t)) for c, t in first.items()], schema_of(frame)),
            dataset=name,
        ) from exc
