"""Fixtures shared by the data tests."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

#: The real PostgreSQL every machine runs (trust auth, database ``test``).
PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp folder of this test alone, where archives are unpacked (modules that unpack
    archives use it for every test: ``pytestmark = pytest.mark.usefixtures("private_temp")``)."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


@pytest.fixture
def pg() -> Iterator[Any]:
    """An engine on the real PostgreSQL (its ``test`` database)."""
    engine = create_engine(PG.replace("postgresql://", "postgresql+psycopg://"))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def pg_table(pg: Any) -> Iterator[str]:
    """A unique table name in PostgreSQL, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        with pg.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
