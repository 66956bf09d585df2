"""Alembic environment: runs on the connection handed over by keel.store.upgrade."""

from __future__ import annotations

from alembic import context

import keel.store  # noqa: F401  (imports every table module onto Base.metadata)
from keel.store._schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI
    raise RuntimeError("Run migrations with `keel db upgrade`, not the alembic command.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
