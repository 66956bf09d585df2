"""Columns of Python objects (a pandas ``object`` column, a Polars ``Object`` one) handed to
``ws.datasets.ingest``: converted to a real column type when that is exact, and otherwise
refused, naming the column, the Python type and how to fix it, before anything is stored.
Before, an ``Object`` column was stored as the objects' memory addresses, and a pandas column
that Arrow could not convert failed without naming it (or, for a Decimal too wide for Polars,
crashed the process' ingest with a Rust panic)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.errors import InvalidInputError
from keel.settings import Settings
from keel.workspace import Workspace, connect

FIX = "Cast it to a supported type before ingesting"
PLUS_TWO = timezone(timedelta(hours=2))


@pytest.fixture
def w(tmp_path: Path) -> Iterator[Workspace]:
    with connect(settings=Settings(home=tmp_path / "home"), principal="user:me") as ws:
        yield ws


def _stored_files(w: Workspace) -> list[Path]:
    root = Path(w.blobs.url.removeprefix("file://"))
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def _refused(w: Workspace, frame: Any) -> InvalidInputError:
    """The error ingesting ``frame`` raises, after checking that nothing was stored."""
    with pytest.raises(InvalidInputError) as caught:
        w.datasets.ingest("people", frame)
    assert w.datasets.list() == []
    assert _stored_files(w) == []
    return caught.value


# --- refused: named, with the type and the fix, and nothing stored ---------------------------


def test_a_polars_object_column_is_refused_not_stored_as_addresses(w: Workspace) -> None:
    frame = pl.DataFrame({"id": [1, 2], "token": pl.Series([object(), None], dtype=pl.Object)})
    error = _refused(w, frame)
    assert error.message.startswith(
        "Column 'token' holds Python objects of type object (such as <object object at "
    )
    assert "that no column type holds" in error.message and FIX in error.message
    assert error.details == {"column": "token", "python_type": "object"}


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ([1, "x", 2], "mixes values of types int and str (such as 1 and 'x')"),
        (
            [date(2024, 1, 1), datetime(2024, 1, 1, 12, 30)],  # Arrow cut the time off
            "mixes values of types datetime.date and datetime.datetime",
        ),
        (
            [datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC)],
            "mixes date-times with and without a time zone",
        ),
        (
            [{"k": 1}, {"j": "x"}],  # Arrow gave each dict the other's key, as null
            "holds Python objects of type dict (such as {'k': 1}) that do not convert "
            "exactly: {'k': 1} would be stored as {'k': 1, 'j': None}",
        ),
        (
            [[1.5, True]],  # Arrow made the bool a float
            "that do not convert exactly: [1.5, True] would be stored as [1.5, 1.0]",
        ),
        (
            [pd.Timestamp("2024-01-01 00:00:00.000000001", tz="UTC"), None],
            "that do not convert exactly: Timestamp('2024-01-01 00:00:00.000000001+0000', "
            "tz='UTC') would be stored as datetime.datetime(2024, 1, 1, 0, 0, tzinfo",
        ),
        (
            [Decimal("1E+40"), Decimal("0.1")],  # a 256-bit Decimal made Polars panic
            "(such as Decimal('1E+40')) that together need 42 digits, more than the 38 a "
            "Decimal holds",
        ),
        ([Decimal("Infinity")], "that include NaN or an infinity, which no Decimal column holds"),
        ([2**200], "that include one too large for any integer column (128 bits)"),
        ([{1, "a"}], "holds Python objects of type set (such as {"),  # set order varies
    ],
)
def test_a_pandas_object_column_that_does_not_convert_exactly_is_refused(
    w: Workspace, values: list[Any], said: str
) -> None:
    frame = pd.DataFrame({"id": range(len(values)), "a": pd.Series(values, dtype=object)})
    error = _refused(w, frame)
    assert error.message.startswith("Column 'a' "), error.message
    assert said in error.message and FIX in error.message
    assert error.details["column"] == "a"


def test_a_pandas_column_arrow_cannot_convert_is_named(w: Workspace) -> None:
    frame = pd.DataFrame({"id": [1, 2], "kind": pd.Series([object(), object()], dtype="category")})
    error = _refused(w, frame)
    assert error.message.startswith(
        "Column 'kind' (pandas dtype category) cannot be converted to a column type: Could "
        "not convert <object object at "
    )
    assert FIX in error.message and error.details == {"column": "kind"}


def test_an_append_with_an_object_column_leaves_the_latest_version(w: Workspace) -> None:
    w.datasets.ingest("people", pl.DataFrame({"id": [1], "a": ["x"]}))
    files = _stored_files(w)
    bad = pl.DataFrame({"id": [2], "a": pl.Series([object()], dtype=pl.Object)})
    with pytest.raises(InvalidInputError, match="Column 'a' holds Python objects of type object"):
        w.datasets.ingest("people", bad, mode="append")
    assert [v.version for v in w.datasets.versions("people")] == [1]
    assert w.datasets.read("people").to_dicts() == [{"id": 1, "a": "x"}]
    assert _stored_files(w) == files


def test_a_transform_that_returns_python_objects_stores_no_version(w: Workspace) -> None:
    w.datasets.ingest("people", pl.DataFrame({"id": [1, 2]}))

    def tokens(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.Series("token", [object()] * frame.height, dtype=pl.Object))

    with pytest.raises(InvalidInputError) as caught:
        w.datasets.transform("people", function=tokens)
    assert caught.value.message.startswith(
        "Column 'token' holds Python objects of type object (such as <object object at "
    )
    assert "which no dataset can store" in caught.value.message
    assert [v.version for v in w.datasets.versions("people")] == [1]


# --- converted exactly --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "dtype", "stored"),
    [
        (["x", None, "y"], pl.String, ["x", None, "y"]),
        (
            [Decimal("1.10"), None, Decimal("-2.5")],
            pl.Decimal(3, 2),
            [Decimal("1.10"), None, Decimal("-2.50")],
        ),
        ([Decimal("1.5"), 2], pl.Decimal(2, 1), [Decimal("1.5"), Decimal("2.0")]),
        (
            [{"k": 1, "tags": ["a"]}, {"k": None, "tags": []}, None],
            pl.Struct({"k": pl.Int64, "tags": pl.List(pl.String)}),
            [{"k": 1, "tags": ["a"]}, {"k": None, "tags": []}, None],
        ),
        ([2**70, -1], pl.Int128, [2**70, -1]),
        ([2**64 - 1, 1], pl.UInt64, [2**64 - 1, 1]),
        ([1, 2.5], pl.Float64, [1.0, 2.5]),
        (
            [datetime(2024, 1, 1, 12, tzinfo=UTC), datetime(2024, 1, 1, 12, tzinfo=PLUS_TWO)],
            pl.Datetime("us", "UTC"),  # two zones: the same instants, in UTC
            [datetime(2024, 1, 1, 12, tzinfo=UTC), datetime(2024, 1, 1, 10, tzinfo=UTC)],
        ),
        ([date(2024, 1, 1), None], pl.Date, [date(2024, 1, 1), None]),
        ([(1, 2), [3]], pl.List(pl.Int64), [[1, 2], [3]]),
    ],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda values: pd.DataFrame({"a": pd.Series(values, dtype=object)}),
        lambda values: pl.DataFrame({"a": pl.Series(values, dtype=pl.Object)}),
    ],
    ids=["pandas", "polars"],
)
def test_a_column_of_python_objects_is_stored_as_its_type_when_exact(
    w: Workspace,
    make: Callable[[list[Any]], Any],
    values: list[Any],
    dtype: pl.DataType,
    stored: list[Any],
) -> None:
    version = w.datasets.ingest("people", make(values))
    assert version.schema == [("a", str(dtype))]
    read = w.datasets.read("people")
    assert read.schema["a"] == dtype
    assert read.get_column("a").to_list() == stored


def test_other_columns_keep_their_order_and_values(w: Workspace) -> None:
    frame = pd.DataFrame(
        {
            "n": [1, 2],
            "text": pd.Series(["x", "y"], dtype=object),
            "price": pd.Series([Decimal("9.99"), Decimal("10.00")], dtype=object),
            "score": [0.5, None],
        }
    )
    w.datasets.ingest("people", frame)
    assert w.datasets.read("people").to_dicts() == [
        {"n": 1, "text": "x", "price": Decimal("9.99"), "score": 0.5},
        {"n": 2, "text": "y", "price": Decimal("10.00"), "score": None},
    ]


# --- Arrow: a 256-bit Decimal (which Polars cannot take) --------------------------------------


def test_an_arrow_decimal256_that_fits_38_digits_is_stored_exactly(w: Workspace) -> None:
    table = pa.table({"a": pa.array([Decimal("12.34"), None], pa.decimal256(40, 2))})
    w.datasets.ingest("people", table)
    read = w.datasets.read("people")
    assert read.schema["a"] == pl.Decimal(38, 2)
    assert read.get_column("a").to_list() == [Decimal("12.34"), None]


def test_an_arrow_decimal256_too_wide_is_refused_naming_the_column(w: Workspace) -> None:
    table = pa.table({"a": pa.array([Decimal("1E+39")], pa.decimal256(40, 0))})
    error = _refused(w, table)
    assert error.message.startswith(
        "Column 'a' is decimal256(40, 0), and Polars holds Decimals of at most 38 digits"
    )
    assert "Cast it to decimal128" in error.message


def test_a_parquet_file_of_decimal256_is_read_exactly(w: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"a": pa.array([Decimal("-0.5")], pa.decimal256(39, 1))}), path)
    w.datasets.ingest("people", path)
    assert w.datasets.read("people").get_column("a").to_list() == [Decimal("-0.5")]
