"""The Source port, and the adapters for frames, Parquet, JSON/NDJSON files and SQL queries.

Each adapter yields bounded batches, so a source of any size is read in bounded memory. The
CSV adapter is in ``_csv.py``, folders and archives in ``_folders.py``, streams in
``_streams.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from keel.data._model import Reject
from keel.errors import InvalidInputError, MissingDependencyError, NotFoundError, StorageError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "BATCH_ROWS",
    "BlobSink",
    "FrameSource",
    "JsonSource",
    "ParquetSource",
    "Source",
    "SourceBatch",
    "SqlSource",
    "open_binary",
    "source_for",
]

BATCH_ROWS = 1_000_000


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """Rows read from a source, the rows it could not read, and how many bytes it consumed."""

    frame: pl.DataFrame
    rejects: tuple[Reject, ...] = ()
    bytes_read: int = 0


class BlobSink(Protocol):
    """Where a source puts file bytes (unstructured sources) while an ingest runs."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (journaled for gc until the version commits); return its digest."""
        ...

    def known(self, path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
        """The manifest row of ``path`` in the parent version, if size and mtime still match."""
        ...


class Source(Protocol):
    """A place rows come from; read once, batch by batch."""

    def describe(self) -> dict[str, Any]:
        """What to record on the version as its ``source`` (no secrets)."""
        ...

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        """Yield the rows in bounded batches."""
        ...


def open_binary(url: str) -> BinaryIO:
    """Open a local path or any fsspec URL for reading bytes."""
    if "://" not in url or url.startswith("file://"):
        path = url.removeprefix("file://")
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise NotFoundError(f"No file at {path!r}. Check the path.", path=path) from None
        except IsADirectoryError:
            raise InvalidInputError(
                f"{path!r} is a folder; ingest it with kind='folder'.", path=path
            ) from None
    import fsspec

    try:
        handle: BinaryIO = fsspec.open(url, "rb").open()
    except FileNotFoundError:
        raise NotFoundError(f"No file at {url!r}. Check the URL.", url=url) from None
    except (ImportError, ValueError) as exc:
        raise InvalidInputError(f"Cannot open {url!r}: {exc}", url=url) from exc
    except OSError as exc:
        raise StorageError(f"Cannot read {url!r}: {exc}", url=url) from exc
    return handle


def _redact(url: str) -> str:
    """A URL without its password, for the version's ``source``."""
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.split("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


class FrameSource:
    """An in-memory Polars, pandas or Arrow table."""

    def __init__(self, frame: Any, *, batch_rows: int = BATCH_ROWS) -> None:
        self._frame = frame
        self._batch_rows = batch_rows

    def describe(self) -> dict[str, Any]:
        return {"kind": "frame", "type": type(self._frame).__name__}

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        import polars as pl

        frame = self._frame
        if not isinstance(frame, pl.DataFrame):
            try:
                converted = (
                    pl.from_pandas(frame) if hasattr(frame, "iloc") else pl.from_arrow(frame)
                )
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(
                    f"Cannot ingest a {type(frame).__name__}: pass a Polars, pandas or Arrow "
                    "table.",
                ) from exc
            if not isinstance(converted, pl.DataFrame):
                raise InvalidInputError("An Arrow array is not a table; pass a Table.")
            frame = converted
        for offset in range(0, max(frame.height, 1), self._batch_rows):
            yield SourceBatch(frame.slice(offset, self._batch_rows))


class ParquetSource:
    """A Parquet file (local or fsspec URL), read one row group batch at a time."""

    def __init__(self, url: str, *, batch_rows: int = BATCH_ROWS) -> None:
        self._url = url
        self._batch_rows = batch_rows

    def describe(self) -> dict[str, Any]:
        return {"kind": "parquet", "url": _redact(self._url)}

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        import polars as pl
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        with open_binary(self._url) as handle:
            try:
                reader = pq.ParquetFile(handle)
            except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses
                raise InvalidInputError(
                    f"{self._url!r} is not a readable Parquet file: {exc}", url=self._url
                ) from exc
            for batch in reader.iter_batches(batch_size=self._batch_rows):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                yield SourceBatch(frame, bytes_read=batch.nbytes)


class JsonSource:
    """A JSON array of objects or newline-delimited JSON (NDJSON), local or fsspec URL."""

    def __init__(self, url: str, *, lines: bool | None = None, batch_rows: int = 200_000) -> None:
        self._url = url
        self._lines = lines
        self._batch_rows = batch_rows

    def describe(self) -> dict[str, Any]:
        return {"kind": "ndjson" if self._is_lines() else "json", "url": _redact(self._url)}

    def _is_lines(self) -> bool:
        if self._lines is not None:
            return self._lines
        return self._url.lower().endswith((".ndjson", ".jsonl"))

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        import polars as pl

        with open_binary(self._url) as handle:
            if not self._is_lines():
                data = handle.read()
                if not data.strip():
                    raise InvalidInputError(f"{self._url!r} is empty.", url=self._url)
                try:
                    frame = pl.read_json(data)
                except Exception as exc:
                    raise InvalidInputError(
                        f"{self._url!r} is not a JSON array of objects: {str(exc)[:200]}. For "
                        "one object per line, name the file .ndjson or pass lines=True.",
                        url=self._url,
                    ) from exc
                yield SourceBatch(frame, bytes_read=len(data))
                return
            yield from self._lines_batches(handle)

    def _lines_batches(self, handle: BinaryIO) -> Iterator[SourceBatch]:
        import json

        import polars as pl

        rows: list[Any] = []
        rejects: list[Reject] = []
        size = 0
        schema: Mapping[str, Any] | None = None
        for number, raw in enumerate(handle, start=1):
            size += len(raw)
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                rejects.append(
                    Reject(number, f"not JSON: {exc}", raw[:200].decode(errors="replace"))
                )
                continue
            if not isinstance(value, dict):
                rejects.append(
                    Reject(number, "not a JSON object", raw[:200].decode(errors="replace"))
                )
                continue
            rows.append(value)
            if len(rows) >= self._batch_rows:
                frame = pl.from_dicts(rows, schema=schema, infer_schema_length=None)
                schema = schema or frame.schema
                yield SourceBatch(frame, tuple(rejects), size)
                rows, rejects, size = [], [], 0
        if rows or rejects or schema is None:
            frame = (
                pl.from_dicts(rows, schema=schema, infer_schema_length=None)
                if rows
                else pl.DataFrame()
            )
            yield SourceBatch(frame, tuple(rejects), size)


@dataclass(slots=True)
class SqlSource:
    """A table or a query over a SQLAlchemy URL, read in chunks of ``batch_rows``."""

    url: str
    table: str | None = None
    query: str | None = None
    batch_rows: int = 100_000
    _engine: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise InvalidInputError("Give a SQL source either table=... or query=..., not both.")

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "sql",
            "url": _redact(self.url),
            **({"table": self.table} if self.table else {"query": self.query}),
        }

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        import polars as pl

        try:
            from sqlalchemy import MetaData, Table, create_engine, select, text
            from sqlalchemy.exc import SQLAlchemyError
        except ImportError as exc:  # pragma: no cover - sqlalchemy is a core dependency
            raise MissingDependencyError(
                "sqlalchemy", extra="data", purpose="A SQL source"
            ) from exc
        url = self.url
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        if url.startswith("mysql://") or url.startswith("mariadb://"):
            url = "mysql+pymysql://" + url.split("://", 1)[1]
        try:
            engine = create_engine(url)
        except (ImportError, SQLAlchemyError) as exc:
            raise InvalidInputError(f"Cannot use the SQL URL {_redact(self.url)!r}: {exc}") from exc
        try:
            with engine.connect().execution_options(stream_results=True) as conn:
                if self.table is not None:
                    try:
                        table = Table(self.table, MetaData(), autoload_with=conn)
                    except SQLAlchemyError as exc:
                        raise NotFoundError(
                            f"Table {self.table!r} does not exist at {_redact(self.url)!r}.",
                            table=self.table,
                        ) from exc
                    result = conn.execute(select(table))
                else:
                    result = conn.execute(text(str(self.query)))
                columns = list(result.keys())
                schema: Any = None
                empty = True
                for rows in result.partitions(self.batch_rows):
                    frame = pl.DataFrame(
                        [tuple(r) for r in rows],
                        schema=schema or columns,
                        orient="row",
                        infer_schema_length=None,
                    )
                    schema = schema or frame.schema
                    empty = False
                    yield SourceBatch(frame)
                if empty:
                    yield SourceBatch(pl.DataFrame({c: [] for c in columns}))
        except SQLAlchemyError as exc:
            raise StorageError(
                f"The SQL source {_redact(self.url)!r} failed: {str(exc)[:300]}"
            ) from exc
        finally:
            engine.dispose()


def source_for(
    url: str,
    *,
    kind: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Source:
    """Pick the adapter for ``url`` by ``kind`` or by its extension."""
    from keel.data._csv import CsvSource
    from keel.data._folders import ArchiveSource, FolderSource

    opts = dict(options or {})
    lowered = url.lower().split("?", 1)[0]
    if kind is None:
        if lowered.startswith(("postgresql", "postgres:", "mysql", "mariadb", "sqlite:")):
            kind = "sql"
        elif lowered.endswith((".csv", ".tsv", ".txt", ".csv.gz")):
            kind = "csv"
        elif lowered.endswith((".parquet", ".pq")):
            kind = "parquet"
        elif lowered.endswith((".json", ".ndjson", ".jsonl")):
            kind = "json"
        elif lowered.endswith((".zip", ".tar", ".tar.gz", ".tgz")):
            kind = "archive"
        elif "://" not in url and os.path.isdir(url):
            kind = "folder"
        else:
            raise InvalidInputError(
                f"Cannot tell what kind of source {url!r} is: pass kind= one of csv, parquet, "
                "json, sql, folder, archive.",
                url=url,
            )
    if kind == "csv":
        return CsvSource(url, **opts)
    if kind == "parquet":
        return ParquetSource(url, **opts)
    if kind in ("json", "ndjson"):
        return JsonSource(url, lines=True if kind == "ndjson" else opts.pop("lines", None), **opts)
    if kind == "sql":
        return SqlSource(url, **opts)
    if kind == "folder":
        return FolderSource(url, **opts)
    if kind == "archive":
        return ArchiveSource(url, **opts)
    raise InvalidInputError(
        f"Unknown source kind {kind!r}: use csv, parquet, json, ndjson, sql, folder or archive.",
        kind=kind,
    )
