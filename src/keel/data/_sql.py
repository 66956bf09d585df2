"""The SQL adapter: a table or a query over a SQLAlchemy URL, read in chunks, every chunk
typed from the database's own column types (PostgreSQL, MySQL/MariaDB, SQLite).

Dataset versions are content-addressed, so an unchanged table must read to the same bytes
whatever the session's settings. The canonical types:

- PostgreSQL ``timestamptz`` is ``Datetime(us, "UTC")``, in arrays (``timestamptz[]``) too,
  whatever the session's ``TimeZone`` (psycopg hands the values over in that zone, and Polars
  would put the zone in the column's type); ``timestamp`` (no time zone) is ``Datetime(us)``
  with no zone, the values as stored; ``timetz`` is ``Time``, the time of day in UTC
  (``12:00+02`` is ``10:00``); ``interval`` is ``Duration(us)`` (a month is 30 days, as
  PostgreSQL compares them). MySQL/MariaDB ``TIMESTAMP`` (an instant) is ``Datetime(us,
  "UTC")``, read in a session at ``time_zone = '+00:00'`` whatever the server's or the URL's
  zone; ``DATETIME`` (no zone) is ``Datetime(us)`` with no zone, as stored. (A query's own
  ``NOW()`` or ``FROM_UNIXTIME()`` therefore works in UTC too.)
- Every column's type is the database's declaration of it, also for a result of no row and a
  column NULL throughout the first chunk: a PostgreSQL array is a Polars List of its declared
  element type (``int[]`` Int64, ``numeric(10,2)[]`` Decimal(10, 2), ``jsonb[]`` each
  element's JSON text). Only what the declaration leaves open is taken from the first chunk,
  and a later chunk must fit it: an unconstrained NUMERIC's scale, and an array's dimensions
  (PostgreSQL declares none: the first array with an element gives them, one if none has).
- A table reads exactly as ``SELECT *`` of it would on PostgreSQL and MySQL/MariaDB (the
  driver's values, not SQLAlchemy's conversions of them): MySQL ``BIT`` is its bytes
  (``b + 0`` in a query for a number), ``ENUM`` and ``SET`` text, ``YEAR`` Int64, ``TIME``
  Duration, ``BIGINT UNSIGNED`` UInt64; PostgreSQL ``money`` is the server's text of it
  (``CAST(m AS numeric)`` for a number).
- Refused, never rounded, guessed or dropped, each with the column, its type and the cast to
  add: NUMERIC NaN and infinities and values a ``Decimal(38, s)`` cannot hold, PostgreSQL
  ``infinity`` dates and times and years outside 1-9999, MySQL zero dates (``0000-00-00``),
  values Polars can keep only as Python objects (``inet``, ranges, ``uuid[]`` …), and columns
  with the same name.

A read that stops before the end (a refused value, or a consumer that stops) closes its
server-side cursor. MySQL/MariaDB cannot stop a result once sent, so the query is first ended
with ``KILL QUERY`` from a second connection to the same server: closing the cursor then reads
what was already sent, not the rest of the table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from keel.data._sources import BlobSink, SourceBatch
from keel.data._sql_types import Reading, SqlColumn, pg_column, sql_columns, sql_frame
from keel.errors import InvalidInputError, MissingDependencyError, NotFoundError, StorageError
from keel.settings import redact_url

__all__ = ["SqlSource"]


@dataclass(slots=True)
class SqlSource:
    """A table or a query over a SQLAlchemy URL, read in chunks of ``batch_rows``.

    Every chunk (and an empty result) gets its column types from the database, not from
    the values of the first chunk (see :func:`sql_columns`): integers are Int64, a
    ``NUMERIC(p, s)`` is ``Decimal(p, s)`` (an unconstrained PostgreSQL NUMERIC is
    ``Decimal(38, s)``, ``s`` the first chunk's largest scale and at least 9, and a value
    it cannot hold exactly is an error asking for a cast, never rounded), JSON and JSONB are
    their JSON text, UUIDs text, timestamps with a time zone UTC, a PostgreSQL array a List
    of its element's type (see the module's docstring for every type). Where the database
    names no type (a SQLite query, a PostgreSQL type this adapter does not map) the first
    chunk's values fix it, text if they are all NULL, and a later value that does not fit
    is an error.
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
            from sqlalchemy import MetaData, Table, create_engine, text
            from sqlalchemy.exc import DBAPIError, SQLAlchemyError
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
                _mysql_in_utc(conn)
                session = _mysql_session(conn)
                table: Any = None
                if self.table is not None:
                    try:
                        table = Table(self.table, MetaData(), autoload_with=conn)
                    except SQLAlchemyError as exc:
                        raise NotFoundError(
                            f"Table {self.table!r} does not exist at {redact_url(self.url)!r}.",
                            table=self.table,
                        ) from exc
                    statement = _table_select(conn.dialect.name, table)
                else:
                    statement = text(_as_written(str(self.query)))
                reading = Reading(self._where(), conn.dialect.name, self.batch_rows)
                result: Any = None
                columns: list[SqlColumn] = []
                finished = False
                try:  # closed here, also when a value is refused: a server-side cursor
                    result = conn.execute(statement)  # SQLAlchemy reads the first row here
                    columns = sql_columns(conn, result, table)
                    yield from _read(result, columns, reading)
                    finished = True
                except DBAPIError as exc:
                    if not _unreadable_value(exc):
                        raise
                    found = columns or _pg_described(conn, statement)
                    raise _unreadable(exc, found, reading) from exc
                finally:
                    if result is not None:
                        if not finished and session is not None:
                            _end_mysql_query(engine, result, session)
                        result.close()
        except SQLAlchemyError as exc:
            raise StorageError(
                f"The SQL source {redact_url(self.url)!r} failed: {str(exc)[:300]}"
            ) from exc
        finally:
            engine.dispose()


