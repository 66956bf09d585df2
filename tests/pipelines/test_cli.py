"""``keel pipelines``, ``scheduler`` and ``triggers``: real subprocesses and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = """
from pathlib import Path
from keel.pipelines import Pipeline, step

@step
def numbers(*, n: int = 3) -> list[int]:
    return list(range(n))

@step
def checked(numbers: list[int]) -> int:
    if Path("broken").exists():
        raise ValueError("checked is broken")
    return sum(numbers)

@step
def report(checked: int) -> str:
    return f"total={checked}"

flow = Pipeline("demo", steps=[numbers, checked, report])
"""

KEEL_YAML = """
pipelines:
  demo: "flows:flow"
triggers:
  nightly:
    pipeline: demo
    schedule: "0 3 * * *"
    params: {n: 5}
  on-data:
    pipeline: demo
    dataset: churn
"""


def keel(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_HOME": str(project / ".keel"), "COLUMNS": "200"}
    env.pop("KEEL_DB_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    (folder / "flows.py").write_text(FLOWS)
    (folder / "keel.yaml").write_text(KEEL_YAML)
    keel(folder, "init")
    return folder


def test_run_show_list_with_progress_and_json(project: Path) -> None:
    out = keel(project, "pipelines", "run", "demo", "-p", "n=4")
    assert "✓ numbers" in out.stderr and "✓ report" in out.stderr
    again = keel(project, "pipelines", "run", "demo", "-p", "n=4", "--json")
    run = json.loads(again.stdout)
    assert run["status"] == "FINISHED"
    assert [s["status"] for s in run["steps"]] == ["CACHED"] * 3
    shown = json.loads(keel(project, "pipelines", "show", run["id"], "--json").stdout)
    assert shown["params"]["numbers"] == {"n": 4} and shown["trigger"] == "manual"
    listed = json.loads(keel(project, "pipelines", "list", "--json").stdout)
    assert listed[0]["name"] == "demo" and listed[0]["last_run"] == run["id"]
    runs = json.loads(keel(project, "pipelines", "show", "demo", "--json").stdout)
    assert len(runs) == 2
    table = keel(project, "pipelines", "show", run["id"]).stdout
    assert "CACHED" in table and "numbers" in table


def test_a_failed_run_exits_1_shows_the_traceback_and_resumes(project: Path) -> None:
    (project / "broken").write_text("1")
    failed = keel(project, "pipelines", "run", "demo", "-p", "n=6", check=False)
    assert failed.returncode == 1
    assert "ValueError: checked is broken" in failed.stderr
    assert "keel pipelines resume" in failed.stderr
    run_id = failed.stderr.split("keel pipelines resume ")[1].split()[0]
    (project / "broken").unlink()
    resumed = json.loads(keel(project, "pipelines", "resume", run_id, "--json").stdout)
    assert resumed["status"] == "FINISHED" and resumed["attempt"] == 2
    assert resumed["steps"][0]["status"] == "COMPLETED"
    bad = keel(project, "pipelines", "run", "demo", "-p", "n=many", check=False)
    assert bad.returncode == 2 and "must be int" in bad.stderr
    missing = keel(project, "pipelines", "run", "nope", check=False)
    assert missing.returncode == 1 and "No pipeline 'nope' in keel.yaml" in missing.stderr


def test_scheduler_syncs_triggers_and_fire_runs_them(project: Path) -> None:
    tick = json.loads(keel(project, "scheduler", "--once", "--json").stdout)
    assert tick == []  # nothing due yet
    triggers = json.loads(keel(project, "triggers", "list", "--json").stdout)
    assert {t["name"]: t["kind"] for t in triggers} == {"nightly": "schedule", "on-data": "dataset"}
    fired = json.loads(
        keel(project, "triggers", "fire", "nightly", "--reason", "test", "--run", "--json").stdout
    )
    (ran,) = fired["ran"]
    assert ran["status"] == "done" and ran["firing"]["cause"]["reason"] == "test"
    run = json.loads(keel(project, "pipelines", "show", ran["pipeline_run_id"], "--json").stdout)
    assert run["trigger"] == "manual" and run["cause"]["trigger"] == "nightly"
    assert run["params"]["numbers"] == {"n": 5}  # the trigger's params
    history = json.loads(keel(project, "triggers", "history", "nightly", "--json").stdout)
    assert history[0]["pipeline_run_id"] == run["id"]
