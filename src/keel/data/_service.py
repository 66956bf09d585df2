"""The dataset service: ingest sources into immutable versions, read them back, tag, diff.

Versions are manifests of content-addressed Parquet parts (zstd) in the encrypted blob store.
An ingest writes its parts first (journaled, see ``_ingest.py``), then commits the version,
its blob references, its tags and its lineage edges in one governed transaction.
"""

from __future__ import annotations

import builtins
import io
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.data._frames import to_pandas
from keel.data._ingest import Ingest, prefetch, progress_callback
from keel.data._model import Dataset, DatasetVersion, Part, VersionDiff
from keel.data._parts import (
    manifest_digest,
    merge_stats,
    parse_dtype,
    schema_of,
    stats_changes,
    without_personal_values,
)
from keel.data._rows import (
    VersionRef,
    conform,
    dataset_row,
    dataset_value,
    missing_dataset,
    schema_mismatch,
    source_id,
    version_row,
    version_value,
)
from keel.data._sources import BATCH_ROWS, FrameSource, Source
from keel.data._streams import Message, StreamSource
from keel.data._transforms import parse_transform
from keel.errors import ConflictError, InvalidInputError, NotFoundError
from keel.governance import Context, Governor, Permission
from keel.lineage import LineageService, Node
from keel.store import DatasetRepository
from keel.store._schema_data import DatasetVersionRow
from keel.types import new_id, validate_name

if TYPE_CHECKING:
    import polars as pl

    from keel.blobs import BlobStore

__all__ = ["DatasetService", "VersionRef"]


RESERVED_TAGS = ("latest", "published")