def _read(result: Any, columns: list[SqlColumn], reading: Reading) -> Iterator[SourceBatch]:
    """The result's rows in chunks, the first chunk settling what the declared types leave
    open (see :class:`SqlColumn`) and typing the columns the database did not."""
    empty = True
    for rows in result.partitions(reading.batch_rows):
        if empty:
            values = list(zip(*rows, strict=True))
            columns[:] = [c.declared_by(values[i]) for i, c in enumerate(columns)]
        frame = sql_frame(rows, columns, reading)
        if empty:
            columns[:] = [c.settled(frame[c.name].dtype) for c in columns]
            frame = frame.cast({c.name: c.dtype for c in columns if c.dtype})
        empty = False
        yield SourceBatch(frame)
    if empty:
        columns[:] = [c.declared_by(()) for c in columns]
        yield SourceBatch(sql_frame([], columns, reading))


def _table_select(dialect: str, table: Any) -> Any:
    """``SELECT`` every column of the reflected ``table``. Where the database types the result
    (PostgreSQL, MySQL/MariaDB) its columns are untyped, so the driver's values arrive as a
    query's would: SQLAlchemy's reflected types would convert them first (MySQL ``BIT`` to
    int, ``SET`` to a Python set, ``TIME`` to a time of day, JSON parsed and dumped again).
    SQLite's reflected types are what read its text dates as dates, so they are kept there."""
    from sqlalchemy import column, select
    from sqlalchemy import table as plain_table

    if dialect not in ("postgresql", "mysql", "mariadb"):
        return select(table)
    plain = plain_table(table.name, *(column(c.name) for c in table.columns), schema=table.schema)
    return select(plain)


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


def _mysql_in_utc(conn: Any) -> None:
    """Put this MySQL/MariaDB session (the reading connection's, not the server's) at UTC, so
    that ``TIMESTAMP`` values, which the server stores as instants and shows in the session's
    ``time_zone``, arrive as the UTC instants whatever the server's or the URL's zone.
    ``DATETIME`` values have no zone and are sent as stored, at any ``time_zone``."""
    if conn.dialect.name in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET time_zone = '+00:00'")


#: The server a MySQL/MariaDB connection talks to, compared before a ``KILL QUERY``.
_MYSQL_SERVER = "@@hostname, @@port, @@server_id"


