"""Throw-away metadata stores for the benchmarks: a SQLite folder, or a PostgreSQL database.

Imported by the benchmark scripts (run as ``python bench/<script>.py``, so this folder is on
the path); each store is removed when its ``with`` block ends.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from keel.store import make_engine, upgrade

__all__ = ["postgres_store", "sqlite_store"]


@contextmanager
def sqlite_store() -> Iterator[tuple[str, Path]]:
    """A fresh KEEL_HOME folder and the URL of its SQLite database."""
    home = Path(tempfile.mkdtemp(prefix="keel-bench-"))
    try:
        yield f"sqlite:///{home / 'keel.db'}", home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def postgres_store(admin_url: str) -> Iterator[tuple[str, Path]]:
    """A new PostgreSQL database at the current schema (dropped afterwards) and a KEEL_HOME."""
    name = f"keel_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    home = Path(tempfile.mkdtemp(prefix="keel-bench-"))
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url, home
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(home, ignore_errors=True)
