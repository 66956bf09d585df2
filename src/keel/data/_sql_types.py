"""How the columns and values of a SQL result become Polars columns (see ``_sql`` for the
source and the canonical types it promises): each column's type from the database's type of
it, and each chunk's values checked to fit it exactly — refused with the column, its type and
the cast to add, never rounded or guessed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from keel.data._frames import holds_objects
from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Reading", "SqlColumn", "pg_column", "sql_columns", "sql_frame"]


@dataclass(frozen=True, slots=True)
class Reading:
    """Where the rows come from, for messages: the source, its SQL dialect, the chunk size."""

    where: str
    dialect: str
    batch_rows: int

    @property
    def text_type(self) -> str:
        """The type to CAST to for text in this dialect's SQL."""
        return "CHAR" if self.dialect in ("mysql", "mariadb") else "text"


#: Polars' widest Decimal. A NUMERIC declared wider, or declared without a precision (in
#: PostgreSQL), is read as ``Decimal(38, scale)``; every value is checked to fit it exactly.
_MAX_PRECISION = 38
#: The least scale of PostgreSQL's unconstrained NUMERIC (no declared precision and scale, as
#: ``x::numeric``, ``sum(bigint)`` or ``avg(x)`` give): nine places, or more when the first
#: chunk's values have more (``avg`` gives 16), so whole numbers first and fractions later
#: still fit. A later value with more places is an error asking for a cast, never rounded.
_UNCONSTRAINED_SCALE = 9

#: PostgreSQL type OIDs (pg_type) to Polars types, conversions and the OID of their array type
#: (0: none read as a List).
_PG_TYPES: dict[int, tuple[str, str, int]] = {
    16: ("Boolean", "", 1000),
    20: ("Int64", "", 1016),
    21: ("Int64", "", 1005),
    23: ("Int64", "", 1007),
    26: ("Int64", "", 1028),
    700: ("Float64", "", 1021),
    701: ("Float64", "", 1022),
    18: ("String", "", 1002),
    19: ("String", "", 1003),
    25: ("String", "", 1009),
    1042: ("String", "", 1014),
    1043: ("String", "", 1015),
    114: ("String", "json", 199),
    3802: ("String", "json", 3807),
    2950: ("String", "text", 2951),  # uuid, its elements too, as text
    1082: ("Date", "", 1182),
    1083: ("Time", "", 1183),
    1266: ("Time", "utc_time", 1270),  # timetz
    1114: ("Datetime", "", 1115),
    1184: ("Datetime", "utc", 1185),
    1186: ("Duration", "", 1187),
    17: ("Binary", "", 1001),
    1560: ("String", "", 1561),  # bit(n), as psycopg hands it over: '101'
    1562: ("String", "", 1563),  # varbit
}

#: PostgreSQL array type OIDs to their element's OID: an array is a (nested) Polars List of
#: its element's type, whatever its values.
_PG_ARRAYS: dict[int, int] = {1231: 1700} | {a: oid for oid, (_, _, a) in _PG_TYPES.items() if a}

#: MySQL/MariaDB field type codes (pymysql ``FIELD_TYPE``) to their SQL name, Polars type and
#: conversion; text types with the binary character set (63) are bytes.
_MYSQL_TYPES: dict[int, tuple[str, str, str]] = {
    1: ("TINYINT", "Int64", ""),
    2: ("SMALLINT", "Int64", ""),
    3: ("INT", "Int64", ""),
    8: ("BIGINT", "Int64", ""),
    9: ("MEDIUMINT", "Int64", ""),
    13: ("YEAR", "Int64", ""),
    4: ("FLOAT", "Float64", ""),
    5: ("DOUBLE", "Float64", ""),
    7: ("TIMESTAMP", "Datetime", "utc"),  # read in a session at +00:00 (see _sql)
    12: ("DATETIME", "Datetime", ""),
    10: ("DATE", "Date", ""),
    14: ("DATE", "Date", ""),
    11: ("TIME", "Duration", ""),
    16: ("BIT", "Binary", ""),
    245: ("JSON", "String", "json"),
    247: ("ENUM", "String", ""),
    248: ("SET", "String", ""),
    15: ("VARCHAR", "String", ""),
    249: ("TINYBLOB/TINYTEXT", "String", ""),
    250: ("MEDIUMBLOB/MEDIUMTEXT", "String", ""),
    251: ("LONGBLOB/LONGTEXT", "String", ""),
    252: ("BLOB/TEXT", "String", ""),
    253: ("VARCHAR", "String", ""),
    254: ("CHAR", "String", ""),
    255: ("GEOMETRY", "Binary", ""),  # the server's WKB bytes
}


