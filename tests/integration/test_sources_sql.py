"""SQL sources read for real from PostgreSQL, MariaDB (pymysql) and SQLite, in chunks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from keel.data import SqlSource
from keel.errors import NotFoundError
from keel.workspace import Workspace

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A table of 2,500 loans on each server; yields (URL, table name)."""
    url = {"postgresql": PG, "mariadb": MARIADB, "sqlite": f"sqlite:///{tmp_path / 'src.db'}"}[
        request.param
    ]
    name = f"loans_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, amount DOUBLE PRECISION, "
                "grade VARCHAR(4), opened DATE)"
            )
        )
        conn.execute(
            text(f"INSERT INTO {name} (id, amount, grade, opened) VALUES (:i, :a, :g, :d)"),
            [
                {"i": i, "a": i * 1.5, "g": "ABC"[i % 3], "d": date(2024, 1 + i % 12, 1)}
                for i in range(2500)
            ],
        )
    try:
        yield url, name
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {name}"))
        engine.dispose()


def test_a_table_is_read_in_chunks_into_one_version(
    local_ws: Workspace, table: tuple[str, str]
) -> None:
    url, name = table
    version = local_ws.datasets.ingest("loans", SqlSource(url, table=name, batch_rows=1000))
    assert version.row_count == 2500
    frame = local_ws.datasets.read("loans").sort("id")
    assert frame["id"].to_list() == list(range(2500))
    assert frame["amount"][10] == 15.0 and frame["grade"][4] == "B"
    assert version.source is not None and version.source["table"] == name
    assert version.source["kind"] == "sql"


def test_a_query_is_read_and_an_unknown_table_is_a_clear_error(
    local_ws: Workspace, table: tuple[str, str]
) -> None:
    url, name = table
    query = f"SELECT id, amount FROM {name} WHERE grade = 'A' ORDER BY id"
    version = local_ws.datasets.ingest("a-grade", url, kind="sql", query=query)
    assert version.row_count == 834
    assert local_ws.datasets.read("a-grade").columns == ["id", "amount"]
    with pytest.raises(NotFoundError, match="does not exist"):
        local_ws.datasets.ingest("nope", SqlSource(url, table="no_such_table"))


def test_passwords_never_reach_the_version() -> None:
    source = SqlSource("postgresql://keel:s3cret@db.example:5432/x", table="t")
    assert "s3cret" not in str(source.describe())
