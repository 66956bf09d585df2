"""Migrations create exactly the models' schema, and an outdated store is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from keel.errors import SchemaOutdatedError
from keel.store import current_revisions, ensure_schema, make_engine, required_heads, upgrade
from keel.store._migrate import _MIGRATIONS
from keel.store._schema import Base


def test_scanned_heads_match_alembics_own_view() -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    assert required_heads() == frozenset(ScriptDirectory.from_config(config).get_heads())


def test_migrated_database_matches_the_models(backend: str, tmp_path: Path) -> None:
    engine = make_engine(backend)
    upgrade(engine)  # idempotent at head (the PostgreSQL database is already migrated)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_fresh_sqlite_is_created_at_head(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    ensure_schema(engine, create_if_empty=True)
    assert current_revisions(engine) == required_heads()
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_empty_store_without_create_asks_for_keel_db_upgrade(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    with pytest.raises(SchemaOutdatedError, match="keel db upgrade"):
        ensure_schema(engine, create_if_empty=False)
    engine.dispose()


def test_older_schema_is_refused_with_the_upgrade_command(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0001')"))
    with pytest.raises(
        SchemaOutdatedError, match=r"revision 0001, but.*Upgrade it with: keel db upgrade"
    ):
        ensure_schema(engine, create_if_empty=True)
    engine.dispose()
