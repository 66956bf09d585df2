"""``ws.datasets`` over HTTP: the dataset service and gate of a Keel server.

Files travel through the server's upload staging area. A local file is sent as it is (the
server reads it with the same adapter and options local mode would, so rejects and detected
settings match); a folder is sent as a tar archive; anything else (a frame, a SQL query) is
read here, batch by batch, into a Parquet file that is sent instead. Versions
come back as Parquet, streamed to a temporary file, so reading never holds two copies.

A file behind an fsspec URL (``s3://``, ``https://``) is streamed to the server unread, like a
local file; only sources that are not one file (SQL) are read here.
"""

from __future__ import annotations

import builtins
import os
import tempfile
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from keel import errors
from keel.data import (
    Dataset,
    Datasets,
    DatasetService,
    DatasetVersion,
    Source,
    VersionDiff,
    VersionRef,
    source_for,
)
from keel.data._sources import BATCH_ROWS
from keel.governance import Context
from keel.lineage import Node
from keel.workspace._http import HttpClient
from keel.workspace._http import base_path as _base
from keel.workspace._http import segment as _seg
from keel.workspace._remote_files import NoFiles, pack_folder, row_groups, write_parquet
from keel.workspace._remote_gate import RemoteDatasetGate

if TYPE_CHECKING:
    import polars as pl

    from keel.data import StreamSource

__all__ = ["RemoteDatasetService", "RemoteDatasets"]

_LOCAL_ONLY = (
    "{what} runs beside the store (it {why}); run it on the server's host with a local "
    "workspace (`keel.connect()` there) or the CLI."
)