@dataclass(frozen=True, slots=True)
class SqlColumn:
    """How one result column becomes a Polars column.

    ``dtype`` comes from the column's database type, so it is the same for every chunk
    (a chunk whose values are all NULL, or all whole numbers in a NUMERIC(10,2), types
    nothing). Two things a declaration leaves open are settled by the first chunk (see
    :meth:`declared_by`), and later chunks must fit them: the scale of an unconstrained
    PostgreSQL NUMERIC, and the dimensions of a PostgreSQL ``array`` (``int[]`` and
    ``int[][]`` are one type), whose ``element`` type is declared. ``dtype`` is None where the
    database does not say (SQLite queries, a type this adapter does not map): the first
    chunk's values type the column then (see :meth:`settled`). ``convert``, applied to an
    array's elements too: ``"json"`` keeps JSON as its text, ``"text"`` reads the value as
    ``str`` (UUIDs), ``"decimal"`` checks each value fits the Decimal exactly, ``"utc"`` is a
    timestamp with time zone (read as UTC), ``"utc_time"`` a time with time zone (its time
    of day in UTC).
    """

    name: str
    declared: str
    dtype: pl.DataType | None = None
    convert: str = ""
    array: bool = False
    element: pl.DataType | None = None

    def declared_by(self, values: Sequence[Any]) -> SqlColumn:
        """This column with what its declaration leaves open settled by ``values``, the first
        chunk's (none for a result of no row): an unconstrained NUMERIC's scale (see
        :func:`_decimal_type`), in an array too, and an array's dimensions, those of the first
        array with an element (PostgreSQL's ``'{}'`` has none), one if no array has one."""
        import polars as pl

        if self.dtype is not None or not (self.array or self.convert == "decimal"):
            return self
        if not self.array:
            return replace(self, dtype=_decimal_type(values))
        element = self.element if self.element is not None else _decimal_type(_leaves(values))
        dtype: pl.DataType = element
        for _ in range(next((d for d in map(_dimensions, values) if d), 1)):
            dtype = pl.List(dtype)
        return replace(self, dtype=dtype, element=element)

    def settled(self, dtype: pl.DataType) -> SqlColumn:
        """This column with the type the first chunk gave it, if the database gave none: text
        if that chunk was all NULL, and any time zone in it UTC (values of a type this adapter
        does not map may come in the session's zone, which must not make a different type)."""
        import polars as pl

        if self.dtype is not None:
            return self
        if dtype == pl.Null:  # NULL throughout the first chunk, and no type: text
            return replace(self, dtype=pl.String(), convert="unknown")
        return replace(self, dtype=_utc_zones(dtype))


def _leaves(values: Sequence[Any]) -> list[Any]:
    """The elements of ``values`` and of the arrays (lists) among them, nested too."""
    return [e for v in values for e in (_leaves(v) if isinstance(v, list) else (v,))]


def _dimensions(value: Any) -> int:
    """The dimensions of an array (a list, nested once a dimension; PostgreSQL's are
    rectangular); 0 for NULL and for an empty array, which shows none."""
    dimensions = 0
    while isinstance(value, list) and value:
        dimensions += 1
        value = value[0]
    return dimensions