class DatasetService:
    """Datasets and their immutable versions (every call authorized and audited)."""

    def __init__(self, governor: Governor, blobs: BlobStore, *, region: str | None = None) -> None:
        self._gov = governor
        self._blobs = blobs
        self._region = region
        #: Polars schemas by first-part digest: every stream batch fits its rows to the
        #: latest version's schema, and appended versions share their first part.
        self._schemas: dict[str, Any] = {}

    # --- ingest ---------------------------------------------------------------------------

    def ingest(
        self,
        ctx: Context,
        name: str,
        source: Source,
        *,
        mode: str = "new",
        description: str = "",
        part_rows: int = BATCH_ROWS,
        progress: Callable[[int], None] | None = None,
    ) -> DatasetVersion:
        """Read ``source`` into a new version of dataset ``name`` (created on first ingest).

        Args:
            mode: ``new`` makes a version holding just the source's rows; ``append`` makes a
                version holding the latest version's parts (reused, not copied) plus the new
                rows, whose schema must match.
            progress: called with the bytes read after each batch.

        Returns:
            The new version; or the latest one, unchanged, when the content is identical to it.
        """
        validate_name(name, what="dataset name")
        if mode not in ("new", "append"):
            raise InvalidInputError(f"mode must be 'new' or 'append', got {mode!r}.")
        if not 1 <= part_rows <= 50_000_000:
            raise InvalidInputError("part_rows must be between 1 and 50,000,000.")
        self._gov.check(
            ctx, Permission.DATASET_WRITE, action="dataset.ingest", object_type="dataset"
        )
        parent = self._latest_or_none(ctx, name)
        if mode == "append" and parent is None:
            raise NotFoundError(
                f"Cannot append to dataset '{name}': it has no version yet. Ingest with "
                "mode='new' first.",
                dataset=name,
            )
        described = source.describe()
        files = described.get("kind") in ("folder", "archive")
        known = (
            self._file_rows(ctx, parent)
            if files and parent is not None and parent.kind == "files"
            else None
        )
        work = Ingest(self._gov.db, self._blobs, ctx, known=known)
        report = progress_callback(progress)
        schema: list[tuple[str, str]] | None = None
        first: Any = None
        expected = parent.schema if mode == "append" and parent is not None else None
        sample: pl.DataFrame | None = None  # of the appended rows, classified if labelled
        try:
            for batch in prefetch(source.batches(work)):
                work.add_rejects(batch.rejects)
                frame = batch.frame
                if mode == "append" and sample is None:
                    sample = frame.head(_LABEL_SAMPLE)
                if schema is None:
                    schema, first = schema_of(frame), frame.schema
                    if expected is not None and frame.width and schema != expected:
                        raise InvalidInputError(
                            schema_mismatch(name, expected, schema), dataset=name
                        )
                elif frame.width and schema_of(frame) != schema:
                    frame = conform(frame, first, name)
                work.add_frame(frame, part_rows=part_rows)
                report(batch.bytes_read)
            work.flush()
        finally:
            work.close()
        schema = schema or []
        rejects_digest = work.store_rejects()
        kind = "files" if files else "table"
        if mode == "new":
            if (
                parent is not None
                and parent.digest == manifest_digest(schema, work.parts, kind)
                and parent.rejected_rows == work.rejected
            ):
                self._finish_unchanged(ctx, work)
                return parent
            parent = None  # a new version holds only the source's rows
        try:
            return self._commit(
                ctx,
                name,
                description=description,
                kind=kind,
                schema=schema,
                parts=work.parts,
                source={**source.describe(), "mode": mode},
                parents=[],
                rejected=work.rejected,
                rejects_digest=rejects_digest,
                extra_blobs=[(d, "file") for d in work.file_digests],
                ingest_id=work.id,
                append=_Append(sample) if mode == "append" else None,
                unchanged=mode == "new",
                action="dataset.ingest",
            )
        except _SameAsLatestError as same:  # an ingest of the same content committed meanwhile
            self._finish_unchanged(ctx, work)
            return same.version

    def ingest_stream(
        self,
        ctx: Context,
        name: str,
        source: StreamSource,
        *,
        batch_size: int = 1000,
        timeout: float = 1.0,
        max_batches: int | None = None,
        schema: Mapping[str, str] | None = None,
    ) -> builtins.list[DatasetVersion]:
        """Read ``source`` in micro-batches, each appended as a new version, until it has
        nothing more for ``timeout`` seconds (or after ``max_batches``).

        Messages are acknowledged only after their version committed, and the commit records
        their ids, so a message delivered twice is stored once. ``schema`` types fields
        (``{"price": "float64"}``) instead of inferring them from the first batch; on a
        dataset that has columns already it must agree with them.
        """

        from keel.data._streams import check_batch

        validate_name(name, what="dataset name")
        check_batch(batch_size)
        declared = _declared_schema(schema)
        self._gov.check(
            ctx, Permission.DATASET_WRITE, action="dataset.ingest", object_type="dataset"
        )
        latest = self._latest_or_none(ctx, name) if declared else None
        if latest is not None:  # refused before a message is read (and checked per batch)
            _check_declared(name, declared, self._polars_schema(ctx, latest))
        made: builtins.list[DatasetVersion] = []
        polls = 0
        while max_batches is None or polls < max_batches:
            polls += 1
            messages = source.fetch(batch_size, timeout)
            if not messages:
                break
            version = self._append_messages(ctx, name, source, messages, declared)
            if version is not None:
                made.append(version)
            source.ack(messages)
        return made

    def _append_messages(
        self,
        ctx: Context,
        name: str,
        source: StreamSource,
        messages: Sequence[Message],
        declared: Mapping[str, Any],
    ) -> DatasetVersion | None:
        """Append the messages not stored yet as a version (None: every one was stored).

        The version is appended to whatever is latest when it commits (see ``_commit``). Only
        when another writer stored some of the same messages meanwhile (a message claimed
        from an idle consumer, or a second group), or gave the dataset its first columns, is
        the batch built again (its parts reused when the columns and the messages are the
        same).
        """
        batch: _StreamBatch | None = None
        for attempt in range(_APPEND_TRIES):
            _back_off(attempt)
            parent = self._latest_or_none(ctx, name)
            fresh = self._unseen(ctx, name, source.stream, messages)
            if not fresh:
                return None
            ids = [m.id for m in fresh]
            if batch is None or batch.ids != ids or _columns(batch.parent) != _columns(parent):
                batch = self._stream_batch(ctx, name, fresh, parent, declared)
            try:
                return self._commit(
                    ctx,
                    name,
                    kind="table",
                    schema=batch.schema,
                    parts=batch.work.parts,
                    source={**source.describe(), "mode": "append"},
                    parents=[],
                    rejected=batch.work.rejected,
                    rejects_digest=batch.rejects_digest,
                    ingest_id=batch.work.id,
                    stream=(source.stream, ids),
                    append=_Append(batch.sample, stale_on_schema=True),
                    action="dataset.ingest",
                )
            except _StaleLatestError:
                continue
        raise _kept_changing(
            name,
            "a stream batch (its messages were not acknowledged: they "
            "are delivered again on the next run)",
        )

    def _stream_batch(
        self,
        ctx: Context,
        name: str,
        fresh: Sequence[Message],
        parent: DatasetVersion | None,
        declared: Mapping[str, Any],
    ) -> _StreamBatch:
        """Encode and store the rows of ``fresh`` (fitted to ``parent``'s columns, or to the
        ``declared`` types and the first batch's fields) and keep the messages that cannot be
        rows as rejects."""
        from keel.data._stream_rows import message_rows

        schema = self._polars_schema(ctx, parent) if parent is not None else None
        if schema is not None:
            _check_declared(name, declared, schema)
        frame, rejects = message_rows(fresh, schema, declared=declared)
        if not frame.width:
            reasons = "; ".join(r.reason for r in rejects[:3])
            raise InvalidInputError(
                f"No message of the first batch for dataset '{name}' can be a row ({reasons}). "
                "They were not acknowledged: fix the producer, or remove them from the stream.",
                dataset=name,
            )
        work = Ingest(self._gov.db, self._blobs, ctx)
        try:
            work.add_rejects(tuple(rejects))
            if frame.height:
                work.add_frame(frame, part_rows=BATCH_ROWS)
            work.flush()
            digest = work.store_rejects()
        finally:
            work.close()
        sample = frame.head(_LABEL_SAMPLE)
        return _StreamBatch([m.id for m in fresh], parent, work, schema_of(frame), digest, sample)

    def _unseen(
        self, ctx: Context, name: str, stream: str, messages: Sequence[Message]
    ) -> builtins.list[Message]:
        with self._gov.db.read() as session:
            repo = DatasetRepository(session, ctx.project_id)
            dataset = repo.dataset(name)
            seen = (
                repo.seen_messages(dataset.id, stream, [m.id for m in messages])
                if dataset is not None
                else set()
            )
        fresh: builtins.list[Message] = []
        for message in messages:
            if message.id not in seen:
                seen.add(message.id)
                fresh.append(message)
        return fresh

    def ingest_frame(
        self, ctx: Context, name: str, frame: Any, *, mode: str = "new", description: str = ""
    ) -> DatasetVersion:
        """Ingest an in-memory Polars, pandas or Arrow table."""
        return self.ingest(ctx, name, FrameSource(frame), mode=mode, description=description)

    def _finish_unchanged(self, ctx: Context, work: Ingest) -> None:
        with self._gov.db.write() as session:
            DatasetRepository(session, ctx.project_id).clear_pending(work.id)

    def _commit(
        self,
        ctx: Context,
        name: str,
        *,
        description: str = "",
        kind: str,
        schema: Sequence[tuple[str, str]],
        parts: Sequence[Part],
        source: dict[str, Any] | None,
        parents: Sequence[DatasetVersion],
        rejected: int = 0,
        rejects_digest: str | None = None,
        extra_blobs: Sequence[tuple[str, str]] = (),
        ingest_id: str | None = None,
        transform: dict[str, Any] | None = None,
        classification: dict[str, Any] | None = None,
        stream: tuple[str, Sequence[str]] | None = None,
        append: _Append | None = None,
        unchanged: bool = False,
        action: str,
    ) -> DatasetVersion:
        """Create the version row, its blob references, ``latest`` and lineage, atomically.

        With ``unchanged``, content identical to the latest version (as it is under the lock)
        makes no version: ``_SameAsLatestError`` carries the latest.

        With ``append``, ``parts`` are the new rows' and the version appends them to the
        dataset's latest version as it is under the dataset's lock (its parts first, reused),
        so writers appending at once never drop each other's rows. Raises
        ``_StaleLatestError``, writing nothing, when a message of ``stream`` was stored
        meanwhile, or when ``append.stale_on_schema`` and the latest has other columns.
        """
        with self._gov.write(
            ctx, Permission.DATASET_WRITE, action, object_type="dataset_version"
        ) as work:
            repo = DatasetRepository(work.session, ctx.project_id)
            dataset = repo.dataset(name, lock=True) or _create(
                work.session, repo, name, description
            )
            number = repo.latest_number(dataset.id) + 1
            if stream is not None and repo.seen_messages(dataset.id, stream[0], stream[1]):
                raise _StaleLatestError(name)
            if unchanged and number > 1:  # checked again under the lock: two ingests at once
                latest = repo.version(dataset.id, number - 1)
                if (
                    latest is not None
                    and latest.digest == manifest_digest(schema, parts, kind)
                    and latest.rejected_rows == rejected
                ):
                    raise _SameAsLatestError(version_value(repo, dataset, latest))
            if append is not None:
                row_now = repo.version(dataset.id, number - 1) if number > 1 else None
                parent = None if row_now is None else version_value(repo, dataset, row_now)
                if parent is not None and parts and parent.schema != list(schema):
                    if append.stale_on_schema:
                        raise _StaleLatestError(name)
                    raise InvalidInputError(
                        schema_mismatch(name, parent.schema, schema), dataset=name
                    )
                if parent is not None:
                    parts = [*parent.parts, *parts]
                    parents = [parent]
                    classification = self._appended_labels(parent, append.sample)
            if classification is None and parents and parents[0].classification is not None:
                classification = parents[0].classification
            row = DatasetVersionRow(
                id=new_id(),
                project_id=ctx.project_id,
                dataset_id=dataset.id,
                version=number,
                kind=kind,
                digest=manifest_digest(schema, parts, kind),
                row_count=sum(p.rows for p in parts),
                size_bytes=sum(p.size for p in parts),
                manifest=without_personal_values(
                    {
                        "schema": [list(c) for c in schema],
                        "parts": [p.to_dict() for p in parts],
                        "stats": merge_stats(
                            (p.stats for p in parts), text=[c for c, t in schema if t == "String"]
                        ),
                    },
                    classification,
                ),
                source=source,
                parents={"versions": [p.id for p in parents]},
                transform=transform,
                classification=classification,
                sensitivity=(classification or {}).get("sensitivity"),
                residency=self._region,
                rejected_rows=rejected,
                rejects_digest=rejects_digest,
                published=False,
                created_by=ctx.principal,
                created_at=clock.now(),
            )
            blobs = [(p.digest, "part") for p in parts] + list(extra_blobs)
            if rejects_digest:
                blobs.append((rejects_digest, "rejects"))
            repo.add_version(row, blobs)
            repo.set_tag(dataset.id, "latest", number)
            repo.touch(dataset)
            if ingest_id is not None:
                repo.clear_pending(ingest_id)
            if stream is not None:
                repo.record_messages(dataset.id, stream[0], stream[1], number)
            node = Node("dataset_version", row.id)
            LineageService.link(work.session, ctx, Node("dataset", dataset.id), node, "version_of")
            if transform is not None:
                step = Node("transform", str(transform["id"]))
                for parent in parents:
                    LineageService.link(
                        work.session, ctx, Node("dataset_version", parent.id), step, "input"
                    )
                LineageService.link(work.session, ctx, step, node, "produced")
            else:
                for parent in parents:
                    LineageService.link(
                        work.session, ctx, Node("dataset_version", parent.id), node, "appended_to"
                    )
            if source is not None and transform is None:
                LineageService.link(
                    work.session,
                    ctx,
                    Node("source", source_id(source)),
                    node,
                    "ingested",
                    details={
                        k: v for k, v in source.items() if k in ("kind", "url", "path", "table")
                    },
                )
            work.object_id = row.id
            work.details = {
                "dataset": name,
                "version": number,
                "rows": row.row_count,
                "digest": row.digest,
            }
            return version_value(repo, dataset, row)

    # --- reads ----------------------------------------------------------------------------

    def get(self, ctx: Context, name: str) -> Dataset:
        with self._read(ctx, "dataset.read") as session:
            repo = DatasetRepository(session, ctx.project_id)
            row = repo.dataset(name)
            if row is None:
                raise missing_dataset(name)
            count, latest = repo.counts().get(row.id, (0, 0))
            return dataset_value(row, count, latest, repo.tags(row.id))

    def list(self, ctx: Context) -> builtins.list[Dataset]:
        with self._read(ctx, "dataset.list") as session:
            repo = DatasetRepository(session, ctx.project_id)
            counts = repo.counts()
            return [
                dataset_value(row, *counts.get(row.id, (0, 0)), repo.tags(row.id))
                for row in repo.datasets()
            ]

    def versions(self, ctx: Context, name: str) -> builtins.list[DatasetVersion]:
        with self._read(ctx, "dataset.versions") as session:
            repo = DatasetRepository(session, ctx.project_id)
            dataset = dataset_row(repo, name)
            return [version_value(repo, dataset, row) for row in repo.versions(dataset.id)]

    def version(
        self, ctx: Context, name: str, ref: VersionRef = None, *, require_published: bool = False
    ) -> DatasetVersion:
        """One version by number or tag; ``published`` (or ``require_published``) refuses
        a version that did not pass the gate."""
        with self._read(ctx, "dataset.version") as session:
            repo = DatasetRepository(session, ctx.project_id)
            dataset = dataset_row(repo, name)
            row = version_row(repo, dataset, ref)
            if (require_published or ref == "published") and not row.published:
                raise ConflictError(
                    f"Version {row.version} of dataset '{name}' is not published: it has not "
                    "passed the validation gate, or its latest validation failed. Run "
                    "`keel datasets validate` and `keel datasets publish` first.",
                    dataset=name,
                    version=row.version,
                )
            return version_value(repo, dataset, row)

    def iter_frames(
        self,
        ctx: Context,
        name: str,
        ref: VersionRef = None,
        *,
        require_published: bool = False,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pl.DataFrame]:
        """The version's parts as Polars frames, one at a time (bounded memory); ``columns``
        reads only those columns."""
        version = self.version(ctx, name, ref, require_published=require_published)
        if columns is not None:
            missing = [c for c in columns if c not in version.columns]
            if missing:
                raise InvalidInputError(
                    f"Version {version.version} of '{name}' has no column {missing[0]!r}; its "
                    f"columns are {version.columns[:20]}.",
                    dataset=name,
                )
        return self._frames(ctx, version, columns=columns)

    def _frames(
        self, ctx: Context, version: DatasetVersion, *, columns: Sequence[str] | None = None
    ) -> Iterator[pl.DataFrame]:
        """Each part, decrypted, verified and decoded in turn: one part is held at a time."""
        import polars as pl

        for part in version.parts:
            data = self._blobs.get_bytes(part.digest, scope=ctx.project_id)
            yield pl.read_parquet(
                io.BytesIO(data), columns=None if columns is None else list(columns)
            )

    def read(
        self,
        ctx: Context,
        name: str,
        ref: VersionRef = None,
        *,
        format: str = "polars",
        require_published: bool = False,
    ) -> Any:
        """The whole version as a Polars frame, a pandas frame (``format='pandas'``) or an
        Arrow table (``format='arrow'``).

        This holds the whole version in memory (its parts are joined without a copy). To
        stay within one part's memory, iterate ``iter_frames`` instead."""
        if format not in ("polars", "pandas", "arrow"):
            raise InvalidInputError(f"format must be polars, pandas or arrow; got {format!r}.")
        version = self.version(ctx, name, ref, require_published=require_published)
        frame = self._frame(ctx, version)
        if format == "pandas":
            return to_pandas(frame)
        if format == "arrow":
            return frame.to_arrow()
        return frame

    def _frame(
        self, ctx: Context, version: DatasetVersion, *, columns: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """The version (or only ``columns`` of it) as one frame."""
        import polars as pl

        frames = list(self._frames(ctx, version, columns=columns))
        if frames:  # chunked, not copied: the peak is the version, not twice it
            return pl.concat(frames, how="vertical", rechunk=False)
        names = version.columns if columns is None else list(columns)
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String))

    def rejects(self, ctx: Context, name: str, ref: VersionRef = None) -> pl.DataFrame:
        """The rows the source could not read: line number, reason, text (first 100,000)."""
        import polars as pl

        version = self.version(ctx, name, ref)
        with self._read(ctx, "dataset.rejects") as session:
            repo = DatasetRepository(session, ctx.project_id)
            row = repo.version_by_id(version.id)
            digest = row.rejects_digest if row is not None else None
        if digest is None:
            return pl.DataFrame(schema={"line": pl.Int64, "reason": pl.String, "text": pl.String})
        return pl.read_parquet(io.BytesIO(self._blobs.get_bytes(digest, scope=ctx.project_id)))

    def diff(self, ctx: Context, name: str, before: VersionRef, after: VersionRef) -> VersionDiff:
        """Schema changes, row counts, shared parts and changed statistics of two versions."""
        a = self.version(ctx, name, before)
        b = self.version(ctx, name, after)
        old = {p.digest for p in a.parts}
        new = {p.digest for p in b.parts}
        return VersionDiff(
            dataset=name,
            before=a.version,
            after=b.version,
            rows_before=a.row_count,
            rows_after=b.row_count,
            parts_shared=len(old & new),
            parts_added=len(new - old),
            parts_removed=len(old - new),
            changes=stats_changes(a.schema, b.schema, a.stats, b.stats),
        )

    # --- tags -----------------------------------------------------------------------------

    def tag(self, ctx: Context, name: str, tag: str, version: int) -> DatasetVersion:
        """Point ``tag`` at ``version``. ``latest`` moves by itself and ``published`` only
        through the gate (``publish``)."""
        validate_name(tag, what="tag")
        if tag in RESERVED_TAGS:
            raise InvalidInputError(
                f"The tag '{tag}' is managed by Keel ('latest' follows new versions; "
                "'published' is set by `keel datasets publish` after the validation gate).",
                tag=tag,
            )
        if tag.isdigit():
            raise InvalidInputError(
                f"A tag cannot be all digits ({tag!r}): a reference of digits is a version "
                f"number, so the tag could never be asked for. Use a name such as 'v{tag}' or "
                f"'q{tag}'.",
                tag=tag,
            )
        with self._gov.write(
            ctx, Permission.DATASET_WRITE, "dataset.tag", object_type="dataset_version"
        ) as work:
            repo = DatasetRepository(work.session, ctx.project_id)
            dataset = dataset_row(repo, name)
            row = version_row(repo, dataset, version)
            previous = repo.set_tag(dataset.id, tag, row.version)
            work.object_id = row.id
            work.details = {
                "dataset": name,
                "tag": tag,
                "version": row.version,
                "previous": previous,
            }
            return version_value(repo, dataset, row)

    # --- transforms -----------------------------------------------------------------------

    def transform(
        self,
        ctx: Context,
        name: str,
        steps: Sequence[Mapping[str, Any]] | None = None,
        *,
        function: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
        per_part: bool = False,
        version: VersionRef = None,
        target: str | None = None,
        description: str = "",
    ) -> DatasetVersion:
        """Apply cleansing ``steps`` (or a Python ``function``) to a version; the result is a
        new version of ``target`` (default: the same dataset) with lineage to its input.

        Steps run part by part, so memory stays near one part (see ``_streaming.py`` for the
        few steps that keep a state: ``drop_duplicates`` keeps the keys it has seen, a median
        or quantile holds its one column). A ``function`` gets the whole version as one frame,
        unless ``per_part=True``: then it is called on each part (for row-local functions).
        """
        import polars as pl

        from keel.data._streaming import stream_steps

        if (steps is None) == (function is None):
            raise InvalidInputError("Give transform either steps=[...] or function=..., not both.")
        parsed = parse_transform(steps) if steps is not None else ()
        self._gov.check(
            ctx, Permission.DATASET_WRITE, action="dataset.transform", object_type="dataset"
        )
        source = self.version(ctx, name, version)

        def checked(result: Any) -> pl.DataFrame:
            if not isinstance(result, pl.DataFrame):
                raise InvalidInputError(
                    f"The transform function returned {type(result).__name__}; return a Polars "
                    "DataFrame."
                )
            return result

        frames: Iterable[pl.DataFrame]
        if function is not None:
            module = getattr(function, "__module__", "?")
            qualname = getattr(function, "__qualname__", "?")
            record: dict[str, Any] = {
                "kind": "function",
                "function": f"{module}.{qualname}",
                "per_part": per_part,
            }
            if per_part:
                frames = (checked(function(f)) for f in self._frames(ctx, source))
            else:
                frames = [checked(function(self._frame(ctx, source)))]
        else:
            frames = stream_steps(lambda: self._frames(ctx, source), parsed)
            record = {"kind": "steps", "steps": [s.to_dict() for s in parsed]}
        return self.commit_frames(
            ctx,
            target or name,
            frames,
            parent=source,
            transform={"id": new_id(), **record, "input": source.id},
            description=description,
        )

    def commit_frame(
        self,
        ctx: Context,
        name: str,
        frame: pl.DataFrame,
        *,
        parent: DatasetVersion,
        transform: dict[str, Any],
        removed_columns: Sequence[str] = (),
        anonymized_columns: Sequence[str] = (),
        description: str = "",
    ) -> DatasetVersion:
        """Store ``frame`` as a version derived from ``parent`` by ``transform``, with the
        parent's classification propagated (removed or anonymized columns drop their labels)."""
        return self.commit_frames(
            ctx,
            name,
            [frame],
            parent=parent,
            transform=transform,
            removed_columns=removed_columns,
            anonymized_columns=anonymized_columns,
            description=description,
        )

    def commit_frames(
        self,
        ctx: Context,
        name: str,
        frames: Iterable[pl.DataFrame],
        *,
        parent: DatasetVersion,
        transform: dict[str, Any],
        removed_columns: Sequence[str] | None = None,
        anonymized_columns: Sequence[str] = (),
        description: str = "",
    ) -> DatasetVersion:
        """Store ``frames`` (one part or more each, written as they come) as a version derived
        from ``parent`` by ``transform``, with the parent's classification propagated (removed
        or anonymized columns drop their labels; ``removed_columns`` defaults to the parent's
        columns the result lacks, and is recorded on the transform)."""
        validate_name(name, what="dataset name")
        work = Ingest(self._gov.db, self._blobs, ctx)
        schema: builtins.list[tuple[str, str]] | None = None
        first: Any = None
        empty: pl.DataFrame | None = None
        sample: builtins.list[pl.DataFrame] = []  # of the output, for its labels
        sampled = 0
        try:
            for frame in frames:
                if schema is None:
                    schema, first = schema_of(frame), frame.schema
                elif schema_of(frame) != schema:
                    frame = conform(frame, first, name)
                if frame.height == 0:
                    empty = frame
                    continue
                if sampled < _LABEL_SAMPLE and parent.classification is not None:
                    sample.append(frame.head(_LABEL_SAMPLE - sampled))
                    sampled += sample[-1].height
                work.add_frame(frame, part_rows=BATCH_ROWS)
            if not work.parts and empty is not None:
                work.add_empty(empty)
            work.flush()
        finally:
            work.close()
        schema = schema or []
        columns = [c for c, _ in schema]
        if removed_columns is None:
            removed_columns = [c for c in parent.columns if c not in columns]
            transform = {**transform, "removed_columns": list(removed_columns)}
        classification = self._derived_labels(
            parent, columns, removed_columns, anonymized_columns, sample
        )
        return self._commit(
            ctx,
            name,
            description=description,
            kind=parent.kind,
            schema=schema,
            parts=work.parts,
            source=None,
            parents=[parent],
            ingest_id=work.id,
            transform=transform,
            classification=classification,
            action="dataset.transform",
        )

    @staticmethod
    def _derived_labels(
        parent: DatasetVersion,
        columns: Sequence[str],
        removed_columns: Sequence[str],
        anonymized_columns: Sequence[str],
        sample: Sequence[pl.DataFrame] = (),
    ) -> dict[str, Any] | None:
        """The labels of a version derived from ``parent``: its labels carried by column name
        (see below), raised to what detection finds in a ``sample`` of the derived rows. Names
        alone would let a step launder personal data: a derive or a function that writes emails
        into an existing column, a rename swap, a join that brings a labelled dataset's columns
        in. Anonymized columns keep what their anonymization record decided."""
        if parent.classification is None:
            return None
        from keel.data._classify import Classification, ColumnClassification, Sensitivity, propagate

        inherited = propagate(
            Classification.from_dict(parent.classification),
            removed_columns=removed_columns,
            anonymized_columns=anonymized_columns,
        ).to_dict()
        # A new column may carry what its inputs held: it inherits the parent's highest level
        # and the personal-data categories of the columns this step removed (a rename, or a
        # function replacing columns, moves them), else of every column at that level.
        new = [c for c in columns if c not in inherited["columns"]]
        if new:
            level = Sensitivity(parent.classification.get("sensitivity", "internal"))
            labels = parent.classification.get("columns", {})
            sources = [c for c in removed_columns if c in labels] or [
                c for c, label in labels.items() if label.get("sensitivity") == level.value
            ]
            categories = tuple(sorted({k for c in sources for k in labels[c]["categories"]}))
            for column in new:
                inherited["columns"][column] = ColumnClassification(
                    categories, level, 0.0, 0, "derived"
                ).to_dict()
            # One column removed and one new (a rename): its audited override moves with it.
            moved = parent.classification.get("overrides", {}).get(
                removed_columns[0] if len(removed_columns) == 1 else ""
            )
            if moved is not None and len(new) == 1:
                inherited["columns"][new[0]] = moved["label"]
                inherited.setdefault("overrides", {})[new[0]] = moved
            inherited = Classification.from_dict(inherited).to_dict()
        if sample:
            inherited = _raised_by_detection(inherited, sample, anonymized_columns)
        return inherited

    def _appended_labels(
        self, parent: DatasetVersion, sample: pl.DataFrame | None
    ) -> dict[str, Any] | None:
        """The labels of a version appending rows to ``parent``: the parent's, raised column by
        column to what detection finds in a sample of the appended rows (new raw rows in a
        column the parent had anonymized, or found public, may hold personal data). Audited
        overrides stay as they are."""
        if parent.classification is None or sample is None or sample.height == 0:
            return parent.classification
        from keel.data._classify import Classification, ColumnClassification, classify_frame

        inherited = Classification.from_dict(parent.classification)
        columns = dict(inherited.columns)
        for name, found in classify_frame(sample).columns.items():
            old = columns.get(name)
            if name in inherited.overrides or (
                old is not None
                and found.sensitivity <= old.sensitivity
                and set(found.categories) <= set(old.categories)
            ):
                continue
            categories = set(found.categories) | set(old.categories if old else ())
            level = max(found.sensitivity, old.sensitivity) if old else found.sensitivity
            columns[name] = ColumnClassification(
                tuple(sorted(categories)), level, found.confidence, found.samples, found.detector
            )
        return Classification(columns, inherited.overrides).to_dict()

    def record_use(
        self, ctx: Context, name: str, ref: VersionRef, consumer: Node, *, relation: str = "used_by"
    ) -> DatasetVersion:
        """Link a version to the run that consumed it (trained or evaluated on it), in the
        lineage graph.

        The link is written by the consumer's side: it needs the right to write runs (a
        read-only role cannot add edges that erasure and retention would follow), the run
        must exist in this project, and ``relation`` is one of ``USE_RELATIONS``. A
        ``published`` reference is refused unless the version passed the gate.
        """
        from keel.store import RunRepository

        if relation not in USE_RELATIONS:
            raise InvalidInputError(
                f"A use of a dataset version is one of {', '.join(USE_RELATIONS)}; got "
                f"{relation!r:.60}."
            )
        if consumer.type != "run":
            raise InvalidInputError(
                f"What uses a dataset version is a run (run:<id>); got {str(consumer)[:80]!r}. "
                "Models and deployments are linked through the run that trained them."
            )
        version = self.version(ctx, name, ref, require_published=ref == "published")
        with self._gov.write(
            ctx, Permission.RUN_WRITE, "dataset.use", object_type="dataset_version"
        ) as work:
            if RunRepository(work.session, ctx.project_id).get(consumer.id) is None:
                raise NotFoundError(
                    f"There is no run {consumer.id!r} in this project to link to dataset "
                    f"'{name}' v{version.version}.",
                    run=consumer.id,
                )
            LineageService.link(
                work.session, ctx, Node("dataset_version", version.id), consumer, relation
            )
            work.object_id = version.id
            work.details = {"dataset": name, "version": version.version, "consumer": str(consumer)}
        return version

    # --- helpers --------------------------------------------------------------------------

    def _read(self, ctx: Context, action: str) -> Any:
        return self._gov.read(ctx, Permission.DATASET_READ, action, object_type="dataset")

    def _latest_or_none(self, ctx: Context, name: str) -> DatasetVersion | None:
        with self._read(ctx, "dataset.version") as session:
            repo = DatasetRepository(session, ctx.project_id)
            dataset = repo.dataset(name)
            if dataset is None:
                return None
            number = repo.latest_number(dataset.id)
            row = repo.version(dataset.id, number) if number else None
            return None if row is None else version_value(repo, dataset, row)

    def _polars_schema(self, ctx: Context, version: DatasetVersion) -> Any:
        """The Polars schema of a version, read from its first part."""
        import polars as pl

        if not version.parts:
            return pl.Schema(dict.fromkeys(version.columns, pl.String()))
        digest = version.parts[0].digest
        if digest not in self._schemas:
            data = self._blobs.get_bytes(digest, scope=ctx.project_id)
            if len(self._schemas) >= _SCHEMAS_KEPT:
                self._schemas.clear()
            self._schemas[digest] = pl.read_parquet_schema(io.BytesIO(data))
        return self._schemas[digest]

    def _file_rows(self, ctx: Context, version: DatasetVersion) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for frame in self._frames(ctx, version):
            for row in frame.iter_rows(named=True):
                rows[str(row["path"])] = row
        return rows


