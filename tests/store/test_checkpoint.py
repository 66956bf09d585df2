"""SQLite's WAL checkpoints run on the checkpointer's thread, not inside a committing write."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from keel.store import WalCheckpointer, make_engine


def _wal_pages(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size // 4096 if wal.exists() else 0


def test_commits_leave_the_checkpoint_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
    checkpointer = WalCheckpointer(engine, interval=0.05).start()
    try:
        assert checkpointer.active
        with engine.connect() as conn:
            threshold = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert threshold == 10_000  # a commit no longer checkpoints at SQLite's 1,000 pages
        for _ in range(20):  # ~2,000 pages of log: past the default threshold
            with engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO t (body) VALUES (:b)"),
                    [{"b": "x" * 3000} for _ in range(100)],
                )
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.checkpoints > 0
    finally:
        checkpointer.stop()
    assert not checkpointer.active
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM t").scalar_one() == 2000
    engine.dispose()
    assert _wal_pages(path) == 0  # the last connection to close checkpointed and removed it


def test_without_the_thread_a_commit_checkpoints_itself(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000
    engine.dispose()


def test_nothing_to_do_for_an_in_memory_database() -> None:
    engine = make_engine("sqlite:///:memory:")
    checkpointer = WalCheckpointer(engine).start()
    assert not checkpointer.active
    checkpointer.stop()
