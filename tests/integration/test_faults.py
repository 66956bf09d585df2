"""A writer killed with SIGKILL at a random moment leaves the store consistent.

Each test starts a worker process (``_workers.py``) that writes in a loop, waits until it has
committed at least once, kills it with SIGKILL after a random delay, and then checks the store
from the outside: every write is there completely or not at all, its audit event exists exactly
when the write does, the audit chain verifies, the SQLite file passes ``integrity_check``, and
the next writer carries on. Three kill cycles per test, on SQLite and on PostgreSQL. The random
seed is in every failure message.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from keel.store import make_engine
from keel.workspace import Workspace, connect
from tests.conftest import make_settings
from tests.integration._workers import PRINCIPAL, Worker

pytestmark = pytest.mark.slow

BATCH = 20_000
KEYS = 2_000
CYCLES = 3


@pytest.fixture
def seed() -> int:
    return int.from_bytes(os.urandom(4), "big")


@pytest.fixture
def engine(backend: str) -> Iterator[Engine]:
    engine = make_engine(backend)
    try:
        yield engine
    finally:
        engine.dispose()


def _open(home: Path, db_url: str) -> Workspace:
    return connect(settings=make_settings(home, db_url), principal=PRINCIPAL)


def _check_sqlite_file(db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        return
    path = db_url.split(":///", 1)[1]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def _kill_mid_loop(worker: Worker, marker: str, rng: random.Random, max_delay: float) -> None:
    """Wait until the worker has committed once, then SIGKILL it after a random delay."""
    worker.wait_for(marker)
    time.sleep(rng.uniform(0.0, max_delay))
    worker.kill()
    assert worker.returncode == -9, f"worker was not killed: stderr {worker.stderr[-2000:]}"


def test_sigkill_during_metric_batches_leaves_whole_batches_only(
    backend: str, tmp_path: Path, engine: Engine, seed: int
) -> None:
    rng = random.Random(seed)
    home = tmp_path / "home"
    ws = _open(home, backend)
    try:
        run_id = ws.runs.start(experiment="faults", capture_env=False).id
    finally:
        ws.close()
    complete = 0
    for cycle in range(CYCLES):
        with Worker(
            "log-forever",
            backend,
            str(home),
            run_id,
            f"--size={BATCH}",
            f"--keys={KEYS}",
            f"--start={complete}",
            cwd=tmp_path,
        ) as worker:
            _kill_mid_loop(worker, "committed", rng, max_delay=0.6)
            announced = sum(line.startswith("committed") for line in worker.lines)
        context = f"seed {seed}, cycle {cycle}, worker said {worker.lines[-3:]}"

        with engine.connect() as conn:
            counts: dict[int, int] = dict(
                conn.execute(
                    text("SELECT step, count(*) FROM metrics WHERE run_id = :r GROUP BY step"),
                    {"r": run_id},
                ).all()
            )
            latest = conn.execute(
                text("SELECT count(*), min(step), max(step) FROM latest_metrics WHERE run_id = :r"),
                {"r": run_id},
            ).one()
        # Every batch is whole or absent, and batches were committed in order.
        assert set(counts.values()) == {BATCH}, context
        assert sorted(counts) == list(range(len(counts))), context
        # A batch the worker saw committed is there; at most one more (killed after COMMIT).
        assert complete + announced <= len(counts) <= complete + announced + 1, context
        complete = len(counts)
        # The latest values moved with their batch, never without it.
        assert tuple(latest) == (KEYS, complete - 1, complete - 1), context
        _check_sqlite_file(backend)

        ws = _open(home, backend)
        try:
            report = ws.audit.verify()
            assert report.ok, f"{context}: chain broken at {report.broken}"
            events = ws.audit.events(action="run.log_batch")
            assert len(events) == complete, context
            assert {e.object_id for e in events} == {run_id}, context
            assert all(e.details["metrics"] == BATCH for e in events), context
            assert len(ws.runs.metric_history(run_id, "k0007")) == complete * BATCH // KEYS
        finally:
            ws.close()

    # The store takes new writes after the last kill, and they are audited.
    ws = _open(home, backend)
    try:
        ws.runs.log_metrics(run_id, {"after": 1.0}, step=complete)
        assert ws.runs.get(run_id).metrics["after"] == 1.0
        assert len(ws.audit.events(action="run.log_batch")) == complete + 1
        assert ws.audit.verify().ok
    finally:
        ws.close()
    _check_sqlite_file(backend)


def test_sigkill_during_alias_moves_keeps_alias_history_and_audit_in_step(
    backend: str, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    home = tmp_path / "home"
    versions = 4
    ws = _open(home, backend)
    try:
        for number in range(1, versions + 1):
            ws.models.register("churn", artifact=f"model {number}".encode(), format="onnx")
    finally:
        ws.close()
    seen_moves = 0
    for cycle in range(CYCLES):
        with Worker(
            "move-alias", backend, str(home), "churn", f"--versions={versions}", cwd=tmp_path
        ) as worker:
            _kill_mid_loop(worker, "moved", rng, max_delay=0.4)
            seen_moves += sum(line.startswith("moved") for line in worker.lines)
        context = f"seed {seed}, cycle {cycle}, worker said {worker.lines[-3:]}"
        _check_sqlite_file(backend)

        ws = _open(home, backend)
        try:
            report = ws.audit.verify()
            assert report.ok, f"{context}: chain broken at {report.broken}"
            history = ws.models.alias_history("churn", "champion")
            events = ws.audit.events(action="model.set_alias")
            current = ws.models.version("churn@champion").version
            assert 1 <= current <= versions, context
            assert len(history) == len(events), context
            # Killed after a COMMIT but before printing: at most one move more than announced.
            assert seen_moves <= len(history) <= seen_moves + cycle + 1, context
            assert history[-1].to_version == current, context
            assert events[-1].details["to"] == current, context
            assert [e.details["to"] for e in events] == [m.to_version for m in history], context
            assert all(m.kind == "set" for m in history), context
        finally:
            ws.close()

    ws = _open(home, backend)
    try:
        target = current % versions + 1
        ws.models.set_alias("churn", "champion", target, reason="after the kills")
        assert ws.models.rollback("churn", "champion").to_version == current
        assert ws.models.version("churn@champion").version == current
        assert ws.audit.verify().ok
    finally:
        ws.close()
    _check_sqlite_file(backend)
