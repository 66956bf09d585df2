"""SQL sources on the real PostgreSQL and MariaDB: types that must not depend on the session,
values no Polars type holds refused by column and type with the cast to add, and a refusal
mid-stream that ends a MariaDB query instead of reading the rest of it."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from keel.data import SqlSource
from keel.errors import InvalidInputError
from keel.workspace import Workspace

PG = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = "mysql://root@127.0.0.1:3306/test"


def _pg_in_zone(zone: str) -> str:
    """The PostgreSQL URL with the session's TimeZone set to ``zone``."""
    return f"{PG}?options=-c%20timezone%3D{zone}"


@pytest.fixture
def mariadb() -> Iterator[Any]:
    engine = create_engine(MARIADB.replace("mysql://", "mysql+pymysql://"))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def maria_table(mariadb: Any) -> Iterator[str]:
    """A unique table name in MariaDB, dropped afterwards."""
    name = f"edge_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        with mariadb.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def _rows(source: SqlSource) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for batch in source.batches(None):  # type: ignore[arg-type]  # a SQL source puts no blobs
        rows.extend(batch.frame.to_dicts())
    return rows


# --- 1. timestamptz: one type whatever the session's time zone ---------------------------


def test_an_unchanged_timestamptz_table_reingests_to_the_same_version_in_any_time_zone(
    local_ws: Workspace, pg: Any, pg_table: str
) -> None:
    with pg.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {pg_table} (id int PRIMARY KEY, ts timestamptz, "
                "tss timestamptz[], naive timestamp, tt timetz)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {pg_table} VALUES "
                "(1, '2024-06-01 12:00+02', ARRAY['2024-06-01 12:00+02'::timestamptz], "
                "'2024-06-01 12:00', '12:00+02'), (2, NULL, NULL, NULL, NULL), "
                "(3, '2024-01-01 00:30+00', ARRAY['2024-01-01 00:30+00'::timestamptz], "
                "'2024-01-01 00:30', '23:30-05')"
            )
        )
    versions = [
        local_ws.datasets.ingest("tz", SqlSource(_pg_in_zone(zone), table=pg_table, batch_rows=1))
        for zone in ("UTC", "Europe/Berlin", "America/New_York", "UTC")
    ]
    # an unchanged table is one version, whatever zone the session hands the values over in
    assert [v.version for v in versions] == [1, 1, 1, 1]
    assert len({v.digest for v in versions}) == 1
    schema = dict(versions[0].schema)
    assert schema["ts"] == "Datetime(time_unit='us', time_zone='UTC')"
    assert schema["tss"] == "List(Datetime(time_unit='us', time_zone='UTC'))"
    assert schema["naive"] == "Datetime(time_unit='us', time_zone=None)"  # as stored
    assert schema["tt"] == "Time"
    frame = local_ws.datasets.read("tz").sort("id")
    noon_berlin = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert frame["ts"].to_list()[0] == noon_berlin
    assert frame["tss"].to_list()[0] == [noon_berlin]
    assert frame["naive"].to_list()[0] == datetime(2024, 6, 1, 12, 0)
    # a time with a time zone is its time of day in UTC, not the local time without its offset
    assert frame["tt"].to_list() == [time_of_day(10, 0), None, time_of_day(4, 30)]
    # a query of the table reads as the table does
    query = SqlSource(_pg_in_zone("Asia/Tokyo"), query=f"SELECT * FROM {pg_table} ORDER BY id")
    assert local_ws.datasets.ingest("tz-q", query).schema == versions[0].schema


# --- 2. MariaDB: a refusal mid-stream ends the query, with no warning --------------------


