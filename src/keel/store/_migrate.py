"""Schema migrations (Alembic) and the start-up check that refuses an outdated store.

Each capability adds its tables in a migration of its own under ``migrations/versions``; the
store is current when it holds every head revision (``keel.store._heads``).
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from keel.errors import SchemaOutdatedError
from keel.store._database import WRITE_OPTION
from keel.store._heads import MIGRATIONS as _MIGRATIONS
from keel.store._heads import required_heads

__all__ = ["current_revisions", "ensure_schema", "required_heads", "upgrade"]

#: The PostgreSQL advisory lock held while migrating (an arbitrary constant: "keel" in ASCII).
_SCHEMA_LOCK_KEY = 0x6B65656C


def current_revisions(engine: Engine) -> frozenset[str]:
    """The store's Alembic revisions (empty for a database without a Keel schema)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return frozenset()
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
        return frozenset(str(row) for row in rows)


def upgrade(engine: Engine) -> frozenset[str]:
    """Migrate the store to every head revision and return the revisions it is now at."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    # One migrating process at a time: two processes opening a fresh store at once would both
    # create its tables. SQLite: the write lock from the first statement (BEGIN IMMEDIATE,
    # waiting out the busy timeout); PostgreSQL: a transaction-scoped advisory lock. Alembic
    # reads the store's revision after the lock, so the second process finds nothing to do.
    if engine.dialect.name == "sqlite":
        engine = engine.execution_options(**{WRITE_OPTION: True})
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")
    return current_revisions(engine)


def _show(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "none"


def ensure_schema(engine: Engine, *, create_if_empty: bool) -> None:
    """Check that the store holds every head revision; create it when empty and allowed.

    Raises:
        SchemaOutdatedError: the store is older or newer than this Keel, or empty and not
            allowed to be created here; the message prints the command that fixes it.
    """
    current = current_revisions(engine)
    required = required_heads()
    if current == required:
        return
    where = engine.url.render_as_string(hide_password=True)
    if not current:
        if create_if_empty:
            upgrade(engine)
            return
        raise SchemaOutdatedError(
            f"The metadata store at {where} has no Keel schema yet. Create it with: "
            "keel db upgrade",
            revision=None,
            required=sorted(required),
        )
    raise SchemaOutdatedError(
        f"The metadata store at {where} is at schema revision {_show(current)}, but this "
        f"version of Keel needs {_show(required)}. Upgrade it with: keel db upgrade "
        "(if the store is newer than this Keel, upgrade Keel instead: pip install -U keel-mlops)",
        revision=sorted(current),
        required=sorted(required),
    )
