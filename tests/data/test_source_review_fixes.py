"""Review fixes of the Parquet, JSON/NDJSON and SQL sources: one schema for every batch, taken
from the database where it says, never a value cut or a key dropped; no password recorded."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import create_engine, text

from keel.data import JsonSource, SqlSource
from keel.errors import InvalidInputError
from keel.workspace import Workspace

PG = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = "mysql://root@127.0.0.1:3306/test"


def _lines(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- 1. NDJSON / JSON: later batches never forced into the first one's types --------------


def test_a_later_ndjson_batch_that_does_not_fit_is_a_clear_error_not_a_cut_value(
    local_ws: Workspace, tmp_path: Path
) -> None:
    rows: list[dict[str, object]] = [{"id": i, "price": 10} for i in range(4)]
    path = _lines(tmp_path / "p.ndjson", [*rows, {"id": 4, "price": 10.75}])
    with pytest.raises(InvalidInputError, match=r"line 5: the value 10\.75 of key 'price'"):
        local_ws.datasets.ingest("p", JsonSource(str(path), batch_rows=2))
    version = local_ws.datasets.ingest(
        "p", JsonSource(str(path), batch_rows=2, schema={"price": "float64"})
    )
    assert ("price", "Float64") in version.schema
    assert local_ws.datasets.read("p")["price"].to_list() == [10.0] * 4 + [10.75]


def test_a_key_first_met_in_a_later_batch_is_an_error_or_a_declared_column(
    local_ws: Workspace, tmp_path: Path
) -> None:
    path = _lines(
        tmp_path / "k.ndjson",
        [{"id": 1}, {"id": 2}, {"id": 3, "note": "extra key"}],
    )
    with pytest.raises(InvalidInputError, match=r"line 3: key 'note' is not among the keys"):
        local_ws.datasets.ingest("k", JsonSource(str(path), batch_rows=2))
    version = local_ws.datasets.ingest(
        "k", JsonSource(str(path), batch_rows=2, schema={"note": "string"})
    )
    assert version.schema == [("id", "Int64"), ("note", "String")]
    assert local_ws.datasets.read("k")["note"].to_list() == [None, None, "extra key"]


def test_a_key_null_in_the_first_batch_and_text_later_is_a_clear_error(
    local_ws: Workspace, tmp_path: Path
) -> None:
    rows: list[dict[str, object]] = [{"a": i, "b": None} for i in range(3)]
    path = _lines(tmp_path / "n.ndjson", [*rows, {"a": 3, "b": "x"}])
    with pytest.raises(InvalidInputError, match=r"line 4: .*'b'.*null in every row before"):
        local_ws.datasets.ingest("n", JsonSource(str(path), batch_rows=3))
    local_ws.datasets.ingest("n", JsonSource(str(path), batch_rows=3, schema={"b": "string"}))
    assert local_ws.datasets.read("n")["b"].to_list() == [None, None, None, "x"]


def test_lossless_differences_between_batches_are_kept_exactly(
    local_ws: Workspace, tmp_path: Path
) -> None:
    # a missing key is null; 4.0 fits an integer column exactly
    path = _lines(tmp_path / "ok.ndjson", [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 4.0}])
    version = local_ws.datasets.ingest("ok", JsonSource(str(path), batch_rows=2))
    assert version.schema == [("a", "Int64"), ("b", "String")]
    frame = local_ws.datasets.read("ok")
    assert frame["a"].to_list() == [1, 2, 4] and frame["b"].to_list() == ["x", "y", None]


def test_a_json_array_looks_at_every_object(local_ws: Workspace, tmp_path: Path) -> None:
    objects: list[dict[str, object]] = [{"a": 1} for _ in range(150)]
    objects.append({"a": 1.5, "b": 2})
    (tmp_path / "arr.json").write_text(json.dumps(objects), encoding="utf-8")
    local_ws.datasets.ingest("arr", tmp_path / "arr.json")
    frame = local_ws.datasets.read("arr")
    assert frame["a"][-1] == 1.5 and frame["b"][-1] == 2 and frame.height == 151


# --- 2 and 4. SQL: types from the database, for every chunk and for an empty result --------


@pytest.fixture
def pg_table() -> Iterator[str]:
    name = f"rb_dec_{uuid.uuid4().hex[:8]}"
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {name} AS SELECT g AS id, "
                "(CASE WHEN g > 2 THEN 2.75 ELSE 1 END)::numeric AS amt, "
                "(CASE WHEN g > 2 THEN 100.125 ELSE 1 END)::numeric(10, 3) AS d3, "
                "(CASE WHEN g > 2 THEN 1.25 ELSE 1 END)::numeric(10, 2) AS d2, "
                """CASE WHEN g > 2 THEN '{"a": 3, "b": "secret", "c": 1.10}'::jsonb END AS j, """
                "CASE WHEN g > 2 THEN 'late text' END AS t "
                "FROM generate_series(1, 4) g"
            )
        )
    try:
        yield name
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {name}"))
        engine.dispose()


def test_postgres_chunks_keep_numeric_json_and_late_values_exactly(
    local_ws: Workspace, pg_table: str
) -> None:
    query = f"SELECT * FROM {pg_table} ORDER BY id"
    version = local_ws.datasets.ingest("pg", SqlSource(PG, query=query, batch_rows=2))
    schema = dict(version.schema)
    assert schema["d3"] == "Decimal(precision=10, scale=3)"
    assert schema["amt"] == "Decimal(precision=38, scale=9)"  # unconstrained NUMERIC
    assert schema["j"] == "String" and schema["t"] == "String"
    frame = local_ws.datasets.read("pg").sort("id")
    assert frame["amt"].to_list()[2:] == [Decimal("2.75")] * 2
    assert frame["d3"].to_list()[2:] == [Decimal("100.125")] * 2
    assert frame["d2"].to_list()[2:] == [Decimal("1.25")] * 2
    # the database's own text of the JSON: no key dropped, 1.10 not turned into 1.1
    assert frame["j"].to_list()[2:] == ['{"a": 3, "b": "secret", "c": 1.10}'] * 2
    assert frame["t"].to_list() == [None, None, "late text", "late text"]
    table_version = local_ws.datasets.ingest("pg-t", SqlSource(PG, table=pg_table, batch_rows=2))
    assert table_version.schema == version.schema


def test_postgres_empty_result_and_unconstrained_numeric_too_fine(
    local_ws: Workspace, pg_table: str
) -> None:
    empty = local_ws.datasets.ingest(
        "pg-empty", SqlSource(PG, query=f"SELECT id, d2, j FROM {pg_table} WHERE false")
    )
    assert empty.row_count == 0
    assert empty.schema == [
        ("id", "Int64"),
        ("d2", "Decimal(precision=10, scale=2)"),
        ("j", "String"),
    ]
    # an unconstrained NUMERIC takes nine places, or the first chunk's if it has more ...
    third = local_ws.datasets.ingest("pg-third", SqlSource(PG, query="SELECT 1.0 / 3 AS x"))
    assert third.schema == [("x", "Decimal(precision=38, scale=20)")]
    assert str(local_ws.datasets.read("pg-third")["x"][0]) == "0.33333333333333333333"
    whole_first = "SELECT x FROM (VALUES (1, 2::numeric), (2, 2.75)) t(n, x) ORDER BY n"
    local_ws.datasets.ingest("pg-late", SqlSource(PG, query=whole_first, batch_rows=1))
    assert [str(v) for v in local_ws.datasets.read("pg-late")["x"]] == [
        "2.000000000",
        "2.750000000",
    ]
    # ... and a later value with more places than that is refused, never rounded
    finer = "SELECT x FROM (VALUES (1, 1.5::numeric), (2, 1.0 / 3)) t(n, x) ORDER BY n"
    with pytest.raises(InvalidInputError, match=r"column 'x' \(numeric\) holds 0\.3333"):
        local_ws.datasets.ingest("pg-finer", SqlSource(PG, query=finer, batch_rows=1))


@pytest.fixture(params=["mariadb", "sqlite"])
def late_table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A table whose ``note`` is NULL in the first two rows, then text."""
    url = MARIADB if request.param == "mariadb" else f"sqlite:///{tmp_path / 'late.db'}"
    engine_url = url.replace("mysql://", "mysql+pymysql://")
    name = f"rb_late_{uuid.uuid4().hex[:8]}"
    engine = create_engine(engine_url)
    with engine.begin() as conn:
        conn.execute(
            text(f"CREATE TABLE {name} (id INTEGER, amt DECIMAL(10, 3), note VARCHAR(20))")
            if request.param == "mariadb"
            else text(f"CREATE TABLE {name} (id INTEGER, note VARCHAR(20))")
        )
        for i in range(4):
            if request.param == "mariadb":
                conn.execute(
                    text(f"INSERT INTO {name} VALUES (:i, :a, :n)"),
                    {"i": i, "a": "1" if i < 2 else "100.125", "n": "late" if i >= 2 else None},
                )
            else:
                conn.execute(
                    text(f"INSERT INTO {name} VALUES (:i, :n)"),
                    {"i": i, "n": "late" if i >= 2 else None},
                )
    try:
        yield url, name
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {name}"))
        engine.dispose()