@pytest.fixture
def slow_refusal(mariadb: Any, maria_table: str) -> str:
    """A query whose second row is refused (41 digits for a Decimal(38, 0)) and whose every
    later row takes the server 0.25 s: reading the rest to close the cursor takes 20 s. (Each
    row is larger than the server's network buffer, so it is sent as soon as it is made.)"""
    with mariadb.begin() as conn:
        conn.execute(text(f"CREATE TABLE {maria_table} (id INT PRIMARY KEY, v DECIMAL(65, 0))"))
        conn.execute(
            text(f"INSERT INTO {maria_table} VALUES (:i, :v)"),
            [{"i": i, "v": 10**40 if i == 2 else i} for i in range(1, 83)],
        )
    return (
        f"SELECT id, v, REPEAT('x', 40000) AS pad, SLEEP(IF(id > 2, 0.25, 0)) AS s "
        f"FROM {maria_table} ORDER BY id"
    )


def _running(mariadb: Any, table: str) -> int:
    """How many statements on the server still read ``table``."""
    with mariadb.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    "WHERE INFO LIKE :t AND ID <> CONNECTION_ID()"
                ),
                {"t": f"%FROM {table}%"},
            ).scalar_one()
        )


def test_a_value_refused_mid_stream_ends_the_mariadb_query_without_a_warning(
    local_ws: Workspace, mariadb: Any, maria_table: str, slow_refusal: str
) -> None:
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InvalidInputError, match=r"column 'v' \(DECIMAL\(65,0\)\) holds 1"):
            local_ws.datasets.ingest("big", SqlSource(MARIADB, query=slow_refusal, batch_rows=1))
    assert time.monotonic() - started < 8  # not the 20 s of reading the other 80 rows
    assert not [w for w in caught if "unbuffered" in str(w.message)]
    assert _running(mariadb, maria_table) == 0


def test_a_consumer_that_stops_early_ends_the_mariadb_query(
    mariadb: Any, maria_table: str, slow_refusal: str
) -> None:
    query = slow_refusal.replace("v, ", "").replace("id > 2", "id > 1")
    batches = SqlSource(MARIADB, query=query, batch_rows=1).batches(None)  # type: ignore[arg-type]
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert next(batches).frame["id"].to_list() == [1]
        batches.close()
    assert time.monotonic() - started < 8
    assert not [w for w in caught if "unbuffered" in str(w.message)]
    assert _running(mariadb, maria_table) == 0


# --- 3. MySQL/MariaDB types ---------------------------------------------------------------


def test_mariadb_types_read_alike_from_a_table_and_a_query(mariadb: Any, maria_table: str) -> None:
    with mariadb.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {maria_table} (id INT PRIMARY KEY, b BIT(9), e ENUM('a', 'b'), "
                "s SET('x', 'y'), j JSON, ub BIGINT UNSIGNED, t TIME(3), y YEAR, "
                "d10 DECIMAL(10, 2), du DECIMAL(10, 2) UNSIGNED, d33 DECIMAL(3, 3))"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {maria_table} VALUES (1, b'100000001', 'b', 'x,y', "
                """'{"a": 1.10}', 18446744073709551615, '-838:59:59.999', 2024, """
                "-99999999.99, 99999999.99, -0.999)"
            )
        )
    by_table = _rows(SqlSource(MARIADB, table=maria_table))
    by_query = _rows(SqlSource(MARIADB, query=f"SELECT * FROM {maria_table}"))
    assert by_table == by_query  # no SQLAlchemy conversion of BIT, SET or TIME on a table
    row = by_table[0]
    assert row["b"] == b"\x01\x01" and row["e"] == "b" and row["s"] == "x,y"
    assert row["j"] == '{"a": 1.10}'  # the JSON's own text, 1.10 not 1.1
    assert row["ub"] == 2**64 - 1
    assert row["y"] == 2024
    assert row["t"] == -timedelta(hours=838, minutes=59, seconds=59, milliseconds=999)
    assert (row["d10"], row["du"], row["d33"]) == (
        Decimal("-99999999.99"),
        Decimal("99999999.99"),
        Decimal("-0.999"),
    )
    schema = dict(next(SqlSource(MARIADB, table=maria_table).batches(None)).frame.schema)  # type: ignore[arg-type]
    # DECIMAL(p, s) is Decimal(p, s): the display length's sign is not a digit
    assert str(schema["d10"]) == "Decimal(precision=10, scale=2)"
    assert str(schema["du"]) == "Decimal(precision=10, scale=2)"
    assert str(schema["d33"]) == "Decimal(precision=3, scale=3)"


