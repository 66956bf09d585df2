"""Schema migrations (Alembic) and the start-up check that refuses an outdated store."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text

from keel.errors import SchemaOutdatedError

__all__ = ["HEAD_REVISION", "current_revision", "ensure_schema", "upgrade"]

#: The Alembic revision this version of Keel needs (a test keeps it equal to the script head).
HEAD_REVISION = "0001"

_MIGRATIONS = Path(__file__).with_name("migrations")


def current_revision(engine: Engine) -> str | None:
    """The store's Alembic revision, or None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the store to ``revision`` (default: the newest) and return the new revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return current_revision(engine) or ""


def ensure_schema(engine: Engine, *, create_if_empty: bool) -> None:
    """Check that the store is at ``HEAD_REVISION``; create it when empty and allowed.

    Raises:
        SchemaOutdatedError: the store is older or newer than this Keel, or empty and not
            allowed to be created here; the message prints the command that fixes it.
    """
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    where = engine.url.render_as_string(hide_password=True)
    if revision is None:
        if create_if_empty:
            upgrade(engine)
            return
        raise SchemaOutdatedError(
            f"The metadata store at {where} has no Keel schema yet. Create it with: "
            "keel db upgrade",
            revision=None,
            required=HEAD_REVISION,
        )
    raise SchemaOutdatedError(
        f"The metadata store at {where} is at schema revision {revision}, but this version of "
        f"Keel needs {HEAD_REVISION}. Upgrade it with: keel db upgrade "
        "(if the store is newer than this Keel, upgrade Keel instead: pip install -U keel-mlops)",
        revision=revision,
        required=HEAD_REVISION,
    )
