"""A run whose whole process is killed (kill -9) resumes from its first unfinished step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keel.errors import ConflictError
from keel.pipelines import PipelineRunStatus, StepStatus
from keel.workspace import connect
from tests.conftest import make_settings
from tests.pipelines import _steps
from tests.pipelines._steps import calls

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from keel.settings import Settings
from keel.workspace import connect
from tests.pipelines import _steps
ws = connect(settings=Settings(home=sys.argv[1]), principal="user:tester")
_steps.killable.run(ws, params={"workdir": sys.argv[2]})
"""


def test_a_killed_run_resumes_from_its_first_unfinished_step(tmp_path: Path) -> None:
    home, workdir = tmp_path / "home", tmp_path / "work"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(home), str(workdir)], cwd=ROOT, env=env
    )
    deadline = time.monotonic() + 60
    while not (workdir / "started").exists():
        assert proc.poll() is None, "the pipeline process ended before its slow step"
        assert time.monotonic() < deadline, "the slow step never started"
        time.sleep(0.05)
    time.sleep(0.3)  # let the runner write the state behind the running step
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    ws = connect(settings=make_settings(home), principal="user:tester")
    try:
        (killed,) = ws.pipelines.runs()
        assert killed.status is PipelineRunStatus.RUNNING  # nobody could record the end
        before = {s.name: s.status for s in ws.pipelines.get(killed.id).steps}
        assert before["source"] is StepStatus.COMPLETED
        assert before["squares"] is StepStatus.COMPLETED
        assert before["hang_once"] is StepStatus.RUNNING
        result = ws.pipelines.resume(killed.id, pipeline=_steps.killable)
        assert result.ok and result.id == killed.id
        assert result["last"] == (sum(range(4)) + 1) * 2
        assert calls(workdir, "source") == 1 and calls(workdir, "squares") == 1
        assert calls(workdir, "hang_once") == 2 and calls(workdir, "last") == 1
        assert ws.pipelines.get(killed.id).attempt == 2
    finally:
        ws.close()


def test_a_run_whose_owner_is_alive_is_not_resumed(local_ws: object, tmp_path: Path) -> None:
    from keel.workspace import Workspace

    assert isinstance(local_ws, Workspace)
    result = _steps.arith.run(local_ws, params={"n": 2})
    pipelines = local_ws.pipelines
    # Pretend the run is still going in this (live) process.
    from keel.store._schema_pipelines import PipelineRunRow

    with local_ws._governor.db.write() as session:
        row = session.get(PipelineRunRow, result.id)
        assert row is not None
        row.status = "RUNNING"
    with pytest.raises(ConflictError, match="still running"):
        pipelines.resume(result.id, pipeline=_steps.arith)
    cancelled = pipelines.cancel(result.id)
    assert cancelled.status is PipelineRunStatus.RUNNING  # the owner will see the request
    resumed = pipelines.resume(result.id, pipeline=_steps.arith, force=True)
    assert resumed.ok and sorted(resumed.run.step(n).status.value for n in ("source", "total")) == [
        "COMPLETED",
        "COMPLETED",
    ]
