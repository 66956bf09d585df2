"""The SQL adapter: a table or a query over a SQLAlchemy URL, read in chunks, every chunk
typed from the database's own column types (PostgreSQL, MySQL/MariaDB, SQLite)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.data._sources import BlobSink, SourceBatch
from keel.errors import InvalidInputError, MissingDependencyError, NotFoundError, StorageError
from keel.settings import redact_url

if TYPE_CHECKING:
    import polars as pl

__all__ = ["SqlSource"]


@dataclass(slots=True)
class SqlSource:
    """A table or a query over a SQLAlchemy URL, read in chunks of ``batch_rows``.

    Every chunk (and an empty result) gets its column types from the database, not from
    the values of the first chunk (see :func:`_sql_columns`): integers are Int64, a
    ``NUMERIC(p, s)`` is ``Decimal(p, s)`` (an unconstrained PostgreSQL NUMERIC is
    ``Decimal(38, s)``, ``s`` the first chunk's largest scale and at least 9, and a value
    it cannot hold exactly is an error asking for a cast, never rounded), JSON and JSONB are
    their JSON text, UUIDs text, timestamps with a time zone UTC. Where the database names
    no type (a SQLite query) the first chunk's values fix it, text if they are all NULL, and
    a later value that does not fit is an error.
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
