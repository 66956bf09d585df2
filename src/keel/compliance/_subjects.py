"""The subject index: which dataset parts (and so versions) hold a data subject.

A dataset declares its subject-id column in its record of processing
(``keel compliance declare --subject-column``). Parts are indexed lazily, once each (they
are immutable), before a lookup, an access export or an erasure. The index stores only a
keyed hash of each subject id, HMAC-SHA256 under a per-project secret kept as an encrypted
blob, so the metadata store never holds a raw subject id and a guessed id cannot be checked
against it without the blob store's keys. Ids are compared as text (``str`` of the value),
exactly. Versions derived from a searched version are searched too, under the column their
subject column became (``_derived``): for a pseudonymized column, the index is asked for the
subject's pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.compliance._derived import VersionFacts, resolve_columns
from keel.errors import ConflictError, InvalidInputError, NotFoundError
from keel.governance import Context, Governor
from keel.governance._compliance import subject_type_ok
from keel.store import ComplianceRepository, DatasetRepository, ErasureRepository

if TYPE_CHECKING:
    from keel.blobs import BlobStore

__all__ = ["Coverage", "Progress", "SubjectIndex", "Unsearchable", "VersionRef"]

#: Called with (what, done, total) as long work advances.
Progress = Callable[[str, int, int], None]
_LABEL = b"keel-subject/1\x00"
MAX_SUBJECT = 1000


@dataclass(frozen=True, slots=True)
class VersionRef:
    """A dataset version the index covers, with the column that names its subjects (and
    the pseudonymizations its values went through, for a derived version)."""

    id: str
    dataset: str
    dataset_id: str
    version: int
    column: str
    parts: tuple[str, ...]
    published: bool
    encoding: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Unsearchable:
    """A version whose subjects cannot be found: its subject column was lost (``reason``)."""

    id: str
    dataset: str
    version: int
    reason: str

    @property
    def label(self) -> str:
        return f"{self.dataset}:{self.version} ({self.reason})"


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the index can search: the versions it covers, the datasets it cannot search
    (no declared subject column, or one of a type that holds no single id), the versions
    whose subject column was lost, and which version each was derived from."""

    refs: list[VersionRef]
    not_searched: list[str]
    unsearchable: list[Unsearchable]
    sources: dict[str, str] = field(default_factory=dict)
    #: ``(digest, dataset, version)`` of every stored rejected-row sample (erased versions
    #: too: a sample outlives the erasure of another subject's rows)
    rejects: list[tuple[str, str, int]] = field(default_factory=list)

    def derived_from(self, version_ids: Iterable[str]) -> set[str]:
        """Every version derived (directly or through others) from these versions."""
        children: dict[str, list[str]] = {}
        for child, parent in self.sources.items():
            children.setdefault(parent, []).append(child)
        seen: set[str] = set()
        frontier = list(version_ids)
        while frontier:
            for child in children.get(frontier.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    frontier.append(child)
        return seen


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
                try:
                    with self._gov.db.write() as session:
                        digest = ErasureRepository(session, ctx.project_id).set_secret(info.digest)
                except ConflictError:  # another process inserted its secret at the same time
                    with self._gov.db.read() as session:
                        digest = ErasureRepository(session, ctx.project_id).secret()
                    if digest is None:
                        raise
                if digest != info.digest:  # another process won the race: keep its secret
                    self._blobs.delete(info.digest, scope=ctx.project_id)
            secret = self._blobs.get_bytes(digest, scope=ctx.project_id)
            self._secrets[ctx.project_id] = secret
            return secret

    def covered(self, ctx: Context) -> Coverage:
        """The versions (not erased yet) whose subjects can be searched: those of datasets
        with a declared subject column, and those derived from a searchable version (see
        ``_derived``); what cannot be searched, and why."""
        with self._gov.db.read() as session:
            declared = {
                r.dataset: r.subject_column
                for r in ComplianceRepository(session, ctx.project_id).records()
                if r.subject_column
            }
            erased = ErasureRepository(session, ctx.project_id).erased_versions()
            datasets = DatasetRepository(session, ctx.project_id)
            facts: list[VersionFacts] = []
            rows: dict[str, tuple[Any, Any]] = {}
            for dataset in datasets.datasets():
                for row in datasets.versions(dataset.id):
                    rows[row.id] = (dataset, row)
                    facts.append(
                        VersionFacts(
                            id=row.id,
                            dataset=dataset.name,
                            version=row.version,
                            kind=row.kind,
                            schema={c[0]: c[1] for c in row.manifest.get("schema", [])},
                            transform=row.transform,
                            parents=tuple((row.parents or {}).get("versions") or ()),
                        )
                    )
        resolved = resolve_columns(facts, declared)
        refs: list[VersionRef] = []
        lost: list[Unsearchable] = []
        unusable: dict[str, str] = {}
        for version_id, found in resolved.items():
            dataset, row = rows[version_id]
            if version_id in erased:
                continue
            if found.column is not None:
                refs.append(
                    VersionRef(
                        id=row.id,
                        dataset=dataset.name,
                        dataset_id=dataset.id,
                        version=row.version,
                        column=found.column,
                        parts=tuple(p["digest"] for p in row.manifest.get("parts", [])),
                        published=bool(row.published),
                        encoding=found.encoding,
                    )
                )
                continue
            column = declared.get(dataset.name)
            types = {c[0]: c[1] for c in row.manifest.get("schema", [])}
            if column in types and not subject_type_ok(types[column]):
                # a list or struct names no single subject: skipped and reported, the
                # other datasets are still searched
                unusable.setdefault(
                    dataset.name, f"{dataset.name} ({column}: {types[column][:40]})"
                )
                continue
            if column not in types or found.derived:
                lost.append(Unsearchable(row.id, dataset.name, row.version, found.reason))
        # a dataset that declares no subject column is searched only where its versions
        # derive from searchable ones; any other version of it is not searched
        undeclared = sorted(
            {
                f.dataset
                for f in facts
                if f.dataset not in declared and f.id not in resolved and f.id not in erased
            }
        )
        sources: dict[str, str] = {}
        for f in facts:  # the version each was derived from (a transform's input, a parent)
            origin = (f.transform or {}).get("input")
            if isinstance(origin, str):
                sources[f.id] = origin
            elif f.parents:
                sources[f.id] = f.parents[0]
        rejects = sorted(
            (row.rejects_digest, dataset.name, row.version)
            for dataset, row in rows.values()
            if row.rejects_digest
        )
        return Coverage(
            rejects=rejects,
            refs=sorted(refs, key=lambda r: (r.dataset, r.version)),
            not_searched=undeclared + sorted(unusable.values()),
            unsearchable=sorted(lost, key=lambda u: (u.dataset, u.version)),
            sources=sources,
        )

    def keys(self, ctx: Context, subject: str, coverage: Coverage) -> dict[str, str]:
        """The texts that stand for ``subject`` in the covered versions (the id, and its
        pseudonyms where a version's subject column was pseudonymized), each with its keyed
        hash."""
        texts = {subject}
        encodings = {r.encoding for r in coverage.refs if r.encoding}
        key = self._pseudonym_key(ctx) if encodings else None
        if key is not None:
            from keel.data._anonymize import pseudonym

            for encoding in encodings:
                text = subject
                for length in encoding:
                    text = pseudonym(text, key, length)
                texts.add(text)
        return {text: self.hash(ctx, text) for text in sorted(texts)}

    def _pseudonym_key(self, ctx: Context) -> bytes | None:
        from keel.data._gate import PSEUDONYM_KEY

        with self._gov.db.read() as session:
            digest = DatasetRepository(session, ctx.project_id).secret(PSEUDONYM_KEY)
        if digest is None:
            return None
        try:
            return self._blobs.get_bytes(digest, scope=ctx.project_id)
        except NotFoundError:  # destroyed with the project's keys: nothing to recompute
            return None

    def refresh(self, ctx: Context, *, progress: Progress | None = None) -> int:
        """Index every part not indexed yet; return how many parts were indexed."""
        refs = self.covered(ctx).refs
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

    def locate(
        self, ctx: Context, subject_hashes: Iterable[str]
    ) -> tuple[dict[str, int], list[Any]]:
        """The parts holding the subject under any of its keyed hashes (rows per part) and
        the ``(version_id, digest)`` references to them."""
        with self._gov.db.read() as session:
            repo = ErasureRepository(session, ctx.project_id)
            parts: dict[str, int] = {}
            for subject_hash in sorted(set(subject_hashes)):
                for digest, rows in repo.parts_of(subject_hash).items():
                    parts[digest] = parts.get(digest, 0) + rows
            refs = repo.part_refs(sorted(parts)) if parts else []
        return parts, refs
