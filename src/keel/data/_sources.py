"""The Source port, and the adapters for frames, Parquet and JSON/NDJSON files.

Each adapter yields bounded batches, so a source of any size is read in bounded memory. The
CSV adapter is in ``_csv.py``, SQL tables and queries in ``_sql.py``, folders and archives in
``_folders.py``, streams in ``_streams.py``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from keel.data._model import Reject
from keel.errors import InvalidInputError, NotFoundError, StorageError
from keel.settings import redact_url

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


class FrameSource:
    """An in-memory Polars, pandas or Arrow table."""

    def __init__(self, frame: Any, *, batch_rows: int = BATCH_ROWS) -> None:
        self._frame = frame
        self._batch_rows = batch_rows

    def describe(self) -> dict[str, Any]:
        return {"kind": "frame", "type": type(self._frame).__name__}

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        from keel.data._frames import to_polars

        # whole, before the first batch: a column that cannot be stored is refused before
        # any part is, and a column of Python objects gets one type for every batch
        frame = to_polars(self._frame)
        for offset in range(0, max(frame.height, 1), self._batch_rows):
            yield SourceBatch(frame.slice(offset, self._batch_rows))


class ParquetSource:
    """A Parquet file (local or fsspec URL), read one row group batch at a time."""

    def __init__(self, url: str, *, batch_rows: int = BATCH_ROWS) -> None:
        self._url = url
        self._batch_rows = batch_rows

    def describe(self) -> dict[str, Any]:
        return {"kind": "parquet", "url": redact_url(self._url)}

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        from keel.data._frames import arrow_to_polars

        with open_binary(self._url) as handle:
            try:
                reader = pq.ParquetFile(handle)
            except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses
                raise InvalidInputError(
                    f"{self._url!r} is not a readable Parquet file: {exc}", url=self._url
                ) from exc
            empty = True
            for batch in reader.iter_batches(batch_size=self._batch_rows):
                empty = False
                yield SourceBatch(arrow_to_polars(batch), bytes_read=batch.nbytes)
            if empty:  # no rows (no row group): the version keeps the file's columns still
                yield SourceBatch(arrow_to_polars(reader.schema_arrow.empty_table()))


class JsonSource:
    """A JSON array of objects or newline-delimited JSON (NDJSON), local or fsspec URL.

    NDJSON is read ``batch_rows`` lines at a time, and a version has one schema for all its
    parts: the first batch fixes the columns and their types (with ``schema`` applied), and
    every later batch must fit them exactly. A later batch with a key the first did not
    have, or a value its column's type cannot hold without loss (``10.75`` in a column of
    integers, text in a column that was null throughout the first batch), is an
    :class:`InvalidInputError` naming the line and the key: name the type in ``schema``
    then, rather than have the value cut or dropped.

    Args:
        url: where the file is.
        lines: whether it is NDJSON; by the extension (``.ndjson``, ``.jsonl``) when None.
        batch_rows: NDJSON lines parsed at a time (bounds memory).
        schema: key → type name (``"int64"``, ``"float64"``, ``"string"``, ``"datetime"``
            …) fixing those keys' types up front; a key named here that the first rows do not
            have is a column still (null until it appears).
    """

    def __init__(
        self,
        url: str,
        *,
        lines: bool | None = None,
        batch_rows: int = 200_000,
        schema: Mapping[str, str] | None = None,
    ) -> None:
        from keel.data._parts import parse_dtype

        self._url = url
        self._lines = lines
        self._batch_rows = max(batch_rows, 1)
        self._overrides = {str(k): parse_dtype(v) for k, v in (schema or {}).items()}

    def describe(self) -> dict[str, Any]:
        return {"kind": "ndjson" if self._is_lines() else "json", "url": redact_url(self._url)}

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
                    # every object is looked at: a float or a key first met on row 101 of
                    # an array of ints must not be cut (or fail) as Polars' default does
                    frame = pl.read_json(data, infer_schema_length=None)
                except Exception as exc:
                    raise InvalidInputError(
                        f"{self._url!r} is not a JSON array of objects: {str(exc)[:200]}. For "
                        "one object per line, name the file .ndjson or pass lines=True.",
                        url=self._url,
                    ) from exc
                target = self._first_schema(frame)
                yield SourceBatch(self._fit(frame, target, None), bytes_read=len(data))
                return
            yield from self._lines_batches(handle)

    def _first_schema(self, frame: pl.DataFrame) -> dict[str, pl.DataType]:
        """The schema every batch gets: the first batch's, with the user's types over it."""
        schema = dict(frame.schema)
        schema.update(self._overrides)
        return schema

    def _fit(
        self, frame: pl.DataFrame, target: Mapping[str, pl.DataType], lines: list[int] | None
    ) -> pl.DataFrame:
        """``frame`` with exactly ``target``'s columns and types, or a clear error.

        A missing key is a null column; a column of another type is cast only when the cast
        loses nothing (cast back, every value is the same), so ``1`` may become ``1.0`` or
        ``"1"`` but ``10.75`` never becomes ``10``. ``lines`` maps rows to file lines.
        """
        import polars as pl

        extra = [c for c in frame.columns if c not in target]
        if extra:
            key = extra[0]
            row = int(frame[key].is_not_null().arg_max() or 0)
            raise InvalidInputError(
                f"{self._where(lines, row)}: key {key!r} is not among the keys of the first "
                f"{self._batch_rows} rows ({', '.join(map(repr, target)) or 'none'}), which "
                "fix the dataset's columns. Declare it: schema={"
                f"{key!r}: '<type>'}} (e.g. 'string', 'float64').",
                url=self._url,
                key=key,
            )
        columns: list[pl.Series] = []
        for name, dtype in target.items():
            if name not in frame.columns:
                columns.append(pl.Series(name, [None] * frame.height, dtype=dtype))
                continue
            column = frame[name]
            if column.dtype == dtype:
                columns.append(column)
                continue
            columns.append(self._cast(column, dtype, lines))
        return pl.DataFrame(columns, height=frame.height)

    def _cast(self, column: pl.Series, dtype: pl.DataType, lines: list[int] | None) -> pl.Series:
        """``column`` as ``dtype`` if no value changes on the way, else a clear error."""
        import polars as pl

        if column.dtype == pl.Null:
            return column.cast(dtype)
        try:
            cast = column.cast(dtype, strict=False)  # a value that cannot be cast is null
            bad = ~cast.cast(column.dtype, strict=False).eq_missing(column)
        except pl.exceptions.PolarsError:  # no cast between the two types at all
            cast, bad = column, column.is_not_null()
        if not bad.any():
            return cast
        row = int(bad.arg_max() or 0)
        value = column[row]
        shown = repr(value)[:60]
        fixed = "null in every row before" if dtype == pl.Null else f"of type {dtype}"
        why = (
            f"the first {self._batch_rows} rows fix the types"
            if lines is not None
            else "its type comes from schema="
        )
        raise InvalidInputError(
            f"{self._where(lines, row)}: the value {shown} of key {column.name!r} ("
            f"{column.dtype}) does not fit its column, {fixed} ({why}). Declare the type: schema="
            f"{{{column.name!r}: '<type>'}} (e.g. 'float64' or 'string').",
            url=self._url,
            key=column.name,
        )

    def _where(self, lines: list[int] | None, row: int) -> str:
        if lines is None:
            return f"{self._url!r}, object {row + 1}"
        return f"{self._url!r}, line {lines[row] if row < len(lines) else '?'}"

    def _lines_batches(self, handle: BinaryIO) -> Iterator[SourceBatch]:
        import json

        import polars as pl

        rows: list[Any] = []
        numbers: list[int] = []
        rejects: list[Reject] = []
        size = 0
        target: dict[str, pl.DataType] | None = None

        def batch() -> pl.DataFrame:
            """The rows so far, each batch inferred on its own, then fitted to the first."""
            nonlocal target
            try:
                frame = pl.from_dicts(rows, infer_schema_length=None)
            except pl.exceptions.PolarsError as exc:
                raise InvalidInputError(
                    f"{self._url!r}, lines {numbers[0]}-{numbers[-1]}: the objects do not "
                    f"make a table ({str(exc)[:200]}). Declare the types with schema=...",
                    url=self._url,
                ) from exc
            if target is None:
                target = self._first_schema(frame)
            return self._fit(frame, target, numbers)

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
            numbers.append(number)
            if len(rows) >= self._batch_rows:
                yield SourceBatch(batch(), tuple(rejects), size)
                rows, numbers, rejects, size = [], [], [], 0
        if rows or rejects or target is None:
            if rows:
                frame = batch()
            else:
                frame = pl.DataFrame(schema=target if target is not None else self._overrides)
            yield SourceBatch(frame, tuple(rejects), size)


#: The names that are read as archives without ``kind="archive"``.
ARCHIVE_SUFFIXES = (
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tar.lzma",
    ".tlz",
)


def source_for(
    url: str,
    *,
    kind: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Source:
    """Pick the adapter for ``url`` by ``kind`` or by its extension."""
    from keel.data._csv import CsvSource
    from keel.data._folders import ArchiveSource, FolderSource
    from keel.data._sql import SqlSource

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
        elif lowered.endswith(ARCHIVE_SUFFIXES):
            kind = "archive"
        elif "://" not in url and os.path.isdir(url):
            kind = "folder"
        else:
            raise InvalidInputError(
                f"Cannot tell what kind of source {url!r} is: pass kind= one of csv, parquet, "
                "json, sql, folder, archive.",
                url=url,
            )
    adapters: dict[str, Callable[..., Source]] = {
        "csv": CsvSource,
        "parquet": ParquetSource,
        "json": JsonSource,
        "ndjson": functools.partial(JsonSource, lines=True),
        "sql": SqlSource,
        "folder": FolderSource,
        "archive": ArchiveSource,
    }
    if kind not in adapters:
        raise InvalidInputError(
            f"Unknown source kind {kind!r}: use csv, parquet, json, ndjson, sql, folder or "
            "archive.",
            kind=kind,
        )
    if kind == "ndjson":
        opts.pop("lines", None)
    adapter = adapters[kind]
    _, *rest = inspect.signature(adapter).parameters.values()  # the first is the URL
    accepted = [
        p.name
        for p in rest
        if not p.name.startswith("_") and not (kind == "ndjson" and p.name == "lines")
    ]
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        raise InvalidInputError(
            f"The {kind} source takes no option {', '.join(map(repr, unknown))}: its options "
            f"are {', '.join(accepted) or 'none'} (see docs/datasets.md).",
            kind=kind,
        )
    return adapter(url, **opts)