class RemoteDatasetService(DatasetService):
    """DatasetService over HTTP."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset({"ingest_frame"})
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset(
        {"commit_frame", "commit_frames", "ingest_stream"}
    )

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def _path(self, ctx: Context, name: str) -> str:
        return f"{_base(ctx)}/datasets/{_seg(name)}"

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
        """Read ``source`` here into a Parquet file, upload it, and ingest it on the server."""
        with tempfile.TemporaryDirectory(prefix="keel-ingest-") as folder:
            target = Path(folder) / "rows.parquet"
            write_parquet(source.batches(NoFiles()), target)
            upload = self._http.upload(ctx.project_name, target, progress=progress)
            return self.ingest_upload(
                ctx,
                name,
                upload,
                kind="parquet",
                described=source.describe(),
                mode=mode,
                description=description,
                part_rows=part_rows,
            )

    def ingest_path(
        self,
        ctx: Context,
        name: str,
        path: Path,
        *,
        kind: str | None = None,
        options: Mapping[str, Any] | None = None,
        mode: str = "new",
        description: str = "",
        part_rows: int = BATCH_ROWS,
        progress: Callable[[int], None] | None = None,
    ) -> DatasetVersion:
        """Upload a local file as it is (a folder as a tar archive) and ingest it there."""
        with tempfile.TemporaryDirectory(prefix="keel-ingest-") as folder:
            if path.is_dir():
                if options:
                    raise errors.InvalidInputError(
                        f"A folder takes no options; got {', '.join(sorted(options))}."
                    )
                upload_kind, sent = "archive", Path(folder) / "folder.tar"
                pack_folder(path, sent)
                described: dict[str, Any] = {"kind": "folder", "path": str(path)}
            else:
                try:
                    chosen = source_for(str(path), kind=kind, options=options)
                except TypeError as exc:
                    raise errors.InvalidInputError(
                        f"Invalid options for {path.name}: {exc}.", path=str(path)
                    ) from exc
                described = chosen.describe()
                upload_kind, sent = str(described["kind"]), path
            upload = self._http.upload(ctx.project_name, sent, progress=progress)
        return self.ingest_upload(
            ctx,
            name,
            upload,
            kind=upload_kind,
            options=None if path.is_dir() else options,
            described=described,
            mode=mode,
            description=description,
            part_rows=part_rows,
        )

    def ingest_url(
        self,
        ctx: Context,
        name: str,
        url: str,
        *,
        kind: str | None = None,
        options: Mapping[str, Any] | None = None,
        mode: str = "new",
        description: str = "",
        part_rows: int = BATCH_ROWS,
        progress: Callable[[int], None] | None = None,
    ) -> DatasetVersion | None:
        """Stream a file-like URL (``s3://``, ``https://``…) to the server unread, so the
        server parses it as local mode would; None for a source that is not one file."""
        from keel.data._sources import open_binary

        try:
            chosen = source_for(url, kind=kind, options=options)
        except TypeError as exc:
            raise errors.InvalidInputError(f"Invalid options for {url!r:.100}: {exc}.") from exc
        described = chosen.describe()
        if described.get("kind") not in ("csv", "parquet", "json", "ndjson"):
            return None
        with open_binary(url) as handle:
            upload = self._http.upload(ctx.project_name, handle, progress=progress)
        return self.ingest_upload(
            ctx,
            name,
            upload,
            kind=str(described["kind"]),
            options=options,
            described=described,
            mode=mode,
            description=description,
            part_rows=part_rows,
        )

    def ingest_upload(
        self,
        ctx: Context,
        name: str,
        upload_id: str,
        *,
        kind: str,
        options: Mapping[str, Any] | None = None,
        described: Mapping[str, Any] | None = None,
        mode: str = "new",
        description: str = "",
        part_rows: int = BATCH_ROWS,
    ) -> DatasetVersion:
        """Ingest a staged upload (see ``POST .../datasets/{name}/ingest``)."""
        body = {
            "upload_id": upload_id,
            "kind": kind,
            "mode": mode,
            "description": description,
            "part_rows": part_rows,
            "options": None if not options else dict(options),
            "source": None if described is None else dict(described),
        }
        path = f"{self._path(ctx, name)}/ingest"
        return self._http.call("POST", path, json=body, into=DatasetVersion)

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
        raise errors.InvalidInputError(
            _LOCAL_ONLY.format(
                what="Stream ingest",
                why="acknowledges messages in the same transaction that commits their version",
            )
        )

    def commit_frame(self, ctx: Context, name: str, frame: Any, **_: Any) -> DatasetVersion:
        raise errors.InvalidInputError(
            _LOCAL_ONLY.format(what="commit_frame", why="writes parts straight to the blob store")
        )

    def commit_frames(self, ctx: Context, name: str, frames: Any, **_: Any) -> DatasetVersion:
        raise errors.InvalidInputError(
            _LOCAL_ONLY.format(
                what="commit_frames",
                why="writes parts straight to the blob store (use transform(function=...))",
            )
        )

    # --- reads ----------------------------------------------------------------------------

    def get(self, ctx: Context, name: str) -> Dataset:
        return self._http.call("GET", self._path(ctx, name), into=Dataset)

    def list(self, ctx: Context) -> builtins.list[Dataset]:
        return self._http.call("GET", f"{_base(ctx)}/datasets", into=list[Dataset])

    def versions(self, ctx: Context, name: str) -> builtins.list[DatasetVersion]:
        path = f"{self._path(ctx, name)}/versions"
        return self._http.call("GET", path, into=list[DatasetVersion])

    def version(
        self, ctx: Context, name: str, ref: VersionRef = None, *, require_published: bool = False
    ) -> DatasetVersion:
        path = f"{self._path(ctx, name)}/versions/{_seg('latest' if ref is None else ref)}"
        params = {"require_published": require_published or None}
        return self._http.call("GET", path, params=params, into=DatasetVersion)

    def _download(
        self, ctx: Context, name: str, ref: VersionRef, require_published: bool, target: Path
    ) -> None:
        path = f"{self._path(ctx, name)}/versions/{_seg('latest' if ref is None else ref)}/data"
        params = {"format": "parquet", "require_published": require_published or None}
        with open(target, "wb") as out:
            self._http.download_to(path, out, params=params)

    def iter_frames(
        self,
        ctx: Context,
        name: str,
        ref: VersionRef = None,
        *,
        require_published: bool = False,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pl.DataFrame]:
        """The version's parts as Polars frames, one at a time (a row group each);
        ``columns`` keeps only those columns."""
        import polars as pl

        folder = tempfile.TemporaryDirectory(prefix="keel-read-")
        target = Path(folder.name) / "rows.parquet"
        try:
            self._download(ctx, name, ref, require_published, target)
            if columns is not None:
                present = list(pl.read_parquet_schema(target))
                missing = [c for c in columns if c not in present]
                if missing:
                    raise errors.InvalidInputError(
                        f"Version {ref if ref is not None else 'latest'} of '{name}' has no "
                        f"column {missing[0]!r}; its columns are {present[:20]}.",
                        dataset=name,
                    )
        except BaseException:
            folder.cleanup()
            raise
        frames = row_groups(folder, target)
        if columns is None:
            return frames
        wanted = list(columns)
        return (frame.select(wanted) for frame in frames)

    def read(
        self,
        ctx: Context,
        name: str,
        ref: VersionRef = None,
        *,
        format: str = "polars",
        require_published: bool = False,
    ) -> Any:
        import polars as pl

        if format not in ("polars", "pandas", "arrow"):
            raise errors.InvalidInputError(
                f"format must be polars, pandas or arrow; got {format!r}."
            )
        with tempfile.TemporaryDirectory(prefix="keel-read-") as folder:
            target = Path(folder) / "rows.parquet"
            self._download(ctx, name, ref, require_published, target)
            frame = pl.read_parquet(target)
        if format == "pandas":
            from keel.data._frames import to_pandas

            return to_pandas(frame)  # nullable integers and booleans stay exact, as locally
        if format == "arrow":
            return frame.to_arrow()
        return frame

    def rejects(self, ctx: Context, name: str, ref: VersionRef = None) -> pl.DataFrame:
        import polars as pl

        path = f"{self._path(ctx, name)}/versions/{_seg('latest' if ref is None else ref)}/rejects"
        rows = self._http.call("GET", path)
        schema = {"line": pl.Int64, "reason": pl.String, "text": pl.String}
        return pl.DataFrame(rows, schema=schema)

    def diff(self, ctx: Context, name: str, before: VersionRef, after: VersionRef) -> VersionDiff:
        params = {"before": "latest" if before is None else before, "after": after}
        path = f"{self._path(ctx, name)}/diff"
        return self._http.call("GET", path, params=params, into=VersionDiff)

    # --- writes ---------------------------------------------------------------------------

    def tag(self, ctx: Context, name: str, tag: str, version: int) -> DatasetVersion:
        path = f"{self._path(ctx, name)}/tags/{_seg(tag)}"
        return self._http.call("PUT", path, json={"version": version}, into=DatasetVersion)

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
        """Steps run on the server; a Python ``function`` runs here on the downloaded version
        (on each part in turn with ``per_part``) and its result is uploaded and recorded as
        the transform's output."""
        import polars as pl

        if (steps is None) == (function is None):
            raise errors.InvalidInputError(
                "Give transform either steps=[...] or function=..., not both."
            )
        if steps is not None:
            body = {
                "steps": [dict(step) for step in steps],
                "version": version,
                "target": target,
                "description": description,
            }
            path = f"{self._path(ctx, name)}/transform"
            return self._http.call("POST", path, json=body, into=DatasetVersion)
        assert function is not None
        source = self.version(ctx, name, version)

        def checked(result: Any) -> pl.DataFrame:
            if not isinstance(result, pl.DataFrame):
                raise errors.InvalidInputError(
                    f"The transform function returned {type(result).__name__}; return a "
                    "Polars DataFrame."
                )
            return result

        with tempfile.TemporaryDirectory(prefix="keel-derive-") as folder:
            staged = Path(folder) / "result.parquet"
            if per_part:
                parts = self.iter_frames(ctx, name, source.version)
                try:
                    _write_parts((checked(function(f)) for f in parts), staged, target or name)
                finally:  # a failed call leaves the download open: remove it now, not at gc
                    if isinstance(parts, Generator):
                        parts.close()
            else:
                result = checked(function(self.read(ctx, name, source.version)))
                result.write_parquet(staged, compression="zstd")
            upload = self._http.upload(ctx.project_name, staged)
        body = {
            "upload_id": upload,
            "module": str(getattr(function, "__module__", "?"))[:300] or "?",
            "qualname": str(getattr(function, "__qualname__", "?"))[:300] or "?",
            "version": source.version,
            "target": target,
        }
        if per_part:  # only then: a server from before per_part takes the rest as it was
            body["per_part"] = True
        path = f"{self._path(ctx, name)}/derive"
        return self._http.call("POST", path, json=body, into=DatasetVersion)

    def record_use(
        self, ctx: Context, name: str, ref: VersionRef, consumer: Node, *, relation: str = "used_by"
    ) -> DatasetVersion:
        body = {
            "version": "latest" if ref is None else ref,
            "consumer": str(consumer),
            "relation": relation,
        }
        path = f"{self._path(ctx, name)}/uses"
        return self._http.call("POST", path, json=body, into=DatasetVersion)


def _write_parts(results: Iterator[pl.DataFrame], target: Path, name: str) -> None:
    """The function's results, one per part, as one Parquet file of a row group each (the
    server stores a part per row group, as local mode stores a part per call).

    Later results take the first one's columns and types, or fail with local mode's message,
    before anything is uploaded.
    """
    import polars as pl

    from keel.data import SourceBatch
    from keel.data._parts import schema_of
    from keel.data._rows import conform

    def conformed() -> Iterator[SourceBatch]:
        schema, first = None, None
        for result in results:
            if schema is None:
                schema, first = schema_of(result), result.schema
            elif schema_of(result) != schema:
                result = conform(result, first, name)
            yield SourceBatch(result)
        if schema is None:  # a version without rows: the function was never called
            yield SourceBatch(pl.DataFrame())

    write_parquet(conformed(), target)


class RemoteDatasets(Datasets):
    """``ws.datasets`` of a remote workspace: the same facade, over the remote services."""

    def __init__(self, http: HttpClient, ctx: Context) -> None:
        self._remote = RemoteDatasetService(http)
        self.service = self._remote
        self.gate = RemoteDatasetGate(http, self._remote)
        self._ctx = ctx

    def ingest(
        self,
        name: str,
        source: Source | str | Path | Any,
        *,
        kind: str | None = None,
        mode: str = "new",
        description: str = "",
        part_rows: int = BATCH_ROWS,
        progress: Callable[[int], None] | None = None,
        **options: Any,
    ) -> DatasetVersion:
        """As local mode; a local file or folder is uploaded as it is (see the module doc)."""
        if isinstance(source, str | Path) and os.path.exists(source):
            path = Path(os.fspath(source))
            return self._remote.ingest_path(
                self._ctx,
                name,
                path,
                kind=kind,
                options=options,
                mode=mode,
                description=description,
                part_rows=part_rows,
                progress=progress,
            )
        if isinstance(source, str) and "://" in source:
            sent = self._remote.ingest_url(
                self._ctx,
                name,
                source,
                kind=kind,
                options=options,
                mode=mode,
                description=description,
                part_rows=part_rows,
                progress=progress,
            )
            if sent is not None:
                return sent
        return super().ingest(
            name,
            source,
            kind=kind,
            mode=mode,
            description=description,
            part_rows=part_rows,
            progress=progress,
            **options,
        )