def _mysql_session(conn: Any) -> tuple[int, tuple[Any, ...]] | None:
    """This MySQL/MariaDB connection's id and server, if a ``KILL QUERY`` from a second
    connection can end its query safely: the id the server gives it is the one the driver
    was given at connect (no proxy that renumbers sessions in between). None elsewhere."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return None
    row = conn.exec_driver_sql(f"SELECT CONNECTION_ID(), {_MYSQL_SERVER}").one()
    thread_id = getattr(conn.connection.dbapi_connection, "thread_id", None)
    if not callable(thread_id) or int(thread_id()) != int(row[0]):
        return None
    return int(row[0]), tuple(row[1:])


def _end_mysql_query(engine: Any, result: Any, session: tuple[int, tuple[Any, ...]]) -> None:
    """End a MySQL/MariaDB query whose result will not be read to its end.

    The protocol has no way to stop a result: closing the cursor would read (and drop) every
    remaining row, the whole table after a refusal in its first chunk, and a connection used
    again before that warns "Previous unbuffered result was left incomplete". A ``KILL
    QUERY`` from a second connection to the same server ends the query instead; the cursor
    then reads what was already sent and the interruption's error, which is expected here.
    If the second connection fails, or reaches another server, the cursor reads to the end.
    """
    from sqlalchemy.exc import SQLAlchemyError

    thread_id, server = session
    try:
        with engine.connect() as other:
            if tuple(other.exec_driver_sql(f"SELECT {_MYSQL_SERVER}").one()) != server:
                return
            other.exec_driver_sql(f"KILL QUERY {int(thread_id)}")
    except SQLAlchemyError:
        return
    cursor = getattr(result, "cursor", None)
    if cursor is not None:
        with contextlib.suppress(engine.dialect.loaded_dbapi.Error):
            cursor.close()


def _unreadable_value(exc: Any) -> bool:
    """Whether ``exc`` is a value the driver could not read: psycopg raises DataError without
    a SQLSTATE (the server sent the value fine) for PostgreSQL's ``infinity`` dates and
    times, years outside 1-9999 and ``24:00`` times."""
    from sqlalchemy.exc import DataError

    return isinstance(exc, DataError) and getattr(exc.orig, "sqlstate", "") is None


def _pg_described(conn: Any, statement: Any) -> list[SqlColumn]:
    """The result columns of ``statement``, described by a server-side cursor that reads no
    row (SQLAlchemy reads the first row when it executes, so a value refused there leaves no
    description). Nothing if PostgreSQL cannot describe it."""
    dbapi = conn.connection.dbapi_connection
    try:
        with dbapi.cursor(name="keel_describe") as cursor:
            cursor.execute(str(statement.compile(dialect=conn.dialect)), {})
            return [pg_column(d.name, d) for d in cursor.description or ()]
    except conn.dialect.loaded_dbapi.Error:
        return []


def _unreadable(exc: Any, columns: list[SqlColumn], reading: Reading) -> InvalidInputError:
    """The error for a value the driver could not read (see :func:`_unreadable_value`),
    naming the columns of a date or time type, where such a value can be."""
    message = str(exc.orig)
    kind = next((k for k in ("timestamp", "interval", "date", "time") if k in message), "")
    every = {"date", "time", "timetz", "timestamp", "timestamptz", "interval"}
    kinds = {kind, kind + "tz"} if kind else every
    suspects = [c for c in columns if c.declared.split("(")[0].rstrip("[]") in kinds] or columns
    named = ", ".join(f"{c.name!r} ({c.declared})" for c in suspects[:5]) or "a column"
    col = suspects[0].name if len(suspects) == 1 else "col"
    return InvalidInputError(
        f"{reading.where}: a value of {named} cannot be read: {message[:120]}. PostgreSQL's "
        "'infinity', dates outside the years 1-9999 and the time 24:00 have no Python or "
        "Polars value: make them NULL or text in the query, for example "
        f"NULLIF({col}, 'infinity') or CAST({col} AS {reading.text_type}).",
        columns=[c.name for c in suspects],
    )