def _utc_zones(dtype: Any) -> Any:
    """``dtype`` with every time zone in it (nested too) made UTC: the same instants."""
    import polars as pl

    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return pl.Datetime(dtype.time_unit, "UTC")
    if isinstance(dtype, pl.List):
        return pl.List(_utc_zones(dtype.inner))
    if isinstance(dtype, pl.Array):
        return pl.Array(_utc_zones(dtype.inner), dtype.shape)
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: _utc_zones(f.dtype) for f in dtype.fields})
    return dtype


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
) -> SqlColumn:
    import polars as pl

    if precision is None:  # the first chunk's values give the scale (see _decimal_type)
        return SqlColumn(name, declared, None, "decimal")
    scale = min(max(scale or 0, 0), _MAX_PRECISION)
    precision = min(max(precision, scale, 1), _MAX_PRECISION)
    return SqlColumn(name, declared, pl.Decimal(precision, scale), "decimal")


def sql_columns(conn: Any, result: Any, table: Any) -> list[SqlColumn]:
    """The Polars type of each result column, from the database's type of it.

    PostgreSQL and MySQL/MariaDB describe a result's column types (with a NUMERIC's
    precision and scale) for a table and a query alike; elsewhere (SQLite) a table's
    reflected column types are used, and a query's columns take their types from the first
    chunk (see :class:`SqlColumn`).
    """
    names = list(result.keys())
    dialect = conn.dialect.name
    description = getattr(getattr(result, "cursor", None), "description", None) or ()
    columns: list[SqlColumn] = []
    if dialect == "postgresql" and len(description) == len(names):
        for name, column in zip(names, description, strict=True):
            columns.append(pg_column(name, column))
        return columns
    if dialect in ("mysql", "mariadb") and len(description) == len(names):
        fields = getattr(getattr(result.cursor, "_result", None), "fields", None) or ()
        for index, (name, column) in enumerate(zip(names, description, strict=True)):
            field_ = fields[index] if index < len(fields) else None
            columns.append(_mysql_column(name, column, field_))
        return columns
    reflected = {c.name: c.type for c in table.columns} if table is not None else {}
    return [_reflected_column(name, reflected.get(name)) for name in names]


def pg_column(name: str, column: Any) -> SqlColumn:
    """A PostgreSQL result column typed from its type OID; an array of a mapped element type
    is an array of it, whatever its values (see :class:`SqlColumn`)."""
    oid = int(getattr(column, "type_code", 0) or 0)
    declared = str(getattr(column, "type_display", "") or f"oid {oid}")
    element = _PG_ARRAYS.get(oid)
    if element is None:
        return _pg_scalar(name, declared, oid, column)
    typed = _pg_scalar(name, declared, element, column)
    return replace(typed, dtype=None, array=True, element=typed.dtype)


def _pg_scalar(name: str, declared: str, oid: int, column: Any) -> SqlColumn:
    if oid == 1700:  # numeric; precision and scale come from the declared typmod, if any
        return _decimal_column(name, declared, column.precision, column.scale)
    if oid in _PG_TYPES:
        type_name, convert, _array = _PG_TYPES[oid]
        return SqlColumn(name, declared, _polars_type(type_name, convert), convert)
    return SqlColumn(name, declared)


def _mysql_column(name: str, column: Any, field_: Any) -> SqlColumn:
    import polars as pl

    code, length, scale = int(column[1]), int(column[3] or 0), int(column[5] or 0)
    flags = int(getattr(field_, "flags", 0) or 0)
    unsigned = bool(flags & 32)
    if code in (0, 246):
        # DECIMAL(p, s): the display length counts the point and, if signed, the sign. With
        # no field flags the sign is not known, and the wider precision is taken.
        signed = field_ is not None and not unsigned
        precision = max(length - (1 if scale else 0) - (1 if signed else 0), 1)
        declared = f"DECIMAL({precision},{scale})" + ("" if signed else " UNSIGNED")
        return _decimal_column(name, declared, precision, scale)
    if code == 8 and unsigned:
        return SqlColumn(name, "BIGINT UNSIGNED", pl.UInt64())
    if code in _MYSQL_TYPES:
        declared, type_name, convert = _MYSQL_TYPES[code]
        if type_name == "String" and getattr(field_, "charsetnr", None) == 63 and code != 245:
            return SqlColumn(name, declared, pl.Binary())
        if type_name == "String" and field_ is None and code != 245:
            return SqlColumn(name, declared)  # text or bytes: the values will say
        return SqlColumn(name, declared, _polars_type(type_name, convert), convert)
    return SqlColumn(name, f"MySQL type {code}")