#: Commits of one append tried while other writers append to the same dataset, waiting a
#: random, growing while between tries (so that writers racing in step fall out of step).
_APPEND_TRIES = 12
_BACK_OFF_SECONDS = 0.01
#: How a run may have used a dataset version (the relation of its lineage edge).
USE_RELATIONS = ("used_by", "trained_on", "evaluated_on")

#: Version schemas kept in memory (a few bytes each).
_SCHEMAS_KEPT = 256
#: Appended rows classified (from the first batch) when the version appended to is labelled.
_LABEL_SAMPLE = 10_000


class _SameAsLatestError(Exception):
    """The version an ingest would make is the latest one already (raised inside the commit's
    transaction, so nothing is written or audited)."""

    def __init__(self, version: DatasetVersion) -> None:
        super().__init__(version.id)
        self.version = version


class _StaleLatestError(ConflictError):
    """Another version was committed since the one a new version was built on."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Dataset '{name}' got a new version while this one was built on the previous "
            "latest; build it again on the new latest.",
            dataset=name,
        )


@dataclass(frozen=True, slots=True)
class _Append:
    """A version that appends new parts to the dataset's latest as it is at commit: a sample
    of the new rows (classified when the latest is labelled), and whether other columns in the
    latest mean the new parts must be built again (a stream batch) rather than refused."""

    sample: pl.DataFrame | None
    stale_on_schema: bool = False


@dataclass(slots=True)
class _StreamBatch:
    """A stream batch encoded and stored: its message ids, the version it was fitted to, the
    ingest holding its parts, its schema, its rejects' blob and a sample of its rows."""

    ids: builtins.list[str]
    parent: DatasetVersion | None
    work: Ingest
    schema: builtins.list[tuple[str, str]]
    rejects_digest: str | None
    sample: pl.DataFrame