def test_mariadb_zero_dates_are_refused_by_column_with_the_fix(
    local_ws: Workspace, mariadb: Any, maria_table: str
) -> None:
    with mariadb.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = ''"))  # zero dates allowed in, as old data has
        conn.execute(text(f"CREATE TABLE {maria_table} (id INT PRIMARY KEY, d DATE)"))
        conn.execute(text(f"INSERT INTO {maria_table} VALUES (1, '2024-01-01'), (2, '0000-00-00')"))
    with pytest.raises(
        InvalidInputError, match=r"column 'd' is read as Date \(DATE\), and holds '0000-00-00'"
    ) as refused:
        local_ws.datasets.ingest("zero", SqlSource(MARIADB, table=maria_table, batch_rows=1))
    assert "NULLIF(d, '0000-00-00')" in str(refused.value)
    assert "CAST(d AS CHAR)" in str(refused.value)
    fixed = f"SELECT id, NULLIF(d, '0000-00-00') AS d FROM {maria_table} ORDER BY id"
    local_ws.datasets.ingest("zero", SqlSource(MARIADB, query=fixed))
    assert local_ws.datasets.read("zero")["d"].to_list()[1] is None


def test_mariadb_empty_results_and_duplicate_names(mariadb: Any, maria_table: str) -> None:
    with mariadb.begin() as conn:
        conn.execute(text(f"CREATE TABLE {maria_table} (id INT, amount DECIMAL(10, 2))"))
    batches = list(SqlSource(MARIADB, table=maria_table).batches(None))  # type: ignore[arg-type]
    assert [b.frame.height for b in batches] == [0]
    assert str(batches[0].frame.schema["amount"]) == "Decimal(precision=10, scale=2)"
    with pytest.raises(InvalidInputError, match=r"several columns named \['id'\]"):
        _rows(SqlSource(MARIADB, query=f"SELECT id, amount AS id FROM {maria_table}"))


# --- 3. PostgreSQL types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "column", "value"),
    [
        ("SELECT 'NaN'::numeric(10, 2) AS x", r"'x' \(numeric\(10,2\)\)", "NaN"),
        ("SELECT 'NaN'::numeric AS x", r"'x' \(numeric\)", "NaN"),  # first chunk, no scale
        (  # a later chunk
            "SELECT x FROM (VALUES (1, 1.5::numeric), (2, '-Infinity')) t(n, x) ORDER BY n",
            r"'x' \(numeric\)",
            "-Infinity",
        ),
        ("SELECT ARRAY['NaN'::numeric] AS x", r"'x' \(numeric\[\]\)", "NaN"),
        ("SELECT 1e40::numeric AS x", r"'x' \(numeric\)", "1000000000"),  # > 38 digits
        ("SELECT 1e-40::numeric AS x", r"'x' \(numeric\)", "1E-40"),
    ],
)
def test_postgres_numerics_no_decimal_holds_are_refused_by_column(
    query: str, column: str, value: str
) -> None:
    # before: a Rust panic (not even an Exception) for NaN, a bare Polars error for 1e40
    with pytest.raises(InvalidInputError, match=rf"column {column} holds {value}") as refused:
        _rows(SqlSource(PG, query=query, batch_rows=1))
    assert "CAST(x AS " in str(refused.value)


