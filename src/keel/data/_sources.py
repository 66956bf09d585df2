"""The Source port, and the adapters for frames, Parquet, JSON/NDJSON files and SQL queries.

Each adapter yields bounded batches, so a source of any size is read in bounded memory. The
CSV adapter is in ``_csv.py``, folders and archives in ``_folders.py``, streams in
``_streams.py``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from keel.data._model import Reject
from keel.errors import InvalidInputError, MissingDependencyError, NotFoundError, StorageError
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


#: Query parameter names whose values are secrets (matched case-insensitively, as part of
#: the name: ``sslpassword``, ``aws_secret_access_key``, ``x-api-key`` …), plus ``sig``
#: (the signature of an Azure SAS URL).
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
        return {"kind": "parquet", "url": redact_url(self._url)}

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
            empty = True
            for batch in reader.iter_batches(batch_size=self._batch_rows):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                empty = False
                yield SourceBatch(frame, bytes_read=batch.nbytes)
            if empty:  # no rows (no row group): the version keeps the file's columns still
                frame = pl.from_arrow(reader.schema_arrow.empty_table())
                assert isinstance(frame, pl.DataFrame)
                yield SourceBatch(frame)


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


@dataclass(slots=True)
class SqlSource:
    """A table or a query over a SQLAlchemy URL, read in chunks of ``batch_rows``.

    Every chunk (and an empty result) gets its column types from the database, not from
    the values of the first chunk (see :func:`_sql_columns`): integers are Int64, a
    ``NUMERIC(p, s)`` is ``Decimal(p, s)`` (an unconstrained PostgreSQL NUMERIC is
    ``Decimal(38, 9)``, and a value it cannot hold exactly is an error asking for a cast,
    never rounded), JSON and JSONB are their JSON text, UUIDs text, timestamps with a time
    zone UTC. Where the database names no type (a SQLite query) the first chunk's values
    fix it, text if they are all NULL, and a later value that does not fit is an error.
    """

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
            "url": redact_url(self.url),
            **({"table": self.table} if self.table else {"query": self.query}),
        }

    def _where(self) -> str:
        return f"The SQL source {redact_url(self.url)!r}" + (
            f" (table {self.table!r})" if self.table else ""
        )

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
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
            raise InvalidInputError(
                f"Cannot use the SQL URL {redact_url(self.url)!r}: {exc}"
            ) from exc
        try:
            with engine.connect().execution_options(stream_results=True) as conn:
                _json_as_text(conn)
                table: Any = None
                if self.table is not None:
                    try:
                        table = Table(self.table, MetaData(), autoload_with=conn)
                    except SQLAlchemyError as exc:
                        raise NotFoundError(
                            f"Table {self.table!r} does not exist at {redact_url(self.url)!r}.",
                            table=self.table,
                        ) from exc
                    result = conn.execute(select(table))
                else:
                    result = conn.execute(text(_as_written(str(self.query))))
                try:  # closed here, also when a value is refused: a server-side cursor
                    columns = _sql_columns(conn, result, table if self.table else None)
                    empty = True
                    for rows in result.partitions(self.batch_rows):
                        frame = _sql_frame(rows, columns, self._where(), self.batch_rows, empty)
                        if empty:  # the first chunk fixed the types the database did not give
                            columns = [c.settled(frame[c.name].dtype) for c in columns]
                            frame = frame.cast({c.name: c.dtype for c in columns if c.dtype})
                        empty = False
                        yield SourceBatch(frame)
                    if empty:
                        yield SourceBatch(_sql_frame([], columns, self._where(), 0, True))
                finally:
                    result.close()
        except SQLAlchemyError as exc:
            raise StorageError(
                f"The SQL source {redact_url(self.url)!r} failed: {str(exc)[:300]}"
            ) from exc
        finally:
            engine.dispose()


#: Polars' widest Decimal. A NUMERIC declared wider, or declared without a precision (in
#: PostgreSQL), is read as ``Decimal(38, scale)``; every value is checked to fit it exactly.
_MAX_PRECISION = 38
#: The least scale of PostgreSQL's unconstrained NUMERIC (no declared precision and scale, as
#: ``x::numeric``, ``sum(bigint)`` or ``avg(x)`` give): nine places, or more when the first
#: chunk's values have more (``avg`` gives 16), so whole numbers first and fractions later
#: still fit. A later value with more places is an error asking for a cast, never rounded.
_UNCONSTRAINED_SCALE = 9

#: PostgreSQL type OIDs (pg_type) whose Polars type does not depend on the values.
_PG_TYPES: dict[int, tuple[str, str]] = {
    16: ("Boolean", ""),
    20: ("Int64", ""),
    21: ("Int64", ""),
    23: ("Int64", ""),
    26: ("Int64", ""),
    700: ("Float64", ""),
    701: ("Float64", ""),
    18: ("String", ""),
    19: ("String", ""),
    25: ("String", ""),
    1042: ("String", ""),
    1043: ("String", ""),
    114: ("String", "json"),
    3802: ("String", "json"),
    2950: ("String", "text"),
    1082: ("Date", ""),
    1083: ("Time", ""),
    1114: ("Datetime", ""),
    1184: ("Datetime", "utc"),
    1186: ("Duration", ""),
    17: ("Binary", ""),
}

#: MySQL/MariaDB field type codes (pymysql ``FIELD_TYPE``) to Polars types; text types with
#: the binary character set (63) are bytes.
_MYSQL_TYPES: dict[int, tuple[str, str]] = {
    1: ("Int64", ""),
    2: ("Int64", ""),
    3: ("Int64", ""),
    8: ("Int64", ""),
    9: ("Int64", ""),
    13: ("Int64", ""),
    4: ("Float64", ""),
    5: ("Float64", ""),
    7: ("Datetime", ""),
    12: ("Datetime", ""),
    10: ("Date", ""),
    14: ("Date", ""),
    11: ("Duration", ""),
    16: ("Binary", ""),
    245: ("String", "json"),
    247: ("String", ""),
    248: ("String", ""),
    15: ("String", ""),
    249: ("String", ""),
    250: ("String", ""),
    251: ("String", ""),
    252: ("String", ""),
    253: ("String", ""),
    254: ("String", ""),
}


@dataclass(frozen=True, slots=True)
class _SqlColumn:
    """How one result column becomes a Polars column.

    ``dtype`` comes from the column's database type, so it is the same for every chunk
    (a chunk whose values are all NULL, or all whole numbers in a NUMERIC(10,2), types
    nothing). ``dtype`` is None only where the database does not say (SQLite queries, a
    type this adapter does not map): the first chunk's values fix it then, and later chunks
    must fit it. ``convert``: ``"json"`` keeps JSON as its text, ``"text"`` reads the value
    as ``str`` (UUIDs), ``"decimal"`` checks each value fits the Decimal exactly, ``"utc"``
    is a timestamp with time zone (read as UTC).
    """

    name: str
    declared: str
    dtype: pl.DataType | None = None
    convert: str = ""

    def settled(self, dtype: pl.DataType) -> _SqlColumn:
        """This column with the type the first chunk gave it, if the database gave none."""
        import polars as pl

        if self.dtype is not None:
            return self
        if self.convert == "decimal":  # an unconstrained NUMERIC: see _UNCONSTRAINED_SCALE
            first = (dtype.scale or 0) if isinstance(dtype, pl.Decimal) else 0
            scale = min(max(first, _UNCONSTRAINED_SCALE), _MAX_PRECISION)
            return _SqlColumn(
                self.name, self.declared, pl.Decimal(_MAX_PRECISION, scale), "decimal"
            )
        if dtype == pl.Null:  # NULL throughout the first chunk, and no type: text
            return _SqlColumn(self.name, self.declared, pl.String(), "unknown")
        return _SqlColumn(self.name, self.declared, dtype)


def _polars_type(name: str, convert: str) -> pl.DataType:
    import polars as pl

    if name == "Datetime":
        return pl.Datetime("us", "UTC" if convert == "utc" else None)
    if name == "Duration":
        return pl.Duration("us")
    dtype: pl.DataType = getattr(pl, name)()
    return dtype


def _decimal_column(
    name: str, declared: str, precision: int | None, scale: int | None
) -> _SqlColumn:
    import polars as pl

    if precision is None:  # the first chunk's values give the scale (see _SqlColumn.settled)
        return _SqlColumn(name, declared, None, "decimal")
    scale = min(max(scale or 0, 0), _MAX_PRECISION)
    precision = min(max(precision, scale, 1), _MAX_PRECISION)
    return _SqlColumn(name, declared, pl.Decimal(precision, scale), "decimal")


def _as_written(query: str) -> str:
    """``query`` for SQLAlchemy's ``text()`` with no bind parameters: every ``:`` escaped, so
    a JSON literal ``'{"a":1}'`` or ``'x :y'`` is sent as written. A ``\\:`` already escaped
    the way ``text()`` asks is sent as ``:`` too (as before), not as a backslash and a colon."""
    return query.replace("\\:", ":").replace(":", "\\:")


def _json_as_text(conn: Any) -> None:
    """Have psycopg hand JSON and JSONB over as the database's text, not parsed: parsing
    then dumping again would turn ``1.10`` into ``1.1`` and big numbers into floats."""
    if conn.dialect.name != "postgresql":
        return
    try:
        from psycopg.types.json import set_json_loads
    except ImportError:  # another PostgreSQL driver: JSON is dumped back (see _sql_series)
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None:
        set_json_loads(lambda data: data if isinstance(data, str) else bytes(data).decode(), dbapi)


def _sql_columns(conn: Any, result: Any, table: Any) -> list[_SqlColumn]:
    """The Polars type of each result column, from the database's type of it.

    PostgreSQL and MySQL/MariaDB describe a result's column types (with a NUMERIC's
    precision and scale) for a table and a query alike; elsewhere (SQLite) a table's
    reflected column types are used, and a query's columns take their types from the first
    chunk (see :class:`_SqlColumn`).
    """
    names = list(result.keys())
    dialect = conn.dialect.name
    description = getattr(getattr(result, "cursor", None), "description", None) or ()
    columns: list[_SqlColumn] = []
    if dialect == "postgresql" and len(description) == len(names):
        for name, column in zip(names, description, strict=True):
            columns.append(_pg_column(name, column))
        return columns
    if dialect in ("mysql", "mariadb") and len(description) == len(names):
        fields = getattr(getattr(result.cursor, "_result", None), "fields", None) or ()
        for index, (name, column) in enumerate(zip(names, description, strict=True)):
            field_ = fields[index] if index < len(fields) else None
            columns.append(_mysql_column(name, column, field_))
        return columns
    reflected = {c.name: c.type for c in table.columns} if table is not None else {}
    return [_reflected_column(name, reflected.get(name)) for name in names]


def _pg_column(name: str, column: Any) -> _SqlColumn:
    oid = int(getattr(column, "type_code", 0) or 0)
    declared = str(getattr(column, "type_display", "") or f"oid {oid}")
    if oid == 1700:  # numeric; precision and scale come from the declared typmod, if any
        return _decimal_column(name, declared, column.precision, column.scale)
    if oid in _PG_TYPES:
        type_name, convert = _PG_TYPES[oid]
        return _SqlColumn(name, declared, _polars_type(type_name, convert), convert)
    return _SqlColumn(name, declared)


def _mysql_column(name: str, column: Any, field_: Any) -> _SqlColumn:
    import polars as pl

    code, length, scale = int(column[1]), int(column[3] or 0), int(column[5] or 0)
    declared = f"MySQL type {code}"
    unsigned = bool(getattr(field_, "flags", 0) & 32)
    if code in (0, 246):  # DECIMAL: the display length counts the point (and the sign)
        return _decimal_column(name, "DECIMAL", max(length - (1 if scale else 0), 1), scale)
    if code == 8 and unsigned:
        return _SqlColumn(name, "BIGINT UNSIGNED", pl.UInt64())
    if code in _MYSQL_TYPES:
        type_name, convert = _MYSQL_TYPES[code]
        if type_name == "String" and getattr(field_, "charsetnr", None) == 63 and code != 245:
            return _SqlColumn(name, declared, pl.Binary())
        if type_name == "String" and field_ is None and code != 245:
            return _SqlColumn(name, declared)  # text or bytes: the values will say
        return _SqlColumn(name, declared, _polars_type(type_name, convert), convert)
    return _SqlColumn(name, declared)


def _reflected_column(name: str, sql_type: Any) -> _SqlColumn:
    """A column typed from its reflected SQLAlchemy type (None: not reflected)."""
    import polars as pl
    from sqlalchemy import types as sa

    if sql_type is None:
        return _SqlColumn(name, "unknown")
    declared = str(sql_type)
    if isinstance(sql_type, sa.Boolean):
        return _SqlColumn(name, declared, pl.Boolean())
    if isinstance(sql_type, sa.Integer):
        return _SqlColumn(name, declared, pl.Int64())
    if isinstance(sql_type, sa.Float):
        return _SqlColumn(name, declared, pl.Float64())
    if isinstance(sql_type, sa.Numeric):
        return _decimal_column(name, declared, sql_type.precision, sql_type.scale)
    if isinstance(sql_type, sa.JSON):
        return _SqlColumn(name, declared, pl.String(), "json")
    if isinstance(sql_type, sa.Uuid):
        return _SqlColumn(name, declared, pl.String(), "text")
    if isinstance(sql_type, sa.String):  # Text, Enum, VARCHAR …
        return _SqlColumn(name, declared, pl.String())
    if isinstance(sql_type, sa.DateTime):
        utc = bool(getattr(sql_type, "timezone", False))
        return _SqlColumn(name, declared, pl.Datetime("us", "UTC" if utc else None))
    if isinstance(sql_type, sa.Date):
        return _SqlColumn(name, declared, pl.Date())
    if isinstance(sql_type, sa.Time):
        return _SqlColumn(name, declared, pl.Time())
    if isinstance(sql_type, sa.Interval):
        return _SqlColumn(name, declared, pl.Duration("us"))
    if isinstance(sql_type, sa.LargeBinary):
        return _SqlColumn(name, declared, pl.Binary())
    return _SqlColumn(name, declared)


def _decimal_fits(value: Any, precision: int, scale: int) -> bool:
    """Whether a ``decimal.Decimal`` is held exactly by ``Decimal(precision, scale)``
    (Polars would round it, or fail, silently or not)."""
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # NaN, Infinity
        return False
    kept = len(digits)
    while kept > 1 and digits[kept - 1] == 0 and exponent < -scale:  # trailing zeros
        kept -= 1
        exponent += 1
    if exponent < -scale:
        return False
    if not any(digits):
        return True
    return kept + exponent <= precision - scale


def _sql_series(column: _SqlColumn, values: Sequence[Any], where: str, batch_rows: int) -> Any:
    """One chunk's values of ``column`` as a Polars Series of its type, or a clear error."""
    import json
    from decimal import Decimal

    import polars as pl

    dtype = column.dtype
    data: list[Any] = list(values)
    if column.convert == "json":
        data = [v if v is None or isinstance(v, str) else json.dumps(v) for v in data]
    elif column.convert == "text":
        data = [None if v is None else str(v) for v in data]
    elif column.convert == "decimal" and isinstance(dtype, pl.Decimal):
        exact = _exact_decimals(column.name, data, dtype)
        if exact is not None:
            return exact
        precision, scale = dtype.precision or _MAX_PRECISION, dtype.scale
        for index, value in enumerate(data):
            if value is None:
                continue
            if not isinstance(value, Decimal):
                value = data[index] = Decimal(str(value))
            if not _decimal_fits(value, precision, scale):
                raise InvalidInputError(
                    f"{where}: column {column.name!r} ({column.declared}) holds {value}, which "
                    f"Decimal({precision}, {scale}) cannot hold exactly (at most "
                    f"{precision - scale} digits before the point and {scale} after; NaN and "
                    "infinities are none). Cast it in the query to a NUMERIC(p, s) with p "
                    "at most 38 that fits it, or to text.",
                    column=column.name,
                )
    if dtype is None:  # the database said nothing: the values do (first chunk only)
        try:
            return pl.Series(column.name, data, strict=False)
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
            raise InvalidInputError(
                f"{where}: column {column.name!r} mixes values Polars cannot put in one "
                f"column ({str(exc)[:200]}). Cast it in the query.",
                column=column.name,
            ) from exc
    try:
        return pl.Series(column.name, data, dtype=dtype, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
        bad = next((v for v in data if v is not None and not _fits(v, dtype)), None)
        why = (
            f"was NULL in every one of the first {batch_rows} rows and its database type "
            "is unknown, so it was read as text"
            if column.convert == "unknown"
            else f"is read as {dtype} ({column.declared})"
        )
        raise InvalidInputError(
            f"{where}: column {column.name!r} {why}, and holds {bad!r:.60} which does not "
            "fit. Cast the column in the query (for example CAST(x AS TEXT)).",
            column=column.name,
        ) from exc


def _exact_decimals(name: str, data: list[Any], dtype: pl.Decimal) -> pl.Series | None:
    """The values as ``dtype`` when Polars shows that nothing is lost, without a look at each
    value in Python: read at their own largest scale (exact), no more places than ``dtype``
    keeps (widening the scale is exact), and a strict cast refuses too many digits. None
    when that cannot be shown (more places, trailing zeros, mixed values): the caller checks
    value by value and names the one that does not fit."""
    import polars as pl

    try:
        exact = pl.Series(name, data, strict=False)
        if exact.dtype == pl.Null:
            return exact.cast(dtype)
        if not isinstance(exact.dtype, pl.Decimal) or (exact.dtype.scale or 0) > (dtype.scale or 0):
            return None
        return exact.cast(dtype, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        return None


def _fits(value: Any, dtype: Any) -> bool:
    import polars as pl

    try:
        pl.Series([value], dtype=dtype, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        return False
    return True


def _sql_frame(
    rows: Sequence[Any], columns: list[_SqlColumn], where: str, batch_rows: int, first: bool
) -> pl.DataFrame:
    """One chunk of rows as a frame of the columns' types (an empty one keeps them too)."""
    import polars as pl

    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInputError(
            f"{where}: the result has several columns named {twice}; give them distinct "
            "names in the query (AS ...).",
        )
    if not rows:
        return pl.DataFrame(
            {c.name: pl.Series(c.name, [], dtype=c.dtype or pl.String()) for c in columns}
        )
    values = list(zip(*rows, strict=True))
    return pl.DataFrame(
        [
            _sql_series(column, values[index], where, batch_rows)
            for index, column in enumerate(columns)
        ]
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
