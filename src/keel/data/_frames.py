"""Frames at the edges: a user's table becomes a Polars frame whose every column has a column
type, and a version read back as pandas keeps what it holds.

A pandas ``object`` column or a Polars ``Object`` one holds Python objects, with no column type.
Its values are converted the way Arrow converts them (as Polars' own ``from_pandas`` does), and
only where that is exact: text, bytes, booleans, whole numbers (Int128 or UInt64 when Int64 is
too small), floats (with whole numbers a float holds exactly), Decimals of at most 38 digits
(with whole numbers), dates, times, date-times (aware ones in several zones become UTC: the same
instants), durations, UUIDs (their 16 bytes, as Arrow does), and lists (tuples, sets, arrays) or
dicts whose values are such, dicts with the same keys in every row. Anything else — two kinds of
value in one column (``1`` and ``"x"``, a date and a date-time), a type no column holds, a value
the conversion would change (a date-time's time cut off, a nanosecond dropped, a key added to a
dict) — is refused with an ``InvalidInputError`` naming the column, the Python type and a value,
and how to fix it, before anything is stored. No value is turned into text by ``str()``.
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["arrow_to_polars", "holds_objects", "refuse_objects", "to_pandas", "to_polars"]

#: how to fix a column that cannot be stored, at the end of every such message
_FIX = (
    "Cast it to a supported type before ingesting (text, numbers, Decimal, bool, bytes, "
    "dates, times, date-times, durations, lists, or dicts with the same keys in every row), "
    "for example with .astype(...) in pandas or .cast(...) or .map_elements(..., "
    "return_dtype=...) in Polars."
)
#: Polars' widest Decimal
_MAX_DIGITS = 38
#: kinds of value whose Arrow conversion is exact or fails: no value-by-value check needed
_EXACT = frozenset({"text", "bytes", "bool", "int", "float", "decimal", "date", "uuid"})
#: values read back from Arrow at a time, to check that they are the values given
_CHECKED_ROWS = 10_000
#: kinds of value one column may mix: Arrow refuses a whole number a float cannot hold exactly,
#: and a whole number is exact in a Decimal
_MIXES = (frozenset({"int", "float"}), frozenset({"int", "decimal"}))


def to_polars(frame: Any) -> pl.DataFrame:
    """``frame`` (a Polars, pandas or Arrow table) as a Polars frame whose every column has a
    column type: its Python-object columns converted exactly, or an ``InvalidInputError``
    (see the module docstring)."""
    import polars as pl

    if isinstance(frame, pl.DataFrame):
        return _typed(frame)
    if hasattr(frame, "iloc") and hasattr(frame, "columns"):
        return _from_pandas(frame)
    if hasattr(frame, "iloc"):
        raise InvalidInputError(
            f"Cannot ingest a {type(frame).__name__}: pass a DataFrame (for a pandas Series, "
            "series.to_frame())."
        )
    return arrow_to_polars(frame)


def arrow_to_polars(data: Any) -> pl.DataFrame:
    """An Arrow table or record batch as a Polars frame.

    Polars has no 256-bit Decimal (its import of one panics): a ``decimal256`` column whose
    values fit Decimal(38) becomes one, any other is an ``InvalidInputError`` naming it.
    """
    import polars as pl
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    if isinstance(table, pa.Table):
        table = _narrow_decimals(table)
    try:
        converted = pl.from_arrow(table)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"Cannot ingest a {type(data).__name__}: pass a Polars, pandas or Arrow table.",
        ) from exc
    if not isinstance(converted, pl.DataFrame):
        raise InvalidInputError("An Arrow array is not a table; pass a Table.")
    return _typed(converted)


def holds_objects(dtype: Any) -> bool:
    """Whether ``dtype`` is, or nests, Polars' Object (Python objects, no column type)."""
    import polars as pl

    if dtype == pl.Object:
        return True
    if isinstance(dtype, pl.List | pl.Array):
        return holds_objects(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(holds_objects(f.dtype) for f in dtype.fields)
    return False


def refuse_objects(frame: pl.DataFrame) -> None:
    """Raise ``InvalidInputError`` when a column of ``frame`` holds Python objects (Polars'
    ``Object``), which a Parquet part cannot hold (their bytes would be memory addresses)."""
    for name, dtype in frame.schema.items():
        if holds_objects(dtype):
            values = frame.get_column(name).drop_nulls().head(1).to_list()
            why = "that Polars keeps only as Python objects, which no dataset can store"
            if values:
                raise _refused(name, values[0], why)
            raise InvalidInputError(
                f"Column {name!r:.60} is of Polars' type {dtype!s:.40} (Python objects, null "
                f"throughout here), which no dataset can store. {_FIX}",
                column=name[:200],
            )


def to_pandas(frame: pl.DataFrame) -> Any:
    """``frame`` as pandas, integer and boolean columns with nulls as pandas' nullable dtypes
    (``Int64``, ``boolean``…): NumPy's would turn them into float64 (an id above 2**53 changes)
    and object. Columns without nulls keep NumPy dtypes, as Polars gives them."""
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    import polars as pl
    import pyarrow as pa

    nullable = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    result = frame.to_pandas()
    for name, dtype in frame.schema.items():
        column = frame.get_column(name)
        if (dtype.is_integer() or dtype.base_type() == pl.Boolean) and column.null_count():
            result[name] = column.to_arrow().to_pandas(types_mapper=nullable.get)
    return result


# --- pandas and Polars tables ------------------------------------------------------------


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with each column of Python objects converted by its values."""
    objects = [name for name, dtype in frame.schema.items() if holds_objects(dtype)]
    if not objects:
        return frame
    return frame.with_columns(
        [_object_series(name, frame.get_column(name).to_list()) for name in objects]
    )


def _from_pandas(frame: Any) -> pl.DataFrame:
    """A pandas frame as Polars: its ``object`` columns by their values, the others by
    ``pl.from_pandas`` (a column it cannot convert named in the error)."""
    import pandas as pd
    import polars as pl

    names = [str(c) for c in frame.columns]
    twice = sorted(n for n, count in Counter(names).items() if count > 1)
    if twice:
        raise InvalidInputError(
            f"Cannot ingest a DataFrame with several columns named {', '.join(map(repr, twice))}"
            f"; give its columns distinct names.",
        )
    objects = {i for i, dtype in enumerate(frame.dtypes) if pd.api.types.is_object_dtype(dtype)}
    if not objects:
        return _pandas_columns(frame, names)
    rest = [i for i in range(len(names)) if i not in objects]
    converted = _pandas_columns(frame.iloc[:, rest], [names[i] for i in rest]) if rest else None
    columns: list[pl.Series] = []
    for index, name in enumerate(names):
        if index not in objects:
            assert converted is not None
            columns.append(converted.get_column(name))
            continue
        column = frame.iloc[:, index]
        missing = pd.isna(column).to_numpy()
        values = [None if gap else v for v, gap in zip(column.to_numpy(), missing, strict=True)]
        columns.append(_object_series(name, values))
    return pl.DataFrame(columns)


def _pandas_columns(frame: Any, names: Sequence[str]) -> pl.DataFrame:
    import polars as pl
    import pyarrow as pa

    failures = (TypeError, ValueError, OverflowError, pa.ArrowException, pl.exceptions.PolarsError)
    try:
        return _polars_of(frame)
    except (*failures, pl.exceptions.PanicException):
        pass
    for index, name in enumerate(names):  # find the column, for the message
        column = frame.iloc[:, [index]]
        try:
            _polars_of(column)
        except (*failures, pl.exceptions.PanicException) as exc:
            raise InvalidInputError(
                f"Column {name!r:.60} (pandas dtype {column.dtypes.iloc[0]!s:.40}) cannot be "
                f"converted to a column type: {_first_line(exc)}. {_FIX}",
                column=name[:200],
            ) from exc
    raise InvalidInputError("Cannot ingest this DataFrame: Polars cannot convert it. " + _FIX)


def _polars_of(frame: Any) -> pl.DataFrame:
    import polars as pl

    converted = pl.from_pandas(frame)
    assert isinstance(converted, pl.DataFrame)
    return converted


# --- one column of Python objects ----------------------------------------------------------


def _object_series(name: str, values: list[Any]) -> pl.Series:
    """``values`` (Python objects, None where missing) as a column of ``name``, converted
    exactly, or an ``InvalidInputError``."""
    import polars as pl
    import pyarrow as pa

    kinds = _kinds(name, values)
    if len(kinds) > 1 and frozenset(kinds) not in _MIXES:
        raise _mixed(name, kinds)
    if "decimal" in kinds:
        bad = next((v for v in values if isinstance(v, Decimal) and not v.is_finite()), None)
        if bad is not None:
            raise _refused(
                name, bad, "that include NaN or an infinity, which no Decimal column holds"
            )
    first = next(iter(kinds), "text")  # none at all: text, as Polars makes such a column
    explicit = {"text": pa.large_string(), "bytes": pa.large_binary()}.get(first)
    try:
        array = pa.array(values, type=explicit)
    except (TypeError, ValueError, OverflowError, pa.ArrowException) as exc:
        if set(kinds) == {"int"}:
            return _whole_numbers(name, values, kinds["int"])
        sample = kinds[first]
        raise _refused(
            name, sample, f"that Arrow cannot convert to a column type ({_first_line(exc)})"
        ) from exc
    digits = _wide_decimal(array.type)
    if digits:
        raise _refused(
            name,
            kinds["decimal"] if "decimal" in kinds else kinds[first],
            f"that together need {digits} digits, more than the {_MAX_DIGITS} a Decimal holds",
        )
    if not set(kinds) <= _EXACT:
        _check_exact(name, values, array)
    series = pl.from_arrow(array)
    assert isinstance(series, pl.Series)
    return series.alias(name)


def _whole_numbers(name: str, values: list[Any], sample: Any) -> pl.Series:
    """Whole numbers Int64 cannot hold, as Polars' UInt64 or Int128, or a clear error."""
    import polars as pl

    try:
        series = pl.Series(name, values, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
        raise _refused(
            name, sample, "that include one too large for any integer column (128 bits)"
        ) from exc
    if not series.dtype.is_integer():
        raise _refused(name, sample, "that include one too large for any integer column")
    return series


def _kinds(name: str, values: Sequence[Any]) -> dict[str, Any]:
    """The kinds of value (see ``_kind``) in ``values``, each with the first value of it;
    an ``InvalidInputError`` for a value no column type holds."""
    kinds: dict[str, Any] = {}
    for value in values:
        if value is None:
            continue
        kind = _kind(value)
        if kind is None:
            raise _refused(name, value, "that no column type holds")
        if kind == "datetime" and value.tzinfo is not None:
            kind = "aware datetime"
        if kind not in kinds:
            kinds[kind] = value
    return kinds


def _kind(value: object) -> str | None:
    """What ``value`` is as a column holds it, or None for a type no column holds."""
    of = type(value)
    if of not in _KINDS_OF_TYPES:
        _KINDS_OF_TYPES[of] = _kind_of(of)
    return _KINDS_OF_TYPES[of]


#: ``_kind_of`` of the types met, which a value's type is looked up in (a memo, not a state)
_KINDS_OF_TYPES: dict[type, str | None] = {}


def _kind_of(of: type) -> str | None:
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (str, "text"),
        ((bytes, bytearray, memoryview), "bytes"),
        (bool, "bool"),
        (numbers.Integral, "int"),
        (Decimal, "decimal"),
        (datetime, "datetime"),  # before date, which it is too
        (date, "date"),
        (time, "time"),
        (timedelta, "duration"),
        (Mapping, "struct"),
        ((list, tuple, set, frozenset), "list"),
        (UUID, "uuid"),
    )
    if of.__module__ == "numpy" and of.__name__ in ("bool", "bool_"):
        return "bool"
    if of.__module__ == "numpy" and of.__name__ == "ndarray":
        return "list"
    for types, kind in kinds:
        if issubclass(of, types):
            return kind
    if issubclass(of, float) or (
        issubclass(of, numbers.Real) and not issubclass(of, numbers.Rational)
    ):
        return "float"  # not a Fraction, which no column holds exactly
    return None


def _is_array(value: Any) -> bool:
    of = type(value)
    return of.__module__ == "numpy" and of.__name__ == "ndarray"


def _same(value: Any, stored: Any) -> bool:
    """Whether ``stored`` (what Arrow made of ``value``) is ``value``: equal, and of its kind
    (a date-time stays one, with or without a zone as it was; a dict keeps its keys)."""
    if value is None:
        return stored is None
    kind = _kind(value)
    if kind in ("int", "float", "decimal"):
        return (
            isinstance(stored, int | float | Decimal)
            and not isinstance(stored, bool)
            and (stored == value or (stored != stored and value != value))  # NaN stays NaN
        )
    if kind == "struct":
        return (
            isinstance(stored, dict)
            and len(stored) == len(value)
            and all(
                isinstance(k, str) and k in stored and _same(v, stored[k]) for k, v in value.items()
            )
        )
    if kind == "list":
        items = value.tolist() if _is_array(value) else list(value)  # a set in Arrow's order
        return (
            isinstance(stored, list)
            and len(stored) == len(items)
            and all(_same(v, s) for v, s in zip(items, stored, strict=True))
        )
    if kind == "text":
        same = type(stored) is str
    elif kind == "bytes":
        same, value = isinstance(stored, bytes), bytes(value)
    elif kind == "bool":
        same = isinstance(stored, bool)
    elif kind == "datetime":  # with a zone, or without, as it was
        same = isinstance(stored, datetime) and (stored.tzinfo is None) == (value.tzinfo is None)
    elif kind == "time":
        same = isinstance(stored, time) and value.tzinfo is None  # Arrow drops a time's zone
    elif kind == "date":
        same = type(stored) is date
    elif kind == "duration":
        same = isinstance(stored, timedelta)
    else:
        same = kind == "uuid"
    return same and bool(stored == value)


def _check_exact(name: str, values: list[Any], array: Any) -> None:
    """An ``InvalidInputError`` for the first of ``values`` that ``array`` (Arrow's conversion
    of them) does not hold as it is.

    Python's == tells a date from a date-time, text from bytes, a zone from none and a missing
    key from a null; not True from 1.0, which Arrow may make of a bool among floats: where there
    are floats (or Decimals), each value is compared kind by kind (``_same``). Read back a
    slice at a time: a million dicts at once would keep Python's collector busy.
    """
    loose = not _holds_numbers(array.type)
    for offset in range(0, len(values), _CHECKED_ROWS):
        stored = array.slice(offset, _CHECKED_ROWS).to_pylist()
        for value, back in zip(values[offset : offset + _CHECKED_ROWS], stored, strict=True):
            if not (loose and _equal(value, back)) and not _same(value, back):
                raise _refused(
                    name,
                    value,
                    f"that do not convert exactly: {value!r:.60} would be stored as {back!r:.60}",
                )


def _equal(value: Any, stored: Any) -> bool:
    try:
        return bool(value == stored)
    except (TypeError, ValueError):  # an array compared element by element
        return False


def _holds_numbers(dtype: Any) -> bool:
    """Whether the Arrow type ``dtype`` is, or nests, a floating-point or decimal type."""
    import pyarrow as pa

    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return True
    if (
        pa.types.is_list(dtype)
        or pa.types.is_large_list(dtype)
        or pa.types.is_fixed_size_list(dtype)
    ):
        return _holds_numbers(dtype.value_type)
    if pa.types.is_struct(dtype):
        return any(_holds_numbers(dtype.field(i).type) for i in range(dtype.num_fields))
    return False


def _wide_decimal(dtype: Any) -> int:
    """The precision of a ``decimal256`` in ``dtype`` (nested too), or 0 when it has none."""
    import pyarrow as pa

    if pa.types.is_decimal256(dtype):
        return int(dtype.precision)
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _wide_decimal(dtype.value_type)
    if pa.types.is_fixed_size_list(dtype):
        return _wide_decimal(dtype.value_type)
    if pa.types.is_struct(dtype):
        return max((_wide_decimal(dtype.field(i).type) for i in range(dtype.num_fields)), default=0)
    return 0


def _narrow_decimals(table: Any) -> Any:
    """``table`` with each ``decimal256`` column as Decimal(38) when every value fits; an
    ``InvalidInputError`` naming a column that does not (or that nests one)."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        digits = _wide_decimal(field.type)
        if not digits:
            continue
        column = narrow = None
        if pa.types.is_decimal256(field.type) and field.type.scale <= _MAX_DIGITS:
            narrow = pa.decimal128(min(digits, _MAX_DIGITS), max(field.type.scale, 0))
            try:
                column = table.column(index).cast(narrow, safe=True)
            except (ValueError, pa.ArrowException):
                column = None
        if column is None:
            raise InvalidInputError(
                f"Column {field.name!r:.60} is {field.type!s:.60}, and Polars holds Decimals "
                f"of at most {_MAX_DIGITS} digits: some of its values do not fit (or it nests "
                f"them). Cast it to decimal128 with at most {_MAX_DIGITS} digits, to float64 "
                "or to text before ingesting.",
                column=field.name[:200],
            )
        table = table.set_column(index, field.with_type(narrow), column)
    return table


# --- messages -----------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    of = type(value)
    return of.__qualname__ if of.__module__ == "builtins" else f"{of.__module__}.{of.__qualname__}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _refused(name: str, value: Any, why: str) -> InvalidInputError:
    kind = _type_name(value)
    return InvalidInputError(
        f"Column {name!r:.60} holds Python objects of type {kind} (such as {value!r:.60}) "
        f"{why}. {_FIX}",
        column=name[:200],
        python_type=kind,
    )


def _mixed(name: str, kinds: Mapping[str, Any]) -> InvalidInputError:
    samples = list(kinds.values())[:3]
    types = sorted({_type_name(v) for v in samples})
    if {"datetime", "aware datetime"} <= kinds.keys():
        what = "date-times with and without a time zone"
    else:
        what = f"values of types {' and '.join(types)}"
    shown = " and ".join(f"{v!r:.40}" for v in samples)
    return InvalidInputError(
        f"Column {name!r:.60} mixes {what} (such as {shown}), which no one column type holds "
        f"without changing some. {_FIX}",
        column=name[:200],
        python_type=", ".join(types),
    )