def _back_off(attempt: int) -> None:
    """Before a retry, wait a random while that doubles with each try (none before the first)."""
    if attempt:
        time.sleep(random.uniform(0, _BACK_OFF_SECONDS * 2 ** min(attempt, 6)))


def _kept_changing(name: str, what: str) -> ConflictError:
    return ConflictError(
        f"Dataset '{name}' kept getting new versions from other writers while {what} was "
        f"committed ({_APPEND_TRIES} tries). Try again when fewer writers append to it.",
        dataset=name,
    )


def _columns(version: DatasetVersion | None) -> builtins.list[tuple[str, str]] | None:
    return None if version is None else version.schema


def _raised_by_detection(
    inherited: dict[str, Any], sample: Sequence[pl.DataFrame], anonymized: Sequence[str]
) -> dict[str, Any]:
    """``inherited`` labels raised, column by column, to what detection finds in ``sample``
    (never lowered); anonymized columns and audited overrides stay as they are."""
    import polars as pl

    from keel.data._classify import Classification, at_least, classify_frame

    rows = pl.concat(list(sample), how="vertical_relaxed")
    checked = rows.drop([c for c in anonymized if c in rows.columns])
    if not checked.width:
        return inherited
    found = at_least(classify_frame(checked), Classification.from_dict(inherited)).to_dict()
    overrides = inherited.get("overrides", {})
    merged = {
        **inherited["columns"],
        **found["columns"],
        **{c: o["label"] for c, o in overrides.items() if c in inherited["columns"]},
    }
    return Classification.from_dict({"columns": merged, "overrides": overrides}).to_dict()