def test_a_column_null_in_the_first_chunk_is_read_on_mariadb_and_sqlite(
    local_ws: Workspace, late_table: tuple[str, str]
) -> None:
    url, name = late_table
    query = f"SELECT * FROM {name} ORDER BY id"
    version = local_ws.datasets.ingest("late", SqlSource(url, query=query, batch_rows=2))
    frame = local_ws.datasets.read("late").sort("id")
    assert dict(version.schema)["note"] == "String"
    assert frame["note"].to_list() == [None, None, "late", "late"]
    if url.startswith("mysql"):
        assert dict(version.schema)["amt"].startswith("Decimal(")
        assert frame["amt"].to_list()[2:] == [Decimal("100.125")] * 2
    empty = local_ws.datasets.ingest(
        "late-empty", SqlSource(url, query=f"SELECT * FROM {name} WHERE 1 = 0")
    )
    if url.startswith("mysql"):  # the server says the types of an empty result too
        assert dict(empty.schema)["id"] == "Int64" and dict(empty.schema)["note"] == "String"
    table_version = local_ws.datasets.ingest("late-t", SqlSource(url, table=name, batch_rows=2))
    assert local_ws.datasets.read("late-t").sort("id")["note"].to_list()[2:] == ["late"] * 2
    assert dict(table_version.schema)["id"] == "Int64"


