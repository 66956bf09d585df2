"""The right of access: the subject's rows, rejected lines and logged predictions, each
with where it came from.

Rows are read from the parts the index says hold the subject, in every version that
references them (a version of a dataset that declares no subject column, holding the same
bytes as one that does, included). Each version's provenance says how its rows came to be
held: the source it was ingested from, or the version it was derived from and how.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from keel.compliance._scan import mentions, rejected_lines
from keel.store import DatasetRepository, ErasureRepository

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keel.blobs import BlobStore
    from keel.compliance._subjects import Coverage
    from keel.governance import Context

__all__ = ["live_versions", "provenance", "subject_rejects", "subject_rows"]

#: Keys of a version's source that say where it was read from (no credentials: URLs are
#: stored redacted).
_SOURCE_KEYS = ("kind", "url", "path", "table", "stream", "subject", "group")


def _key(dataset: str, version: int) -> str:
    return f"{dataset}@{version}"


def live_versions(session: Session, ctx: Context, version_ids: Iterable[str]) -> dict[str, Any]:
    """``(dataset, number)`` of each of these versions that is not erased."""
    repo = DatasetRepository(session, ctx.project_id)
    erased = ErasureRepository(session, ctx.project_id).erased_versions()
    names = {d.id: d.name for d in repo.datasets()}
    out: dict[str, tuple[str, int]] = {}
    for version_id in sorted(set(version_ids)):
        row = repo.version_by_id(version_id)
        if row is not None and version_id not in erased:
            out[version_id] = (names[row.dataset_id], row.version)
    return out


def subject_rows(
    blobs: BlobStore,
    ctx: Context,
    coverage: Coverage,
    found: tuple[Mapping[str, int], Iterable[tuple[str, str]], Mapping[str, tuple[str, int]]],
    texts: set[str],
    *,
    limit: int,
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The subject's rows per ``dataset@version`` and how many. ``found``: the parts holding
    them, the ``(version, part)`` references to those parts, and the live versions among
    those (see :func:`live_versions`)."""
    import polars as pl

    parts, uses, names = found
    refs = {r.id: r for r in coverage.refs}
    # a part's subject column, for versions the index does not cover that hold its bytes
    column_of = {p: r.column for r in coverage.refs for p in r.parts if p in parts}
    by_version: dict[str, list[str]] = {}
    for version_id, digest in uses:
        by_version.setdefault(version_id, []).append(digest)
    rows: dict[str, list[dict[str, Any]]] = {}
    total = 0
    for version_id in sorted(by_version, key=lambda v: names.get(v, ("", 0))):
        if version_id not in names:  # erased: nothing left to read
            continue
        ref = refs.get(version_id)
        matched: list[dict[str, Any]] = []
        for digest in _ordered(ref.parts if ref else (), by_version[version_id]):
            column = ref.column if ref is not None else column_of.get(digest)
            if column is None or total >= limit:
                continue
            frame = pl.read_parquet(io.BytesIO(blobs.get_bytes(digest, scope=ctx.project_id)))
            if column not in frame.columns:
                continue
            match = frame.filter(pl.col(column).cast(pl.String).is_in(sorted(texts)))
            matched.extend(match.head(limit - total).to_dicts())
            total = min(total + match.height, limit)
        rows[_key(*names[version_id])] = matched
    return rows, total


def _ordered(order: Iterable[str], digests: list[str]) -> list[str]:
    """``digests`` in the version's own part order (the rows' order), the rest after."""
    first = [d for d in order if d in digests]
    return first + sorted(set(digests) - set(first))


def subject_rejects(
    blobs: BlobStore, ctx: Context, coverage: Coverage, texts: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """The rejected rows (lines an ingest could not read) that mention the subject, per
    ``dataset@version``."""
    pattern = mentions(texts)
    out: dict[str, list[dict[str, Any]]] = {}
    for digest, dataset, version in coverage.rejects:
        lines = rejected_lines(blobs, ctx, digest, pattern)
        if lines:
            out[_key(dataset, version)] = lines
    return out


def provenance(session: Session, ctx: Context, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Where the rows of each ``dataset@version`` came from: when and by whom the version
    was made, from which source, or from which version by which transform."""
    repo = DatasetRepository(session, ctx.project_id)
    datasets = {d.name: d for d in repo.datasets()}
    names = {d.id: d.name for d in datasets.values()}
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(keys)):
        name, _, number = key.rpartition("@")
        dataset = datasets.get(name)
        row = repo.version(dataset.id, int(number)) if dataset is not None else None
        if row is None:
            continue
        entry: dict[str, Any] = {
            "dataset": name,
            "version": row.version,
            "created_at": row.created_at.isoformat(),
            "created_by": row.created_by,
        }
        if row.source:
            entry["source"] = {k: row.source[k] for k in _SOURCE_KEYS if k in row.source}
        transform = row.transform or {}
        parents = (row.parents or {}).get("versions") or []
        origin = transform.get("input") or (parents[0] if parents else None)
        if origin:
            parent = repo.version_by_id(str(origin))
            if parent is not None:
                label = f"{names.get(parent.dataset_id, '?')}:{parent.version}"
                if transform:
                    entry["derived_from"] = label
                    entry["transform"] = transform.get("kind")
                else:
                    entry["appended_to"] = label
        out[key] = entry
    return out