def _declared_schema(schema: Mapping[str, str] | None) -> dict[str, Any]:
    """A stream's declared field types as Polars dtypes (checked before anything is read)."""
    from keel.data._stream_rows import MESSAGE_ID

    if schema is None:
        return {}
    if not isinstance(schema, Mapping):
        raise InvalidInputError(
            'A stream schema maps field names to types, e.g. {"price": "float64"}.'
        )
    declared: dict[str, Any] = {}
    for field, dtype in schema.items():
        if not isinstance(field, str) or not field or field == MESSAGE_ID:
            raise InvalidInputError(
                f"A stream schema names fields (non-empty text other than {MESSAGE_ID!r}, "
                f"which holds each message's id); got {field!r:.60}."
            )
        declared[field] = parse_dtype(str(dtype))
    return declared


def _check_declared(name: str, declared: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """A declared type must be the dataset's own: a stream cannot change its columns."""
    for field, dtype in declared.items():
        if field not in schema:
            raise InvalidInputError(
                f"Dataset '{name}' has no column {field!r} (its columns: "
                f"{list(schema)[:20]}); a stream appends rows to the columns it has. "
                "Drop the field from the schema, or ingest into a new dataset.",
                dataset=name,
            )
        if schema[field] != dtype:
            raise InvalidInputError(
                f"The stream schema gives {field!r} the type {dtype}, but dataset '{name}' "
                f"holds it as {schema[field]}. Declare {schema[field]} (or leave the field "
                "out), or ingest into a new dataset.",
                dataset=name,
            )


def _create(session: Any, repo: DatasetRepository, name: str, description: str) -> Any:
    """Create dataset ``name``, or, when another writer created it meanwhile (PostgreSQL waits
    for that writer, then refuses the same name), take theirs: a version expecting none yet is
    then stale and built again."""
    from sqlalchemy.exc import IntegrityError

    try:
        with session.begin_nested():
            return repo.create_dataset(name, description=description)
    except IntegrityError:
        theirs = repo.dataset(name, lock=True)
        if theirs is None:
            raise
        return theirs
