"""Scheduler replicas and their leases, on SQLite and the real PostgreSQL: a replica that
stalled or was killed (kill -9) past its lease, the run it started, two scheduler processes at
once, and a daemon that outlives store errors and broken pipeline modules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keel import clock
from keel.errors import ConflictError, StorageError
from keel.pipelines import Pipeline, Scheduler
from keel.store import TriggerRepository
from keel.workspace import Workspace, connect
from tests.conftest import make_settings
from tests.pipelines import _steps, _trigger_steps
from tests.pipelines._trigger_steps import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _arith(name: str) -> Pipeline:
    assert name == "arith"
    return _steps.arith


# -- leases -----------------------------------------------------------------------------------


def test_a_replica_that_lost_its_lease_cannot_overwrite_the_new_holder(ws: Workspace) -> None:
    pipelines = ws.pipelines
    pipelines.create_trigger("on-d", pipeline="arith", kind="dataset", spec={"dataset": "d"})
    pipelines.fire_event("dataset", "d", event_id="d@1")
    triggers = pipelines.service.triggers
    now = clock.now()
    ((stalled, _),) = triggers.claim(ws.ctx, now, owner="A", lease=timedelta(minutes=5))
    assert triggers.claim(ws.ctx, now, owner="B", lease=timedelta(minutes=5)) == []
    later = now + timedelta(minutes=6)  # A stalled past its lease; B takes the firing
    ((taken, _),) = triggers.claim(ws.ctx, later, owner="B", lease=timedelta(minutes=5))
    assert taken.id == stalled.id
    assert not triggers.extend(ws.ctx, stalled.id, owner="A", until=later)
    with pytest.raises(ConflictError, match=r"no longer held by A \(now running, held by B\)"):
        triggers.complete(ws.ctx, stalled.id, owner="A", status="done", pipeline_run_id=None)
    (firing,) = pipelines.firings()
    assert (firing.status, firing.lease_owner, firing.finished_at) == ("running", "B", None)
    assert triggers.extend(ws.ctx, taken.id, owner="B", until=later + timedelta(minutes=5))
    triggers.complete(ws.ctx, taken.id, owner="B", status="failed", pipeline_run_id=None)
    (firing,) = pipelines.firings()
    assert (firing.status, firing.lease_owner) == ("failed", "B")


_CHILD = """
import sys
from datetime import timedelta
from keel.pipelines import Scheduler
from keel.settings import Settings
from keel.workspace import connect
from tests.pipelines._trigger_steps import holding

ws = connect(settings=Settings(home=sys.argv[1], db_url=sys.argv[2]), principal="user:tester")
scheduler = Scheduler(
    ws.pipelines.service, ws.ctx, resolve=lambda name: holding, owner="doomed",
    lease=timedelta(seconds=2),
)
scheduler.tick()
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def shared(backend: str, home: Path) -> Iterator[Workspace]:
    """A workspace whose store and home a child process opens too."""
    workspace = connect(settings=make_settings(home, backend), principal="user:tester")
    try:
        yield workspace
    finally:
        workspace.close()


def _hold(ws: Workspace, workdir: Path) -> None:
    workdir.mkdir()
    (workdir / "hold").write_text("1", encoding="utf-8")
    ws.pipelines.create_trigger(
        "on-d",
        pipeline="trigger-hold",
        kind="dataset",
        spec={"dataset": "d"},
        params={"workdir": str(workdir)},
    )
    ws.pipelines.fire_event("dataset", "d", event_id="d@1")


def _holding(name: str) -> Pipeline:
    assert name == "trigger-hold"
    return _trigger_steps.holding


def test_a_killed_replicas_firing_resumes_its_run_instead_of_running_twice(
    shared: Workspace, backend: str, home: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    _hold(shared, workdir)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(home), backend], cwd=ROOT, env=env)
    try:
        wait_until("the replica to start the held step", (workdir / "started").exists)
        (run,) = shared.pipelines.runs(pipeline="trigger-hold")
        wait_until(
            "the first step to be recorded",
            lambda: shared.pipelines.get(run.id).step("before").status.value == "COMPLETED",
        )
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    (workdir / "hold").unlink()
    scheduler = Scheduler(shared.pipelines.service, shared.ctx, resolve=_holding, owner="heir")
    (outcome,) = wait_until("the lease of the killed replica to expire", scheduler.tick)
    assert (outcome.status, outcome.pipeline_run_id) == ("done", run.id)
    (only,) = shared.pipelines.runs(pipeline="trigger-hold")
    assert only.id == run.id and only.status.value == "FINISHED"
    assert [_steps.calls(workdir, s) for s in ("before", "held", "after")] == [1, 2, 1]
    (firing,) = shared.pipelines.firings()
    assert (firing.status, firing.lease_owner, firing.pipeline_run_id) == ("done", "heir", run.id)
    assert scheduler.tick() == []


