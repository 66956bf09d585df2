"""Read-only access to the metadata store through the bare DB-API driver, without SQLAlchemy.

A short-lived command that only reads (``keel plan`` in a CI job) pays more for importing
SQLAlchemy and the table declarations than for its work: about 0.3-0.5 s of a 1 s start on a
2-core machine. ``ReadOnlyStore`` opens the same database with ``sqlite3`` or ``psycopg`` and
answers the few queries such a command needs in plain SQL, all in one read-only transaction.
It changes no data; like any SQLite reader, opening a WAL-mode store may create its ``-wal``
and ``-shm`` files, and the last connection to close checkpoints a WAL a crashed writer left.

It opens only a store whose schema holds every head revision, so that its SQL matches the
tables. For anything else (another backend, a missing or outdated store, a driver error)
``open`` returns None and the caller takes the full path, which reports the problem.
``tests/store/test_readonly.py`` checks every query against the repositories on one store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from keel.store._heads import required_heads

__all__ = ["ReadOnlyStore", "ReadOnlyStoreError", "TriggerRecord"]


class ReadOnlyStoreError(Exception):
    """The driver failed mid-way: the caller should take the full path instead."""


@dataclass(frozen=True, slots=True)
class TriggerRecord:
    """A pipeline trigger as stored (the fields a project file describes)."""

    name: str
    pipeline: str
    kind: str
    spec: dict[str, Any]
    params: dict[str, Any]
    enabled: bool


def _json(value: Any) -> Any:
    """A JSON column's value: text on SQLite, already decoded by psycopg."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL, or None when SQLAlchemy might read the URL otherwise."""
    path = url.split(":///", 1)[1]
    if not path or path == ":memory:" or "%" in path or "?" in path:
        return None  # percent-escapes and query options: SQLAlchemy's parsing, not ours
    return path


def _postgres_conninfo(url: str) -> str | None:
    """A libpq URI meaning what SQLAlchemy makes of ``url``, or None when it might not."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            rest = url[len(prefix) :]
            break
    else:
        return None
    query = rest.partition("?")[2]
    if query:
        keys = [item.partition("=")[0] for item in query.split("&")]
        if "+" in query or len(keys) != len(set(keys)):
            return None  # SQLAlchemy decodes '+' and joins repeated hosts; libpq does neither
    return "postgresql://" + rest


class ReadOnlyStore:
    """One read-only transaction on the metadata store, queried in plain SQL."""

    def __init__(self, connection: Any, *, paramstyle: str, errors: tuple[type[Exception], ...]):
        self._conn = connection
        self._paramstyle = paramstyle
        self._errors = errors

    @classmethod
    def open(cls, url: str, *, busy_timeout: float = 60.0) -> ReadOnlyStore | None:
        """The store at SQLAlchemy ``url``, or None when only the full path can open it."""
        store = cls._connect(url, busy_timeout)
        if store is None:
            return None
        try:
            rows = store._rows("SELECT version_num FROM alembic_version")
            revisions = {str(version) for (version,) in rows}
        except ReadOnlyStoreError:
            revisions = set()
        if revisions != set(required_heads()):
            store.close()
            return None
        return store

    @classmethod
    def _connect(cls, url: str, busy_timeout: float) -> ReadOnlyStore | None:
        if url.startswith("sqlite:///"):
            path = _sqlite_path(url)
            if path is None or not Path(path).is_file():
                return None
            try:
                # mode=rw never creates the file; BEGIN holds one snapshot for every query.
                conn = sqlite3.connect(
                    f"{Path(path).resolve().as_uri()}?mode=rw",
                    uri=True,
                    timeout=busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error:
                return None
            try:
                conn.execute("PRAGMA query_only=ON")
                conn.execute("BEGIN")
            except sqlite3.Error:
                conn.close()
                return None
            return cls(conn, paramstyle="qmark", errors=(sqlite3.Error,))
        conninfo = _postgres_conninfo(url)
        if conninfo is None:
            return None
        try:
            import psycopg
        except ImportError:
            return None
        # Without a connect_timeout of its own, an unreachable server is given up on after
        # 10 s (the full path then tries, and reports it).
        if "connect_timeout=" not in conninfo:
            conninfo += ("&" if "?" in conninfo else "?") + "connect_timeout=10"
        try:
            server = psycopg.connect(conninfo)
        except (psycopg.Error, ValueError):
            return None
        try:
            server.read_only = True
            server.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot
        except psycopg.Error:
            server.close()
            return None
        return cls(server, paramstyle="format", errors=(psycopg.Error,))

    def __enter__(self) -> ReadOnlyStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the transaction (nothing was written) and the connection."""
        try:
            self._conn.rollback()
        except self._errors:
            pass
        finally:
            self._conn.close()

    def _rows(self, sql: str, *params: Any) -> Iterator[tuple[Any, ...]]:
        if self._paramstyle == "format":
            sql = sql.replace("?", "%s")
        try:
            cursor = self._conn.cursor()
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            cursor.close()
        except self._errors as exc:
            raise ReadOnlyStoreError(str(exc)) from exc
        return iter(rows)

    # --- the queries (each mirrors a repository's; see the module docstring) --------------

    def project_id(self, name: str) -> str | None:
        """The id of the project called ``name`` (ProjectRepository.by_name)."""
        for (project_id,) in self._rows("SELECT id FROM projects WHERE name = ?", name):
            return str(project_id)
        return None

    def roles_of(self, project_id: str, principal: str) -> frozenset[str]:
        """The roles ``principal`` holds in the project (ProjectRepository.roles_of)."""
        rows = self._rows(
            "SELECT role FROM role_bindings WHERE project_id = ? AND principal = ?",
            project_id,
            principal,
        )
        return frozenset(str(role) for (role,) in rows)

    def bindings(self, project_id: str) -> dict[str, str]:
        """Principal → role in the project (ProjectRepository.bindings)."""
        rows = self._rows(
            "SELECT principal, role FROM role_bindings WHERE project_id = ? ORDER BY principal",
            project_id,
        )
        return {str(principal): str(role) for principal, role in rows}

    def resources(self, project_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The project file's resources as last applied (ProjectStateRepository.resources)."""
        rows = self._rows(
            "SELECT kind, name, spec FROM project_resources WHERE project_id = ? "
            "ORDER BY kind, name",
            project_id,
        )
        return {(str(kind), str(name)): dict(_json(spec)) for kind, name, spec in rows}

    def triggers(self, project_id: str) -> list[TriggerRecord]:
        """The project's pipeline triggers by name (TriggerRepository.all)."""
        rows = self._rows(
            "SELECT name, pipeline, kind, spec, params, enabled FROM pipeline_triggers "
            "WHERE project_id = ? ORDER BY name",
            project_id,
        )
        return [
            TriggerRecord(
                name=str(name),
                pipeline=str(pipeline),
                kind=str(kind),
                spec=dict(_json(spec)),
                params=dict(_json(params) or {}),
                enabled=bool(enabled),
            )
            for name, pipeline, kind, spec, params, enabled in rows
        ]

    def model_description(self, project_id: str, name: str) -> str | None:
        """The registered model's description, None when there is no such model."""
        rows = self._rows(
            "SELECT description FROM registered_models WHERE project_id = ? AND name = ?",
            project_id,
            name,
        )
        for (description,) in rows:
            return str(description or "")
        return None

    def monitor_names(self, project_id: str) -> list[str]:
        """The names of the project's monitors (MonitorRepository.list)."""
        rows = self._rows(
            "SELECT name FROM monitors WHERE project_id = ? ORDER BY name", project_id
        )
        return [str(name) for (name,) in rows]
