"""Shared fixtures: a Workspace on each metadata backend (SQLite, and the real PostgreSQL).

PostgreSQL tests use the server at ``$KEEL_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``): the session creates its own database with a
unique name and drops it at the end. If the server is down the suite fails loudly; set
``KEEL_TEST_SKIP_POSTGRES=1`` to skip those tests on purpose (the skip is reported).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text

from keel.settings import Settings
from keel.store import make_engine, upgrade
from keel.store._schema import Base
from keel.workspace import Workspace, connect

PG_ADMIN_URL = os.environ.get(
    "KEEL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SKIP_PG = os.environ.get("KEEL_TEST_SKIP_POSTGRES") == "1"

# Property tests check outcomes, not speed: on a loaded 2-core CI machine one example can take
# longer than Hypothesis's default 200 ms deadline, which would fail a correct test.
hypothesis_settings.register_profile("keel", deadline=None)
hypothesis_settings.load_profile("keel")


def _admin_engine() -> object:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, at the current schema."""
    if SKIP_PG:
        pytest.skip("KEEL_TEST_SKIP_POSTGRES=1: PostgreSQL tests skipped on request")
    name = f"keel_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}). Start it (see "
            "../shared/SERVICES.md) or set KEEL_TEST_SKIP_POSTGRES=1 to skip on purpose.",
            pytrace=False,
        )
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def reset_postgres(url: str) -> None:
    """Empty every table (and re-seed the audit head) so each test starts clean."""
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64}
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata store URL for each backend the contract suite runs on."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keel.db'}"
    url: str = request.getfixturevalue("pg_url")
    reset_postgres(url)
    return url


def make_settings(home: Path, db_url: str | None = None, **extra: object) -> Settings:
    return Settings(home=home, db_url=db_url, **extra)  # type: ignore[arg-type]


@pytest.fixture
def ws(backend: str, tmp_path: Path) -> Iterator[Workspace]:
    """A Workspace on ``backend``, its blobs and key under ``tmp_path``."""
    settings = make_settings(tmp_path / "home", backend)
    workspace = connect(settings=settings, principal="user:tester")
    try:
        yield workspace
    finally:
        workspace.close()


@pytest.fixture
def local_ws(tmp_path: Path) -> Iterator[Workspace]:
    """A Workspace on the embedded default (SQLite in a temporary KEEL_HOME)."""
    workspace = connect(settings=make_settings(tmp_path / "home"), principal="user:tester")
    try:
        yield workspace
    finally:
        workspace.close()


__all__ = ["make_settings", "reset_postgres"]
