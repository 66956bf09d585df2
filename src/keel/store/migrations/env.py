"""Alembic environment: runs on the connection handed over by keel.store.upgrade."""

from __future__ import annotations

from alembic import context

from keel.store._schema import load_all_tables

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI
    raise RuntimeError("Run migrations with `keel db upgrade`, not the alembic command.")

context.configure(
    connection=connection,
    target_metadata=load_all_tables(),  # every table module, not only those imported so far
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