def _reflected_column(name: str, sql_type: Any) -> SqlColumn:
    """A column typed from its reflected SQLAlchemy type (None: not reflected)."""
    import polars as pl
    from sqlalchemy import types as sa

    if sql_type is None:
        return SqlColumn(name, "unknown")
    declared = str(sql_type)
    if isinstance(sql_type, sa.Boolean):
        return SqlColumn(name, declared, pl.Boolean())
    if isinstance(sql_type, sa.Integer):
        return SqlColumn(name, declared, pl.Int64())
    if isinstance(sql_type, sa.Float):
        return SqlColumn(name, declared, pl.Float64())
    if isinstance(sql_type, sa.Numeric):
        return _decimal_column(name, declared, sql_type.precision, sql_type.scale)
    if isinstance(sql_type, sa.JSON):
        return SqlColumn(name, declared, pl.String(), "json")
    if isinstance(sql_type, sa.Uuid):
        return SqlColumn(name, declared, pl.String(), "text")
    if isinstance(sql_type, sa.String):  # Text, Enum, VARCHAR …
        return SqlColumn(name, declared, pl.String())
    if isinstance(sql_type, sa.DateTime):
        utc = bool(getattr(sql_type, "timezone", False))
        return SqlColumn(name, declared, pl.Datetime("us", "UTC" if utc else None))
    if isinstance(sql_type, sa.Date):
        return SqlColumn(name, declared, pl.Date())
    if isinstance(sql_type, sa.Time):
        return SqlColumn(name, declared, pl.Time())
    if isinstance(sql_type, sa.Interval):
        return SqlColumn(name, declared, pl.Duration("us"))
    if isinstance(sql_type, sa.LargeBinary):
        return SqlColumn(name, declared, pl.Binary())
    return SqlColumn(name, declared)


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


def _decimal_type(values: Sequence[Any]) -> pl.Decimal:
    """The type of an unconstrained NUMERIC from its first chunk: ``Decimal(38, s)``, ``s``
    the values' largest scale and at least nine (see ``_UNCONSTRAINED_SCALE``), nine for a
    chunk of NULLs and for no chunk at all (a result of no row). Worked out
    here, not by Polars, which keeps a value of more than 38 digits as a Python object."""
    import polars as pl

    scale = _UNCONSTRAINED_SCALE
    for value in values:
        exponent = value.as_tuple().exponent if value is not None else 0
        if isinstance(exponent, int) and -exponent > scale:
            scale = -exponent
    return pl.Decimal(_MAX_PRECISION, min(scale, _MAX_PRECISION))


def _not_finite(values: Sequence[Any]) -> Any:
    """The first NaN or infinite ``Decimal`` among ``values`` (or in their lists), else None.
    Polars panics on one (a ``BaseException``), so it is found before Polars sees it."""
    from decimal import Decimal

    for value in values:
        if isinstance(value, list):
            found = _not_finite(value)
            if found is not None:
                return found
        elif isinstance(value, Decimal) and not value.is_finite():
            return value
    return None


