"""SQLite's WAL checkpoints on a background thread, off the request that commits.

SQLite copies the write-ahead log back into the database file (a checkpoint) from inside the
commit that takes the log past ``wal_autocheckpoint`` pages: about one write in thirty of a
busy server then waits 20-70 ms for it. A long-running process (``keel server``) instead
raises that threshold to a safety net and checkpoints passively every ``interval`` seconds
from its own thread and connection; a PASSIVE checkpoint never waits for readers or writers,
so the requests go on meanwhile. PostgreSQL has nothing to do here.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["WalCheckpointer"]

_log = logging.getLogger("keel.store")

# Pages in the log before a committing connection checkpoints itself anyway: the safety net for
# a checkpointer that cannot keep up (about 40 MB of 4 KiB pages).
_SAFETY_NET_PAGES = 10_000


class WalCheckpointer:
    """Checkpoints ``engine``'s SQLite database in the background while started."""

    def __init__(self, engine: Engine, *, interval: float = 0.5) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # how many checkpoints moved pages (for tests and diagnostics)

    @property
    def active(self) -> bool:
        return self._thread is not None

    def start(self) -> WalCheckpointer:
        """Raise every connection's own threshold and start the thread (SQLite only)."""
        database = self._engine.url.database or ""
        if self._engine.dialect.name != "sqlite" or database in ("", ":memory:"):
            return self  # PostgreSQL checkpoints itself; an in-memory database has no log
        if self._thread is not None:
            return self
        event.listen(self._engine, "connect", _raise_threshold)
        self._engine.dispose()  # pooled connections reopen with the new threshold
        self._thread = threading.Thread(target=self._run, name="keel-wal-checkpoint", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after a last checkpoint; connections keep the raised threshold
        until the engine is disposed (SQLite checkpoints when the last one closes)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        event.remove(self._engine, "connect", _raise_threshold)

    def _run(self) -> None:
        connection: Any = None
        try:
            connection = self._engine.raw_connection()
            while True:
                stopping = self._stop.wait(self._interval)
                self._checkpoint(connection)
                if stopping:
                    return
        except Exception:  # the safety net still checkpoints on commit; never kill the server
            _log.exception("The background WAL checkpoint stopped; commits checkpoint instead.")
        finally:
            if connection is not None:
                connection.close()

    def _checkpoint(self, connection: Any) -> None:
        cursor = connection.cursor()
        try:
            # (busy, pages in the log, pages checkpointed); the connection is in autocommit
            # mode (keel's connect hook), so no transaction is open around it.
            row = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            cursor.close()
        if row is not None and row[2] and row[2] > 0:
            self.checkpoints += 1


def _raise_threshold(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA wal_autocheckpoint={_SAFETY_NET_PAGES}")
    cursor.close()