_REPLICA = """
import json, sys, time
from pathlib import Path
from keel.pipelines import Scheduler
from keel.settings import Settings
from keel.workspace import connect
from tests.pipelines._steps import arith

ws = connect(settings=Settings(home=sys.argv[1], db_url=sys.argv[2]), principal="user:tester")
scheduler = Scheduler(ws.pipelines.service, ws.ctx, resolve=lambda name: arith, owner=sys.argv[3])
go = Path(sys.argv[4]) / "go"
while not go.exists():
    time.sleep(0.01)
ran = [o.firing.id for o in scheduler.tick()]
(Path(sys.argv[4]) / sys.argv[3]).write_text(json.dumps(ran))
"""


def test_two_scheduler_processes_run_each_firing_once(
    shared: Workspace, backend: str, home: Path, tmp_path: Path
) -> None:
    pipelines = shared.pipelines
    pipelines.create_trigger("on-d", pipeline="arith", kind="dataset", spec={"dataset": "d"})
    for version in range(8):
        pipelines.fire_event("dataset", "d", event_id=f"d@{version}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", _REPLICA, str(home), backend, name, str(tmp_path)],
            cwd=ROOT,
            env=env,
        )
        for name in ("replica-1", "replica-2")
    ]
    (tmp_path / "go").write_text("1", encoding="utf-8")
    for replica in replicas:
        assert replica.wait(timeout=300) == 0
    ran = [json.loads((tmp_path / name).read_text()) for name in ("replica-1", "replica-2")]
    firings = pipelines.firings()
    assert sorted(ran[0] + ran[1]) == sorted(f.id for f in firings)  # each exactly once
    assert len(firings) == 8 and all(f.status == "done" for f in firings)
    assert {f.pipeline_run_id for f in firings} == {
        r.id for r in pipelines.runs(pipeline="arith", limit=100)
    }
    assert len(pipelines.runs(pipeline="arith", limit=100)) == 8


def test_a_run_that_ended_before_its_replica_died_is_recorded_not_run_again(
    ws: Workspace, tmp_path: Path
) -> None:
    pipelines = ws.pipelines
    pipelines.create_trigger(
        "on-d",
        pipeline="arith",
        kind="dataset",
        spec={"dataset": "d"},
        params={"workdir": str(tmp_path)},
    )
    pipelines.fire_event("dataset", "d", event_id="d@1")
    triggers = pipelines.service.triggers
    ((firing, trigger),) = triggers.claim(
        ws.ctx, clock.now(), owner="ghost", lease=timedelta(minutes=5)
    )
    # what the replica did before it died between the end of the run and complete()
    ended = pipelines.service.run(
        ws.ctx,
        _steps.arith,
        params={"workdir": str(tmp_path)},
        trigger="dataset",
        cause={**firing.cause, "firing_id": firing.id, "trigger_id": trigger.id},
    )
    _expire(ws, firing.id)  # ... and its lease then ran out
    (outcome,) = Scheduler(pipelines.service, ws.ctx, resolve=_arith, owner="heir").tick()
    assert (outcome.status, outcome.pipeline_run_id) == ("done", ended.id)
    assert [r.id for r in pipelines.runs(pipeline="arith")] == [ended.id]
    assert _steps.calls(tmp_path, "source") == 1
    (recorded,) = pipelines.firings()
    assert (recorded.status, recorded.pipeline_run_id) == ("done", ended.id)


def _expire(ws: Workspace, firing_id: str) -> None:
    with ws._governor.db.write() as session:
        row = TriggerRepository(session, ws.ctx.project_id).firing(firing_id)
        assert row is not None
        row.lease_expires_at = clock.now() - timedelta(seconds=1)


