"""SQL columns typed from what the database declares, not from the values of the first chunk:
a column NULL throughout the first chunk, a zero-row result and any chunk size give the same
schema and the same dataset (PostgreSQL arrays, scalars on PostgreSQL and MariaDB), and
MySQL/MariaDB ``TIMESTAMP`` values are the instants stored, whatever the session's zone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from keel.data import SqlSource
from keel.errors import InvalidInputError
from keel.workspace import Workspace

PG = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = "mysql://root@127.0.0.1:3306/test"


def _mariadb_in_zone(zone: str) -> str:
    """The MariaDB URL whose sessions start in the time zone ``zone`` (not the server's)."""
    command = quote(f"SET time_zone = '{zone}'")
    return f"{MARIADB}?init_command={command}"


@pytest.fixture
def maria_table() -> Iterator[tuple[Any, str]]:
    """A unique table name in MariaDB and an engine whose sessions are at +04:00."""
    engine = create_engine(_mariadb_in_zone("+04:00").replace("mysql://", "mysql+pymysql://"))
    name = f"decl_{uuid.uuid4().hex[:10]}"
    try:
        yield engine, name
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


def _schema(source: SqlSource) -> dict[str, str]:
    batches = list(source.batches(None))  # type: ignore[arg-type]  # a SQL source puts no blobs
    return {name: str(dtype) for name, dtype in batches[0].frame.schema.items()}


def _assert_same(ws: Workspace, name: str, source: SqlSource) -> None:
    """``source`` reads to the schema and the rows of the dataset ``name``."""
    again = ws.datasets.ingest(f"{name}-again", source)
    assert again.schema == ws.datasets.version(name).schema
    assert ws.datasets.read(f"{name}-again").sort("id").equals(ws.datasets.read(name).sort("id"))


# --- PostgreSQL arrays: the element type is declared ----------------------------------------

_PG_ARRAYS = {
    "ints": ("int4[]", "ARRAY[1, NULL, 3]", "List(Int64)"),
    "bigs": ("int8[]", "ARRAY[9007199254740993]::int8[]", "List(Int64)"),
    "texts": ("text[]", "ARRAY['a', NULL]", "List(String)"),
    "flags": ("bool[]", "ARRAY[true, false]", "List(Boolean)"),
    "days": ("date[]", "ARRAY['2024-02-29'::date]", "List(Date)"),
    "stamps": (
        "timestamptz[]",
        "ARRAY['2024-06-01 12:00+02'::timestamptz]",
        "List(Datetime(time_unit='us', time_zone='UTC'))",
    ),
    "naive": (
        "timestamp[]",
        "ARRAY['2024-06-01 12:00'::timestamp]",
        "List(Datetime(time_unit='us', time_zone=None))",
    ),
    "clock": ("timetz[]", "ARRAY['12:00+02'::timetz]", "List(Time)"),
    "waits": ("interval[]", "ARRAY['1 day 2 hours'::interval]", "List(Duration(time_unit='us'))"),
    "amounts": ("numeric(10,2)[]", "ARRAY[1.5, -2.25]", "List(Decimal(precision=10, scale=2))"),
    "ratios": ("numeric[]", "ARRAY[0.125, 7]", "List(Decimal(precision=38, scale=9))"),
    "docs": ("jsonb[]", """ARRAY['{"a": 1.10}'::jsonb]""", "List(String)"),
    "blobs": ("bytea[]", "ARRAY['\\x0102'::bytea]", "List(Binary)"),
    "bits": ("bit(3)[]", "ARRAY[B'101']", "List(String)"),
}


@pytest.fixture
def late_arrays(pg: Any, pg_table: str) -> str:
    """A table whose array columns are NULL in its first three rows and set in the fourth."""
    columns = ", ".join(f"{name} {declared}" for name, (declared, _, _) in _PG_ARRAYS.items())
    values = ", ".join(value for _, value, _ in _PG_ARRAYS.values())
    with pg.begin() as conn:
        conn.execute(text(f"CREATE TABLE {pg_table} (id int PRIMARY KEY, {columns})"))
        conn.execute(text(f"INSERT INTO {pg_table} (id) VALUES (1), (2), (3)"))
        conn.execute(text(f"INSERT INTO {pg_table} VALUES (4, {values})"))
    return pg_table


def test_postgres_arrays_null_in_the_first_chunk_take_their_declared_element_type(
    local_ws: Workspace, late_arrays: str
) -> None:
    # before: every array column was text after an all-NULL first chunk, and the fourth row
    # was refused ("was NULL in every one of the first 2 rows ... read as text")
    query = f"SELECT * FROM {late_arrays} ORDER BY id"
    version = local_ws.datasets.ingest("arrays", SqlSource(PG, query=query, batch_rows=2))
    expected = {name: dtype for name, (_, _, dtype) in _PG_ARRAYS.items()}
    assert {k: v for k, v in version.schema if k != "id"} == expected
    row = local_ws.datasets.read("arrays").sort("id").row(3, named=True)
    assert row["ints"] == [1, None, 3]
    assert row["bigs"] == [9007199254740993]  # exact: no float on the way
    assert row["texts"] == ["a", None]
    assert row["flags"] == [True, False]
    assert row["days"] == [date(2024, 2, 29)]
    assert row["stamps"] == [datetime(2024, 6, 1, 10, 0, tzinfo=UTC)]
    assert row["naive"] == [datetime(2024, 6, 1, 12, 0)]
    assert row["clock"] == [time_of_day(10, 0)]  # the time of day in UTC
    assert row["waits"] == [timedelta(days=1, hours=2)]
    assert row["amounts"] == [Decimal("1.50"), Decimal("-2.25")]
    assert row["ratios"] == [Decimal("0.125"), Decimal("7")]
    assert row["docs"] == ['{"a": 1.10}']  # the database's own text of each element
    assert row["blobs"] == [b"\x01\x02"]
    assert row["bits"] == ["101"]
    # one chunk, one row a chunk from the table, and zero rows: the same columns, the same data
    whole = SqlSource(PG, query=query, batch_rows=1000)
    _assert_same(local_ws, "arrays", whole)
    _assert_same(local_ws, "arrays", SqlSource(PG, table=late_arrays, batch_rows=1))
    empty = SqlSource(PG, query=f"SELECT * FROM {late_arrays} WHERE false")
    assert _schema(empty) == dict(version.schema)


def test_a_later_numeric_array_element_is_refused_never_rounded(pg: Any, pg_table: str) -> None:
    with pg.begin() as conn:
        conn.execute(text(f"CREATE TABLE {pg_table} (id int, xs numeric[])"))
        conn.execute(
            text(f"INSERT INTO {pg_table} VALUES (1, ARRAY[1.5]), (2, ARRAY[2.1234567891])")
        )
    # before: the first chunk made it List(Decimal(38, 1)), and 2.1234567891 became 2.1
    source = SqlSource(PG, query=f"SELECT xs FROM {pg_table} ORDER BY id", batch_rows=1)
    with pytest.raises(
        InvalidInputError, match=r"column 'xs' \(numeric\[\]\) holds 2\.1234567891, which "
    ) as refused:
        list(source.batches(None))  # type: ignore[arg-type]
    assert "Decimal(38, 9)" in str(refused.value)  # the declared element, nine places
    assert "NUMERIC(p, s)[]" in str(refused.value) and "CAST(xs AS text)" in str(refused.value)


def test_postgres_array_dimensions_come_from_the_first_array_and_are_then_kept(
    local_ws: Workspace, pg: Any, pg_table: str
) -> None:
    with pg.begin() as conn:
        conn.execute(text(f"CREATE TABLE {pg_table} (id int, m int[], e text[])"))
        conn.execute(
            text(
                f"INSERT INTO {pg_table} VALUES (1, NULL, '{{}}'), (2, '{{{{1,2}},{{3,4}}}}', "
                "'{}'), (3, '{{5,NULL}}', '{x}'), (4, '{6}', NULL)"
            )
        )
    query = f"SELECT id, m, e FROM {pg_table} WHERE id < 4 ORDER BY id"
    version = local_ws.datasets.ingest("dims", SqlSource(PG, query=query, batch_rows=2))
    assert dict(version.schema)["m"] == "List(List(Int64))"  # PostgreSQL declares no dimensions
    assert dict(version.schema)["e"] == "List(String)"  # '{}' shows none: one
    frame = local_ws.datasets.read("dims").sort("id")
    assert frame["m"].to_list() == [None, [[1, 2], [3, 4]], [[5, None]]]
    assert frame["e"].to_list() == [[], [], ["x"]]
    mixed = f"SELECT id, m FROM {pg_table} WHERE id > 1 ORDER BY id"
    with pytest.raises(InvalidInputError, match=r"column 'm' \(int4\[\]\) .*1-dimensional") as bad:
        local_ws.datasets.ingest("mixed", SqlSource(PG, query=mixed, batch_rows=1))
    assert "2 dimensions" in str(bad.value) and "CAST(m AS text)" in str(bad.value)


# --- scalars NULL in the first chunk, and zero rows -----------------------------------------


#: A query with no row whose column is an unconstrained NUMERIC.
_NO_GROUP = "SELECT avg(g) AS a FROM generate_series(1, 3) g GROUP BY g HAVING false"


def test_postgres_scalars_null_in_the_first_chunk_and_zero_rows_keep_their_types(
    local_ws: Workspace, pg: Any, pg_table: str
) -> None:
    with pg.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {pg_table} (id int, n numeric, d numeric(12, 3), "
                "ts timestamptz, t timestamp, j json, jb jsonb, u uuid, i interval, b bytea)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {pg_table} (id) VALUES (1), (2); INSERT INTO {pg_table} VALUES "
                "(3, 2.5, 12.125, '2024-01-01 00:00+01', '2024-01-01 00:00', "
                """'{"a": 1.10}', '{"b": 2}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', """
                "'3 days', '\\x00')"
            )
        )
    query = f"SELECT * FROM {pg_table} ORDER BY id"
    chunked = local_ws.datasets.ingest("scalars", SqlSource(PG, query=query, batch_rows=2))
    schema = dict(chunked.schema)
    assert schema == {
        "id": "Int64",
        "n": "Decimal(precision=38, scale=9)",
        "d": "Decimal(precision=12, scale=3)",
        "ts": "Datetime(time_unit='us', time_zone='UTC')",
        "t": "Datetime(time_unit='us', time_zone=None)",
        "j": "String",
        "jb": "String",
        "u": "String",
        "i": "Duration(time_unit='us')",
        "b": "Binary",
    }
    row = local_ws.datasets.read("scalars").sort("id").row(2, named=True)
    assert row["n"] == Decimal("2.5") and row["d"] == Decimal("12.125")
    assert row["ts"] == datetime(2023, 12, 31, 23, 0, tzinfo=UTC)
    assert row["j"] == '{"a": 1.10}' and row["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    _assert_same(local_ws, "scalars", SqlSource(PG, query=query))
    # before: an unconstrained NUMERIC of a zero-row result was String
    assert _schema(SqlSource(PG, query=f"SELECT * FROM {pg_table} WHERE id > 9")) == schema
    assert _schema(SqlSource(PG, query=_NO_GROUP)) == {"a": "Decimal(precision=38, scale=9)"}


def test_mariadb_scalars_null_in_the_first_chunk_and_zero_rows_keep_their_types(
    local_ws: Workspace, maria_table: tuple[Any, str]
) -> None:
    engine, name = maria_table
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {name} (id INT, d DECIMAL(12, 3), ts TIMESTAMP(6) NULL, "
                "dt DATETIME(3), j JSON, bl BLOB, tx TEXT, bi BIT(4), f DOUBLE)"
            )
        )
        conn.execute(text(f"INSERT INTO {name} (id) VALUES (1), (2)"))
        conn.execute(
            text(
                f"INSERT INTO {name} VALUES "
                "(3, 12.125, '2024-01-01 04:00:00.5', '2024-01-01 04:00:00.25', "
                """'{"a": 1.10}', x'00ff', 'hé', b'0101', 0.5)"""
            )
        )
    query = f"SELECT * FROM {name} ORDER BY id"
    chunked = local_ws.datasets.ingest("scalars", SqlSource(MARIADB, query=query, batch_rows=2))
    schema = dict(chunked.schema)
    assert schema == {
        "id": "Int64",
        "d": "Decimal(precision=12, scale=3)",
        "ts": "Datetime(time_unit='us', time_zone='UTC')",
        "dt": "Datetime(time_unit='us', time_zone=None)",
        "j": "String",
        "bl": "Binary",
        "tx": "String",
        "bi": "Binary",
        "f": "Float64",
    }
    row = local_ws.datasets.read("scalars").sort("id").row(2, named=True)
    assert row["ts"] == datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)  # written at +04:00
    assert row["dt"] == datetime(2024, 1, 1, 4, 0, 0, 250000)  # zone-less, as written
    assert (row["j"], row["bl"], row["tx"], row["bi"]) == (
        '{"a": 1.10}',
        b"\x00\xff",
        "hé",
        b"\x05",
    )
    _assert_same(local_ws, "scalars", SqlSource(MARIADB, query=query))
    assert _schema(SqlSource(MARIADB, query=f"SELECT * FROM {name} WHERE id > 9")) == schema
    assert _schema(SqlSource(MARIADB, table=name, batch_rows=1)) == schema