def _refuse_decimal(column: SqlColumn, value: Any, dtype: Any, reading: Reading) -> None:
    """Refuse ``value`` of ``column`` (an element of it, for an array) that ``dtype`` cannot
    hold exactly."""
    precision, scale = dtype.precision or _MAX_PRECISION, dtype.scale or 0
    array = "[]" if column.array else ""
    fix = (
        f"CAST({column.name} AS double precision{array}) keeps NaN and infinities as floats"
        if not value.is_finite()
        else f"CAST it to a NUMERIC(p, s){array} with p at most {_MAX_PRECISION} that fits it"
    )
    raise InvalidInputError(
        f"{reading.where}: column {column.name!r} ({column.declared}) holds {value}, which "
        f"Decimal({precision}, {scale}) cannot hold exactly (at most "
        f"{precision - scale} digits before the point and {scale} after; NaN and "
        f"infinities are none). In the query, {fix}, or CAST({column.name} AS "
        f"{reading.text_type}).",
        column=column.name,
    )


def _utc_time(value: Any) -> Any:
    """A ``timetz`` value (or a list of them) as its time of day in UTC, without a zone."""
    from datetime import date, datetime, time

    if isinstance(value, list):
        return [_utc_time(v) for v in value]
    offset = value.utcoffset() if isinstance(value, time) else None
    if offset is None:
        return value
    moment = datetime.combine(date(2000, 1, 1), value.replace(tzinfo=None))
    return (moment - offset).time()


