"""Several processes write to one store at once: nothing is lost, nobody sees a lock error.

Each worker (``_workers.py ingest``) opens its own Workspace, waits at a barrier (``go`` on
stdin) so that all of them start writing together, starts its own run, logs its batches (with a
few reads in between), ends the run and exits. The parent then counts every row, checks every
run's history and latest values, and walks the audit chain.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text

from keel.store import make_engine
from keel.types import RunStatus
from keel.workspace import Workspace, connect
from tests.conftest import make_settings, reset_postgres
from tests.integration._workers import PRINCIPAL, Worker

pytestmark = pytest.mark.slow

BATCHES = 50
SIZE = 200
KEYS = 20


def _open(home: Path, db_url: str) -> Workspace:
    return connect(settings=make_settings(home, db_url), principal=PRINCIPAL)


def _run_workers(
    db_url: str, tmp_path: Path, count: int, *, experiment: str, batches: int = BATCHES
) -> list[str]:
    """Start ``count`` ingest workers together; the run ids they report, once all exit 0."""
    home = str(tmp_path / "home")
    with ExitStack() as stack:
        workers = [
            stack.enter_context(
                Worker(
                    "ingest",
                    db_url,
                    home,
                    f"--experiment={experiment}",
                    f"--batches={batches}",
                    f"--size={SIZE}",
                    f"--keys={KEYS}",
                    cwd=tmp_path,
                )
            )
            for _ in range(count)
        ]
        for worker in workers:
            worker.wait_for("ready", timeout=120)
        for worker in workers:
            worker.send("go")
        codes = [worker.wait(timeout=120) for worker in workers]
    for worker, code in zip(workers, codes, strict=True):
        assert "locked" not in worker.stderr.lower(), worker.stderr[-3000:]
        assert code == 0, f"worker exited {code}:\n{worker.stderr[-3000:]}"
    run_ids = [line.split()[1] for w in workers for line in w.lines if line.startswith("done ")]
    assert len(set(run_ids)) == count
    return run_ids


def _check_store(
    db_url: str, tmp_path: Path, run_ids: list[str], *, experiment: str, batches: int = BATCHES
) -> None:
    per_run = batches * SIZE
    per_key = batches * (SIZE // KEYS)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            total = conn.execute(text("SELECT count(*) FROM metrics")).scalar_one()
            rows = conn.execute(
                text(
                    "SELECT run_id, key, count(*), count(DISTINCT step), min(step), max(step) "
                    "FROM metrics GROUP BY run_id, key"
                )
            ).all()
    finally:
        engine.dispose()
    assert total == len(run_ids) * per_run
    assert {(r[0], r[1]) for r in rows} == {
        (run, f"k{k:02d}") for run in run_ids for k in range(KEYS)
    }
    assert all(tuple(r[2:]) == (per_key, batches, 0, batches - 1) for r in rows)

    ws = _open(tmp_path / "home", db_url)
    try:
        last_i = (SIZE // KEYS - 1) * KEYS  # the last index of key k00 in a batch
        for run_id in run_ids:
            run = ws.runs.get(run_id)
            assert run.status is RunStatus.FINISHED
            assert len(run.metrics) == KEYS
            # The latest value is the one at the highest (step, timestamp).
            for k in range(KEYS):
                assert run.metrics[f"k{k:02d}"] == float((batches - 1) * SIZE + last_i + k)
            history = ws.runs.metric_history(run_id, "k03")
            assert len(history) == per_key
            assert [m.step for m in history] == sorted(m.step for m in history)
        experiments = {e.name: e.id for e in ws.experiments.list()}
        found = ws.runs.search(experiments=[experiment], max_results=1000).runs
        assert sorted(r.id for r in found) == sorted(run_ids)
        assert {r.experiment_id for r in found} == {experiments[experiment]}

        report = ws.audit.verify()
        assert report.ok, f"chain broken at {report.broken}"
        events = ws.audit.events()
        actions = [e.action for e in events]
        assert actions.count("experiment.create") == 1
        assert actions.count("run.create") == len(run_ids)
        assert actions.count("run.log_batch") == len(run_ids) * batches
        assert actions.count("run.end") == len(run_ids)
        assert {e.outcome for e in events} == {"success"}
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert report.checked == report.head_seq == len(events)
    finally:
        ws.close()


@pytest.fixture
def pg_store(pg_url: str) -> str:
    reset_postgres(pg_url)
    return pg_url


def test_eight_processes_log_into_one_sqlite_store_without_loss_or_lock_errors(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'keel.db'}"
    ws = _open(tmp_path / "home", db_url)
    ws.experiments.create("load")
    ws.close()
    run_ids = _run_workers(db_url, tmp_path, 8, experiment="load")
    _check_store(db_url, tmp_path, run_ids, experiment="load")


def test_four_processes_log_into_one_postgres_store_without_loss(
    pg_store: str, tmp_path: Path
) -> None:
    ws = _open(tmp_path / "home", pg_store)
    ws.experiments.create("load")
    ws.close()
    run_ids = _run_workers(pg_store, tmp_path, 4, experiment="load")
    _check_store(pg_store, tmp_path, run_ids, experiment="load")


def test_first_runs_of_a_new_experiment_started_together_create_it_once(
    backend: str, tmp_path: Path
) -> None:
    """``runs.start`` creates a missing experiment; racing workers must share one."""
    _open(tmp_path / "home", backend).close()
    run_ids = _run_workers(backend, tmp_path, 4, experiment="fresh", batches=5)
    _check_store(backend, tmp_path, run_ids, experiment="fresh", batches=5)


def test_first_versions_of_a_new_model_registered_together_all_succeed(
    backend: str, tmp_path: Path
) -> None:
    """``models.register`` creates a missing model; racing registrations get versions 1..n."""
    _open(tmp_path / "home", backend).close()
    home = str(tmp_path / "home")
    with ExitStack() as stack:
        workers = [
            stack.enter_context(Worker("register", backend, home, "fresh", cwd=tmp_path))
            for _ in range(4)
        ]
        for worker in workers:
            worker.wait_for("ready", timeout=120)
        for worker in workers:
            worker.send("go")
        codes = [worker.wait(timeout=120) for worker in workers]
    for worker, code in zip(workers, codes, strict=True):
        assert code == 0, f"worker exited {code}:\n{worker.stderr[-3000:]}"
    got = sorted(int(line.split()[1]) for w in workers for line in w.lines if "version" in line)
    assert got == [1, 2, 3, 4]
    ws = _open(tmp_path / "home", backend)
    try:
        assert [v.version for v in ws.models.versions("fresh")] == [1, 2, 3, 4]
        assert len(ws.audit.events(action="model.register")) == 4
        assert ws.audit.verify().ok
    finally:
        ws.close()
