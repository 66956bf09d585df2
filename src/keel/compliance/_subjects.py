"""The subject index: which dataset parts (and so versions) hold a data subject.

A dataset declares its subject-id column in its record of processing
(``keel compliance declare --subject-column``). Parts are indexed lazily, once each (they
are immutable), before a lookup, an access export or an erasure. The index stores only a
keyed hash of each subject id, HMAC-SHA256 under a per-project secret kept as an encrypted
blob, so the metadata store never holds a raw subject id and a guessed id cannot be checked
against it without the blob store's keys. Ids are compared as text (``str`` of the value).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError
from keel.governance import Context, Governor
from keel.governance._compliance import subject_type_ok
from keel.store import ComplianceRepository, DatasetRepository, ErasureRepository

if TYPE_CHECKING:
    from keel.blobs import BlobStore

__all__ = ["Progress", "SubjectIndex", "VersionRef"]

#: Called with (what, done, total) as long work advances.
Progress = Callable[[str, int, int], None]
_LABEL = b"keel-subject/1\x00"
MAX_SUBJECT = 1000


@dataclass(frozen=True, slots=True)
class VersionRef:
    """A dataset version the index covers, with the column that names its subjects."""

    id: str
    dataset: str
    dataset_id: str
    version: int
    column: str
    parts: tuple[str, ...]
    published: bool


def check_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidInputError(
            "Give the data subject's id as a non-empty string (the value of the dataset's "
            "declared subject-id column).",
            field="subject",
        )
    if len(subject) > MAX_SUBJECT:
        raise InvalidInputError(
            f"A subject id is at most {MAX_SUBJECT} characters; got {len(subject)}.",
            field="subject",
        )
    return subject


class SubjectIndex:
    """Keyed hashes of subject ids per part, built lazily (internal: callers authorize)."""

    def __init__(self, governor: Governor, blobs: BlobStore) -> None:
        self._gov = governor
        self._blobs = blobs
        self._secrets: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def hash(self, ctx: Context, subject: str) -> str:
        """The keyed hash of ``subject`` in ``ctx``'s project (32 hex digits)."""
        text = check_subject(subject)
        mac = hmac.new(self._secret(ctx), _LABEL + text.encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()[:32]

    def _secret(self, ctx: Context) -> bytes:
        with self._lock:
            cached = self._secrets.get(ctx.project_id)
            if cached is not None:
                return cached
            with self._gov.db.read() as session:
                digest = ErasureRepository(session, ctx.project_id).secret()
            if digest is None:
                info = self._blobs.put_bytes(os.urandom(32), scope=ctx.project_id)
                with self._gov.db.write() as session:
                    digest = ErasureRepository(session, ctx.project_id).set_secret(info.digest)
                if digest != info.digest:  # another process won the race: keep its secret
                    self._blobs.delete(info.digest, scope=ctx.project_id)
            secret = self._blobs.get_bytes(digest, scope=ctx.project_id)
            self._secrets[ctx.project_id] = secret
            return secret

    def covered(self, ctx: Context) -> tuple[list[VersionRef], list[str]]:
        """Versions of datasets with a declared subject column (not erased yet), and the
        datasets that cannot be searched: those that declare none, then those whose column
        is of a type that holds no single id (a list, a struct), with that type."""
        with self._gov.db.read() as session:
            records = {
                r.dataset: r.subject_column
                for r in ComplianceRepository(session, ctx.project_id).records()
            }
            erased = ErasureRepository(session, ctx.project_id).erased_versions()
            datasets = DatasetRepository(session, ctx.project_id)
            refs: list[VersionRef] = []
            undeclared: list[str] = []
            unusable: dict[str, str] = {}
            for dataset in datasets.datasets():
                column = records.get(dataset.name)
                if not column:
                    undeclared.append(dataset.name)
                    continue
                for row in datasets.versions(dataset.id):
                    types = {c[0]: c[1] for c in row.manifest.get("schema", [])}
                    if row.id in erased or row.kind != "table" or column not in types:
                        continue
                    if not subject_type_ok(types[column]):
                        # a list or struct names no single subject: skipped and reported,
                        # the other datasets are still searched
                        unusable.setdefault(
                            dataset.name, f"{dataset.name} ({column}: {types[column][:40]})"
                        )
                        continue
                    refs.append(
                        VersionRef(
                            id=row.id,
                            dataset=dataset.name,
                            dataset_id=dataset.id,
                            version=row.version,
                            column=column,
                            parts=tuple(p["digest"] for p in row.manifest.get("parts", [])),
                            published=bool(row.published),
                        )
                    )
        return refs, sorted(undeclared) + sorted(unusable.values())

    def refresh(self, ctx: Context, *, progress: Progress | None = None) -> int:
        """Index every part not indexed yet; return how many parts were indexed."""
        refs, _ = self.covered(ctx)
        todo: dict[tuple[str, str], None] = {}
        with self._gov.db.read() as session:
            repo = ErasureRepository(session, ctx.project_id)
            by_column: dict[str, set[str]] = {}
            for ref in refs:
                by_column.setdefault(ref.column, set()).update(ref.parts)
            for column, digests in by_column.items():
                done = repo.indexed(sorted(digests), column)
                todo.update(((d, column), None) for d in sorted(digests - done))
        secret = self._secret(ctx)
        for number, (digest, column) in enumerate(todo, start=1):
            if not self._blobs.exists(digest, scope=ctx.project_id):
                continue
            counts = self._count(ctx, digest, column, secret)
            with self._gov.db.write() as session:
                repo = ErasureRepository(session, ctx.project_id)
                if not repo.indexed([digest], column):  # a concurrent refresh may win
                    repo.add_index(digest, column, counts)
            if progress is not None:
                progress("index", number, len(todo))
        return len(todo)

    def _count(self, ctx: Context, digest: str, column: str, secret: bytes) -> dict[str, int]:
        import polars as pl

        data = self._blobs.get_bytes(digest, scope=ctx.project_id)
        values = pl.read_parquet(io.BytesIO(data), columns=[column])[column]
        counts = values.cast(pl.String).drop_nulls().value_counts()
        out: dict[str, int] = {}
        keyed = hmac.new(secret, _LABEL, hashlib.sha256)  # copied per id: no key setup each time
        for value, count in counts.iter_rows():
            mac = keyed.copy()
            mac.update(str(value).encode("utf-8"))
            key = mac.hexdigest()[:32]
            out[key] = out.get(key, 0) + int(count)
        return out

    def locate(self, ctx: Context, subject_hash: str) -> tuple[dict[str, int], list[Any]]:
        """The parts holding the subject (rows per part) and the ``(version_id, digest)``
        references to them."""
        with self._gov.db.read() as session:
            repo = ErasureRepository(session, ctx.project_id)
            parts = repo.parts_of(subject_hash)
            refs = repo.part_refs(sorted(parts)) if parts else []
        return parts, refs