def test_a_firing_whose_run_still_runs_elsewhere_waits_for_it(
    ws: Workspace, tmp_path: Path
) -> None:
    """A replica stalled past its lease still runs the pipeline: the next holder must not
    start a second run; once the run ends, a later claim records it."""
    workdir = tmp_path / "work"
    _hold(ws, workdir)
    pipelines = ws.pipelines
    triggers = pipelines.service.triggers
    ((firing, trigger),) = triggers.claim(
        ws.ctx, clock.now(), owner="stalled", lease=timedelta(minutes=5)
    )
    ran: dict[str, Any] = {}

    def stalled() -> None:  # the stalled replica's run, alive in this process
        ran["result"] = pipelines.service.run(
            ws.ctx,
            _trigger_steps.holding,
            params={"workdir": str(workdir)},
            trigger="dataset",
            cause={**firing.cause, "firing_id": firing.id, "trigger_id": trigger.id},
        )

    thread = threading.Thread(target=stalled)
    thread.start()
    scheduler = Scheduler(
        pipelines.service, ws.ctx, resolve=_holding, owner="heir", lease=timedelta(seconds=1)
    )
    try:
        wait_until("the stalled replica's run to start", (workdir / "started").exists)
        _expire(ws, firing.id)
        (deferred,) = scheduler.tick()
        assert deferred.status == "deferred" and "still running" in (deferred.error or "")
        (run,) = pipelines.runs(pipeline="trigger-hold")
        assert deferred.pipeline_run_id == run.id
        assert pipelines.firings()[0].status == "running"
    finally:
        (workdir / "hold").unlink()
        thread.join(timeout=120)
    assert ran["result"].ok
    (outcome,) = wait_until("a later claim", scheduler.tick)
    assert (outcome.status, outcome.pipeline_run_id) == ("done", run.id)
    assert [r.id for r in pipelines.runs(pipeline="trigger-hold")] == [run.id]
    assert [_steps.calls(workdir, s) for s in ("before", "held", "after")] == [1, 1, 1]


def test_the_lease_keeper_survives_a_store_error(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    _hold(local_ws, workdir)
    triggers = local_ws.pipelines.service.triggers
    extend = triggers.extend
    calls: list[str] = []

    def flaky(*args: Any, **kwargs: Any) -> bool:
        calls.append("extend")
        if len(calls) == 1:
            raise StorageError("The metadata store failed: connection reset.")
        if len(calls) >= 3:
            (workdir / "hold").unlink(missing_ok=True)
        return extend(*args, **kwargs)

    monkeypatch.setattr(triggers, "extend", flaky)
    scheduler = Scheduler(
        local_ws.pipelines.service,
        local_ws.ctx,
        resolve=_holding,
        owner="keeper",
        lease=timedelta(seconds=0.6),
    )
    (outcome,) = scheduler.tick()
    assert outcome.status == "done"
    assert len(calls) >= 3  # it renewed again after the error
    (firing,) = local_ws.pipelines.firings()
    assert (firing.status, firing.lease_owner) == ("done", "keeper")


def test_a_broken_pipeline_module_fails_its_firing_and_the_daemon_goes_on(
    local_ws: Workspace,
) -> None:
    pipelines = local_ws.pipelines
    pipelines.create_trigger("on-d", pipeline="arith", kind="dataset", spec={"dataset": "d"})
    pipelines.fire_event("dataset", "d", event_id="d@1")
    pipelines.fire_event("dataset", "d", event_id="d@2")
    stop = threading.Event()
    ticks: list[datetime] = []

    def broken(name: str) -> Pipeline:
        raise SyntaxError(f"invalid syntax (flows/{name}.py, line 3)")

    def count(moment: datetime) -> None:
        ticks.append(moment)
        if len(ticks) == 2:
            stop.set()

    scheduler = Scheduler(pipelines.service, local_ws.ctx, resolve=broken, poll=0.01, jobs=[count])
    scheduler.serve(stop)  # returns once the job stopped it, at its second tick
    assert len(ticks) == 2
    firings = pipelines.firings()
    assert [f.status for f in firings] == ["failed", "failed"]
    assert {f.error for f in firings} == {"SyntaxError: invalid syntax (flows/arith.py, line 3)"}