def _sql_series(column: SqlColumn, values: Sequence[Any], reading: Reading) -> pl.Series:
    """One chunk's values of ``column`` as a Polars Series of its type, or a clear error."""
    import json
    from decimal import Decimal

    import polars as pl

    dtype: Any = column.dtype
    data: list[Any] = list(values)
    if column.array:
        data = _array_values(column, data, reading)
    elif column.convert == "json":
        data = [v if v is None or isinstance(v, str) else json.dumps(v) for v in data]
    elif column.convert == "text":
        data = [None if v is None else str(v) for v in data]
    elif column.convert == "utc_time":
        data = [_utc_time(v) for v in data]
    elif column.convert == "decimal":
        data = [v if v is None or isinstance(v, Decimal) else Decimal(str(v)) for v in data]
        bad = _not_finite(data)
        dtype = dtype if dtype is not None else _decimal_type(data)
        if bad is not None:
            _refuse_decimal(column, bad, dtype, reading)
        exact = _exact_decimals(column.name, data, dtype)
        if exact is not None:
            return exact
        precision, scale = dtype.precision or _MAX_PRECISION, dtype.scale or 0
        for value in data:
            if value is not None and not _decimal_fits(value, precision, scale):
                _refuse_decimal(column, value, dtype, reading)
        return pl.Series(column.name, data, dtype=dtype, strict=True)
    if dtype is None or isinstance(dtype, pl.List | pl.Array | pl.Struct):
        bad = _not_finite(data)  # a NaN in a numeric[]
        if bad is not None:
            raise InvalidInputError(
                f"{reading.where}: column {column.name!r} ({column.declared}) holds {bad}, "
                "which no Polars Decimal can hold. Cast it in the query, for example "
                f"CAST({column.name} AS {reading.text_type}).",
                column=column.name,
            )
    if dtype is None:  # the database said nothing: the values do (first chunk only)
        try:
            series = pl.Series(column.name, data, strict=False)
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
            raise InvalidInputError(
                f"{reading.where}: column {column.name!r} mixes values Polars cannot put in "
                f"one column ({str(exc)[:200]}). Cast it in the query.",
                column=column.name,
            ) from exc
        if holds_objects(series.dtype):
            sample = next(v for v in data if v is not None)
            raise InvalidInputError(
                f"{reading.where}: column {column.name!r} ({column.declared}) holds values "
                f"such as {sample!r:.60} that Polars can keep only as Python objects, which "
                f"no dataset can store. Cast it in the query, for example CAST({column.name} "
                f"AS {reading.text_type}).",
                column=column.name,
            )
        return series
    try:
        return pl.Series(column.name, data, dtype=dtype, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
        bad = next((v for v in data if v is not None and not _fits(v, dtype)), None)
        raise InvalidInputError(_misfit(column, bad, dtype, reading), column=column.name) from exc


def _array_values(column: SqlColumn, data: list[Any], reading: Reading) -> list[Any]:
    """One chunk's arrays of ``column`` with their elements converted (JSON as its text, a
    UUID as its text, a ``timetz`` as its UTC time of day) or, for a NUMERIC, each checked to
    fit exactly (Polars would round it in a List)."""
    import json

    if column.convert == "json":
        return [_elementwise(v, lambda e: e if isinstance(e, str) else json.dumps(e)) for v in data]
    if column.convert == "utc_time":
        return [_utc_time(v) for v in data]
    if column.convert == "text":
        return [_elementwise(v, str) for v in data]
    if column.convert == "decimal" and column.element is not None:
        element: Any = column.element
        precision, scale = element.precision or _MAX_PRECISION, element.scale or 0
        for value in _leaves(data):
            if (
                value is not None
                and value.is_finite()
                and not _decimal_fits(value, precision, scale)
            ):
                _refuse_decimal(column, value, element, reading)
    return data


def _elementwise(value: Any, convert: Any) -> Any:
    """An array (nested lists) with ``convert`` applied to each element that is not NULL."""
    if isinstance(value, list):
        return [_elementwise(v, convert) for v in value]
    return None if value is None else convert(value)


def _misfit(column: SqlColumn, value: Any, dtype: Any, reading: Reading) -> str:
    """The message for ``value`` that does not fit ``column``'s type ``dtype``."""
    import polars as pl

    cast = f"CAST({column.name} AS {reading.text_type})"
    shown, read, inner = _dimensions(value), 0, dtype
    while isinstance(inner, pl.List):
        read, inner = read + 1, inner.inner
    if column.array and shown and shown != read:
        return (
            f"{reading.where}: column {column.name!r} ({column.declared}) holds the "
            f"{shown}-dimensional array {value!r:.60}, and is read as {dtype}, with {read} "
            f"dimension{'s' if read > 1 else ''}: PostgreSQL declares none, so the first "
            f"array with an element in the first {reading.batch_rows} rows gives them (one "
            "if none has one). Read arrays of one shape, or cast the column in the query, "
            f"for example {cast}."
        )
    if column.convert == "unknown":
        why = (
            f"was NULL in every one of the first {reading.batch_rows} rows and its database "
            "type is unknown, so it was read as text"
        )
    else:
        why = f"is read as {dtype} ({column.declared})"
    if isinstance(value, str) and isinstance(dtype, pl.Date | pl.Datetime):
        return (  # MySQL's zero dates ('0000-00-00') and dates with a zero month or day
            f"{reading.where}: column {column.name!r} {why}, and holds {value!r:.40}, which is "
            "no date (a zero date, month or day). Make such values NULL or text in the query, "
            f"for example NULLIF({column.name}, '{value:.40}') or {cast}."
        )
    return (
        f"{reading.where}: column {column.name!r} {why}, and holds {value!r:.60} which does "
        f"not fit. Cast the column in the query (for example {cast})."
    )


def _exact_decimals(name: str, data: list[Any], dtype: pl.Decimal) -> pl.Series | None:
    """The values as ``dtype`` when Polars shows that nothing is lost, without a look at each
    value in Python: read at their own largest scale (exact), no more places than ``dtype``
    keeps (widening the scale is exact), and a strict cast refuses too many digits. None
    when that cannot be shown (more places, trailing zeros, mixed values): the caller checks
    value by value and names the one that does not fit. No value may be NaN or infinite."""
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


def sql_frame(rows: Sequence[Any], columns: list[SqlColumn], reading: Reading) -> pl.DataFrame:
    """One chunk of rows as a frame of the columns' types (an empty one keeps them too)."""
    import polars as pl

    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInputError(
            f"{reading.where}: the result has several columns named {twice}; give them "
            "distinct names in the query (AS ...).",
        )
    if not rows:
        return pl.DataFrame(
            {c.name: pl.Series(c.name, [], dtype=c.dtype or pl.String()) for c in columns}
        )
    values = list(zip(*rows, strict=True))
    return pl.DataFrame(
        [_sql_series(column, values[index], reading) for index, column in enumerate(columns)]
    )
