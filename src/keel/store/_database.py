"""The metadata database: one engine per process, and its units of work.

SQLite runs in WAL mode with foreign keys, ``synchronous=NORMAL`` and a busy timeout; every
write transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the lock
instead of failing with "database is locked" when a read transaction tries to upgrade.
PostgreSQL is reached through psycopg 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import ConnectionPoolEntry

from keel.errors import ConflictError, MissingDependencyError, StorageError

__all__ = ["Database", "make_engine"]

#: The execution option that makes a SQLite transaction start with ``BEGIN IMMEDIATE``.
WRITE_OPTION = "keel_write"


def _normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(
    url: str,
    *,
    busy_timeout: float = 60.0,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout: float = 30.0,
    echo: bool = False,
) -> Engine:
    """Create the process's engine for ``url`` with Keel's connection settings."""
    url = _normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": busy_timeout, "check_same_thread": False},
        )
        _configure_sqlite(engine, busy_timeout)
        return engine
    if url.startswith("postgresql+psycopg"):
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "psycopg", extra="postgres", purpose="A PostgreSQL metadata store"
            ) from exc
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
    )


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """Units of work over one engine: ``write()`` and ``read()`` yield ORM sessions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write = sessionmaker(
            bind=engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._read = sessionmaker(bind=engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """The backend's name: ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on any error."""
        with _translated(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction with a consistent snapshot."""
        with _translated(), self._read() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextmanager
def _translated() -> Iterator[None]:
    """Turn driver failures into StorageError with an actionable message."""
    try:
        yield
    except OperationalError as exc:
        text = str(exc.orig) if exc.orig is not None else str(exc)
        if "locked" in text:
            raise StorageError(
                "The metadata store stayed locked longer than the busy timeout. Another "
                "process holds a long write; raise KEEL_BUSY_TIMEOUT or retry.",
                cause=text[:300],
            ) from exc
        raise StorageError(
            f"The metadata store failed: {text[:300]}. Check that the database is reachable "
            "and that KEEL_DB_URL is right (keel config show).",
        ) from exc
    except StaleDataError as exc:
        raise ConflictError(
            "The object was changed by someone else since it was read. Read it again and "
            "retry the change."
        ) from exc
    except DBIntegrityError as exc:
        raise ConflictError(
            "A concurrent change conflicted with this one (a unique name or a reference was "
            f"taken meanwhile). Retry the operation. Detail: {str(exc.orig)[:200]}"
        ) from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"The metadata store failed: {str(exc)[:300]}") from exc