def test_a_sqlite_query_value_that_does_not_fit_the_first_chunk_is_a_clear_error(
    local_ws: Workspace, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE m (v)"))  # SQLite: no type at all
        conn.execute(text("INSERT INTO m VALUES (1), (2), (2.5)"))
    engine.dispose()
    with pytest.raises(InvalidInputError, match=r"column 'v' is read as Int64.*2\.5"):
        local_ws.datasets.ingest("m", SqlSource(url, query="SELECT v FROM m", batch_rows=2))


# --- 3. no password in the version, whatever its form ----------------------------------------


@pytest.mark.parametrize(
    ("url", "secret", "kept"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/test?password=Hunter2secret",
            "Hunter2",
            "postgresql://postgres@127.0.0.1:5432/test?password=***",
        ),
        ("postgresql://rbuser:p@ssHunter2@host/db", "Hunter2", "postgresql://rbuser:***@host/db"),
        ("mysql://u:a/b?cHunter2@h/db", "Hunter2", "mysql://u:***@h/db"),
        (
            "postgresql://u@h/db?sslmode=require&SSLPassword=Hunter2&Api_Key=Hunter2x",
            "Hunter2",
            "postgresql://u@h/db?sslmode=require&SSLPassword=***&Api_Key=***",
        ),
    ],
)
def test_sql_passwords_never_reach_the_description(url: str, secret: str, kept: str) -> None:
    described = SqlSource(url, table="t").describe()
    assert secret not in json.dumps(described)
    assert described["url"] == kept


def test_a_password_in_the_query_string_is_not_recorded_on_the_version(
    local_ws: Workspace, pg_table: str
) -> None:
    url = f"{PG}?password=Hunter2secret"  # trust auth: the password is ignored by the server
    version = local_ws.datasets.ingest("leak", SqlSource(url, table=pg_table))
    assert version.row_count == 4
    assert "Hunter2" not in json.dumps(version.source)
    assert version.source is not None and version.source["url"].endswith("?password=***")


def test_fsspec_urls_lose_userinfo_and_secret_parameters(tmp_path: Path) -> None:
    source = JsonSource("s3://me:Hunter2@bucket/a.ndjson?X-Amz-Signature=Hunter2&region=eu")
    assert source.describe()["url"] == "s3://me:***@bucket/a.ndjson?X-Amz-Signature=***&region=eu"
    plain = JsonSource("s3://bucket/me@example.com/a.ndjson")
    assert plain.describe()["url"] == "s3://bucket/me@example.com/a.ndjson"


# --- 4. an empty Parquet file keeps its columns ----------------------------------------------


def test_an_empty_parquet_file_keeps_its_schema(local_ws: Workspace, tmp_path: Path) -> None:
    pl.DataFrame(schema={"id": pl.Int64, "name": pl.String}).write_parquet(tmp_path / "e.parquet")
    version = local_ws.datasets.ingest("empty", tmp_path / "e.parquet")
    assert version.row_count == 0
    assert version.schema == [("id", "Int64"), ("name", "String")]
    assert local_ws.datasets.read("empty").schema == {"id": pl.Int64, "name": pl.String}


@pytest.mark.parametrize("url", [PG, MARIADB, "sqlite"])
def test_a_query_is_run_as_written_with_colons_and_percents(
    local_ws: Workspace, tmp_path: Path, url: str
) -> None:
    """A ':' in a query is never a bind parameter (JSON literals, 'x :y'), '%' stays '%'."""
    if url == "sqlite":
        url = f"sqlite:///{tmp_path / 'q.db'}"
    query = "select '{\"a\":1}' as j, 'x :y' as t, 'a%b' as p, 2 as n, '12\\:30' as c"
    version = local_ws.datasets.ingest("q", url, query=query)
    rows = local_ws.datasets.read("q", version.version).rows()
    # a colon escaped the way SQLAlchemy's text() asks ("\:") is a colon, as it was
    assert rows == [('{"a":1}', "x :y", "a%b", 2, "12:30")]