@pytest.mark.parametrize(
    ("query", "declared", "sample"),
    [
        ("SELECT '10.0.0.1'::inet AS x", "inet", "IPv4Address"),
        ("SELECT ARRAY['10.0.0.1'::inet] AS x", r"inet\[\]", "IPv4Address"),
        ("SELECT int4range(1, 5) AS x", "int4range", "Range"),
    ],
)
def test_postgres_values_polars_keeps_only_as_objects_are_refused_not_stored(
    local_ws: Workspace, query: str, declared: str, sample: str
) -> None:
    # before: stored as a column of Python object pointers, silently garbage when read back
    with pytest.raises(InvalidInputError, match=rf"column 'x' \({declared}\) holds .*{sample}"):
        local_ws.datasets.ingest("objects", SqlSource(PG, query=query))
    fixed = local_ws.datasets.ingest(
        "objects", SqlSource(PG, query=f"SELECT x::text FROM ({query}) q")
    )
    assert dict(fixed.schema)["x"] == "String"


@pytest.mark.parametrize("batch_rows", [1, 100])
def test_postgres_infinity_and_out_of_range_times_name_the_column(
    pg: Any, pg_table: str, batch_rows: int
) -> None:
    with pg.begin() as conn:
        conn.execute(
            text(f"CREATE TABLE {pg_table} (id int, valid_to timestamptz, born date, at time)")
        )
        conn.execute(
            text(
                f"INSERT INTO {pg_table} VALUES (1, now(), '2000-01-01', '12:00'), "
                "(2, 'infinity', '2000-01-01', '12:00')"
            )
        )
    # the first row (read when SQLAlchemy executes) or a later chunk alike
    source = SqlSource(PG, table=pg_table, batch_rows=batch_rows)
    with pytest.raises(
        InvalidInputError, match=r"a value of 'valid_to' \(timestamptz\) cannot be read"
    ) as refused:
        _rows(source)
    assert "NULLIF(valid_to, 'infinity')" in str(refused.value)
    with pytest.raises(InvalidInputError, match=r"a value of 'at' \(time\) cannot be read"):
        _rows(SqlSource(PG, query="SELECT 1 AS n, '24:00'::time AS at, now()::date AS d"))
    fixed = f"SELECT id, NULLIF(valid_to, 'infinity') AS valid_to FROM {pg_table} ORDER BY id"
    assert _rows(SqlSource(PG, query=fixed))[1]["valid_to"] is None


def test_postgres_empty_results_and_duplicate_names(pg: Any, pg_table: str) -> None:
    with pg.begin() as conn:
        conn.execute(
            text(f"CREATE TABLE {pg_table} (id int, ts timestamptz, tt timetz, n numeric(5, 1))")
        )
    batches = list(SqlSource(_pg_in_zone("Europe/Berlin"), table=pg_table).batches(None))  # type: ignore[arg-type]
    assert [b.frame.height for b in batches] == [0]
    assert {k: str(v) for k, v in batches[0].frame.schema.items()} == {
        "id": "Int64",
        "ts": "Datetime(time_unit='us', time_zone='UTC')",
        "tt": "Time",
        "n": "Decimal(precision=5, scale=1)",
    }
    with pytest.raises(InvalidInputError, match=r"several columns named \['\?column\?'\]"):
        _rows(SqlSource(PG, query="SELECT 1, 2"))


def test_postgres_uuid_arrays_are_lists_of_their_text(local_ws: Workspace) -> None:
    # before: refused as Python UUID objects, though a uuid column is read as its text
    query = (
        "SELECT * FROM (VALUES (1, NULL::uuid[]), "
        "(2, ARRAY['6f1c0f4e-1d3a-4c1e-9a39-2b1d2f0c8a11'::uuid, NULL])) v(i, x)"
    )
    version = local_ws.datasets.ingest("uuids", SqlSource(PG, query=query, batch_rows=1))
    assert dict(version.schema)["x"] == "List(String)"
    assert local_ws.datasets.read("uuids").sort("i")["x"].to_list() == [
        None,
        ["6f1c0f4e-1d3a-4c1e-9a39-2b1d2f0c8a11", None],
    ]