# --- MySQL/MariaDB TIMESTAMP: instants, whatever the session's zone ------------------------


def test_mariadb_timestamps_are_the_utc_instants_stored_whatever_the_session_zone(
    local_ws: Workspace, maria_table: tuple[Any, str]
) -> None:
    engine, name = maria_table  # every session of this engine starts at +04:00
    with engine.begin() as conn:
        assert conn.execute(text("SELECT @@session.time_zone")).scalar_one() == "+04:00"
        conn.execute(
            text(f"CREATE TABLE {name} (id INT PRIMARY KEY, ts TIMESTAMP NULL, dt DATETIME)")
        )
        conn.execute(
            text(
                f"INSERT INTO {name} VALUES (1, '2024-06-01 12:00:00', '2024-06-01 12:00:00'), "
                "(2, FROM_UNIXTIME(86400), NULL), (3, NULL, '1999-12-31 23:59:59')"
            )
        )
    truth = [datetime(2024, 6, 1, 8, 0, tzinfo=UTC), datetime(1970, 1, 2, tzinfo=UTC), None]
    versions = []
    for zone in ("+04:00", "-07:00", "+00:00"):
        # before: the values as the session's zone shows them, naive: 12:00 at +04:00, 05:00
        # at -07:00, so one table read to three versions, none of them the instants stored
        url = _mariadb_in_zone(zone)
        source = SqlSource(url, query=f"SELECT * FROM {name} ORDER BY id", batch_rows=1)
        versions.append(local_ws.datasets.ingest("stamps", source))
        frame = local_ws.datasets.read("stamps").sort("id")
        assert frame["ts"].to_list() == truth
        # DATETIME has no zone: as written, whatever the session
        assert frame["dt"].to_list() == [
            datetime(2024, 6, 1, 12),
            None,
            datetime(1999, 12, 31, 23, 59, 59),
        ]
    assert [v.version for v in versions] == [1, 1, 1]
    assert dict(versions[0].schema)["ts"] == "Datetime(time_unit='us', time_zone='UTC')"
    assert dict(versions[0].schema)["dt"] == "Datetime(time_unit='us', time_zone=None)"
    with engine.connect() as conn:  # the engine's own sessions are untouched
        assert conn.execute(text("SELECT @@session.time_zone")).scalar_one() == "+04:00"
