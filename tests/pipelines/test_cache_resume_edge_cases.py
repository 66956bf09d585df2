"""Edge cases of step caching, resume and executors.

A cached step is reused only when it would compute the same thing, and always when it would;
a resumed run finishes exactly its unfinished work; a pipeline gives the same results on every
executor.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from keel.errors import ConflictError, IntegrityError, InvalidInputError
from keel.pipelines import (
    DatasetInput,
    Executor,
    Pipeline,
    PipelineRunStatus,
    Serializer,
    StepStatus,
    register_serializer,
    step,
)
from keel.pipelines._runner import cache_key
from keel.pipelines._serialize import dumps, loads
from keel.store._schema_lineage import LineageEdgeRow
from keel.workspace import Workspace, connect
from tests.conftest import make_settings
from tests.pipelines import _edge_steps, _steps
from tests.pipelines._steps import calls

ROOT = Path(__file__).resolve().parents[2]


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for modules the test writes (no stale bytecode); cleaned after."""
    folder = tmp_path / "mods"
    folder.mkdir()
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    importlib.invalidate_caches()


def edges(ws: Workspace) -> list[tuple[str, str, str, str, str]]:
    with ws._governor.db.read() as session:
        rows = session.execute(
            select(
                LineageEdgeRow.src_type,
                LineageEdgeRow.src_id,
                LineageEdgeRow.dst_type,
                LineageEdgeRow.dst_id,
                LineageEdgeRow.relation,
            ).where(LineageEdgeRow.project_id == ws.ctx.project_id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


# -- the cache key: code ----------------------------------------------------------------------

FLOW = """
import logging
from dataclasses import dataclass

from keel.pipelines import Pipeline, step
from edgepkg import helpers

_log = logging.getLogger(__name__)
OFFSET = {offset}


@dataclass(frozen=True)
class Settings:
    rate: int


SETTINGS = Settings(rate={rate})


def bump(x, by={by}):
    return x + by + {body}


class Scaler:
    factor = {factor}

    def apply(self, x):
        return x * self.factor


@step
def compute(*, n: int = 1) -> int:
    _log.debug("computing")
    return Scaler().apply(bump(n)) + OFFSET + helpers.extra(n) + SETTINGS.rate


pipeline = Pipeline("edge-helpers", steps=[compute])
"""
HELPERS = "def extra(n):\n    return n * {extra}\n"
BASE = {"offset": 0, "by": 1, "body": 0, "factor": 2, "extra": 0, "rate": 0}


def expected(values: dict[str, int]) -> int:
    scaled = (1 + values["by"] + values["body"]) * values["factor"]
    return scaled + values["offset"] + values["extra"] + values["rate"]


@pytest.mark.parametrize(
    ("edit", "value"),
    [
        ("body", 10),  # the body of a helper function in the same module
        ("by", 10),  # a default argument of that helper
        ("offset", 100),  # a module constant the step reads
        ("factor", 30),  # a class attribute of a class in the same module
        ("extra", 40),  # a helper in another module of the same package
        ("rate", 50),  # a field of a dataclass instance the step reads
    ],
)
def test_a_change_to_what_the_step_calls_invalidates_its_cache(
    local_ws: Workspace, modules: Path, edit: str, value: int
) -> None:
    write(modules / "edgepkg" / "__init__.py", "")
    write(modules / "edgepkg" / "helpers.py", HELPERS.format(**BASE))
    write(modules / "edgepkg" / "flow.py", FLOW.format(**BASE))
    flow = importlib.import_module("edgepkg.flow")
    helpers = importlib.import_module("edgepkg.helpers")
    assert flow.pipeline.run(local_ws)["compute"] == expected(BASE) == 4
    assert flow.pipeline.run(local_ws).cached == ["compute"]  # nothing changed: reused

    changed = {**BASE, edit: value}
    write(modules / "edgepkg" / "helpers.py", HELPERS.format(**changed))
    write(modules / "edgepkg" / "flow.py", FLOW.format(**changed))
    importlib.reload(helpers)
    flow = importlib.reload(flow)
    again = flow.pipeline.run(local_ws)
    assert again.cached == [], f"a change of {edit} was served from the cache"
    assert again["compute"] == expected(changed) != expected(BASE)
    assert flow.pipeline.run(local_ws).cached == ["compute"]


def test_closure_values_are_part_of_the_cache_key(local_ws: Workspace) -> None:
    def make(k: int) -> Any:
        @step(name="scaled")
        def scaled(*, n: int = 3) -> int:
            return n * k

        return scaled

    assert Pipeline("edge-closure", steps=[make(2)]).run(local_ws)["scaled"] == 6
    other = Pipeline("edge-closure", steps=[make(5)]).run(local_ws)
    assert other.cached == [] and other["scaled"] == 15
    same = Pipeline("edge-closure", steps=[make(5)]).run(local_ws)
    assert same.cached == ["scaled"] and same["scaled"] == 15


def test_the_code_digest_is_the_code_imported_not_the_file_edited_afterwards(
    local_ws: Workspace, modules: Path
) -> None:
    source = (
        "from keel.pipelines import Pipeline, step\n@step\ndef answer() -> int:\n    return {v}\n"
    )
    source += "pipeline = Pipeline('edge-stale', steps=[answer])\n"
    write(modules / "flow_stale.py", source.format(v=1))
    flow = importlib.import_module("flow_stale")
    write(modules / "flow_stale.py", source.format(v=22))  # edited, not imported again
    assert flow.pipeline.run(local_ws)["answer"] == 1  # the code in memory ran
    flow = importlib.reload(flow)
    fresh = flow.pipeline.run(local_ws)
    assert fresh.cached == [] and fresh["answer"] == 22


KEY_MODULE = """
import enum

from keel.pipelines import step

LABELS = {"gamma", "alpha", "beta", "delta", "epsilon"}
WEIGHTS = {"z": 1.5, "a": frozenset({"q", "r", "s"}), "m": (1, 2.0, None, True)}


class Mode(enum.Enum):
    FAST = "fast"


def helper(x):
    return [label for label in sorted(LABELS) if label in {"beta", "gamma", "omega"}] + [x]


@step(env=["pytest", "a-package-that-is-not-installed"])
def keyed(source: list, *, n: int = 1, tags: list = []) -> list:
    return helper(n) + [WEIGHTS["m"], Mode.FAST.value]
"""
KEY_SCRIPT = """
import sys
import edgekey
from keel.pipelines._runner import cache_key
params = {"n": 1, "tags": ["b", {"y": 1, "x": 2.0}]}
print(cache_key(edgekey.keyed, params, {"source": "sha256:" + "0" * 64}))
"""


def test_the_cache_key_is_the_same_in_every_process_and_folder(
    tmp_path: Path, modules: Path
) -> None:
    keys = set()
    for index, seed in enumerate(["1", "2", "3"]):
        folder = tmp_path / f"copy{index}"
        write(folder / "edgekey.py", KEY_MODULE)
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}"}
        done = subprocess.run(
            [sys.executable, "-c", KEY_SCRIPT], env=env, cwd=folder, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        keys.add(done.stdout.strip())
    write(modules / "edgekey.py", KEY_MODULE)
    mod = importlib.import_module("edgekey")
    params = {"n": 1, "tags": ["b", {"x": 2.0, "y": 1}]}  # the same dict, keys in another order
    here = cache_key(mod.keyed, params, {"source": "sha256:" + "0" * 64})
    assert keys == {here}


ENV_MODULE = """
from keel.pipelines import step


@step(env=["edgefake"])
def pinned() -> int:
    return 1
"""
ENV_SCRIPT = """
import edgeenv
from keel.pipelines._runner import cache_key
print(cache_key(edgeenv.pinned, {}, {}))
"""


def test_a_declared_package_version_is_part_of_the_cache_key(tmp_path: Path) -> None:
    write(tmp_path / "edgeenv.py", ENV_MODULE)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}

    def key_with(version: str | None) -> str:
        for old in tmp_path.glob("edgefake-*.dist-info"):
            (old / "METADATA").unlink()
            old.rmdir()
        if version is not None:
            write(
                tmp_path / f"edgefake-{version}.dist-info" / "METADATA",
                f"Metadata-Version: 2.1\nName: edgefake\nVersion: {version}\n",
            )
        done = subprocess.run(
            [sys.executable, "-c", ENV_SCRIPT],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    keys = [key_with("1.0"), key_with("2.0"), key_with(None), key_with("1.0")]
    assert len(set(keys[:3])) == 3 and keys[3] == keys[0]


def test_a_new_dataset_version_invalidates_the_steps_that_read_it(local_ws: Workspace) -> None:
    @step
    def rows(raw: DatasetInput) -> str:
        return f"{raw.dataset}@{raw.version}"

    pipeline = Pipeline("edge-data", steps=[rows], inputs=["raw"])
    assert (
        pipeline.run(local_ws, inputs={"raw": DatasetInput("churn", 7, id="DV7")})["rows"]
        == "churn@7"
    )
    again = pipeline.run(local_ws, inputs={"raw": DatasetInput("churn", 7, id="DV7")})
    assert again.cached == ["rows"]
    newer = pipeline.run(local_ws, inputs={"raw": DatasetInput("churn", 8, id="DV8")})
    assert newer.cached == [] and newer["rows"] == "churn@8"


# -- the cache key: parameters ----------------------------------------------------------------


def test_an_int_default_of_a_float_parameter_runs_and_is_keyed_as_a_float(
    local_ws: Workspace,
) -> None:
    @step
    def shown(*, factor: float = 1) -> str:
        return repr(factor)

    pipeline = Pipeline("edge-widen", steps=[shown])
    assert pipeline.run(local_ws)["shown"] == "1.0"  # ints widen, the default too
    for value in (1, 1.0):
        again = pipeline.run(local_ws, params={"factor": value})
        assert again.cached == ["shown"] and again["shown"] == "1.0"


def test_parameters_reach_the_step_as_the_json_they_are_recorded_as(local_ws: Workspace) -> None:
    @step
    def described(*, mapping: Any = None, items: Any = None, number: Any = 0) -> list[Any]:
        return [list(mapping or {}), type(items).__name__, type(number).__name__]

    pipeline = Pipeline("edge-json-params", steps=[described])
    first = pipeline.run(local_ws, params={"mapping": {"b": 1, "a": 2}, "items": (1, 2)})
    assert first["described"] == [["a", "b"], "list", "int"]  # as a resumed run sees them
    same = pipeline.run(local_ws, params={"mapping": {"a": 2, "b": 1}, "items": [1, 2]})
    assert same.cached == ["described"] and same["described"] == first["described"]
    floats = pipeline.run(local_ws, params={"number": 0.0})  # not annotated: 0.0 is not 0
    assert floats.cached == [] and floats["described"][2] == "float"
    with pytest.raises(InvalidInputError, match="string keys"):
        pipeline.run(local_ws, params={"mapping": {1: "a"}})


def test_a_resumed_step_gets_the_parameters_a_fresh_run_gets(ws: Workspace, tmp_path: Path) -> None:
    params = {"mapping": {"bb": 1, "a": 2.5, "c": 3}, "workdir": str(tmp_path)}
    fresh = _edge_steps.describing.run(ws, params=params)
    (tmp_path / "broken").write_text("yes")
    failed = _edge_steps.describing.run(ws, params=params)
    assert failed.status is PipelineRunStatus.FAILED
    (tmp_path / "broken").unlink()
    resumed = ws.pipelines.resume(failed.id, pipeline=_edge_steps.describing)
    assert resumed.ok and resumed["described"] == fresh["described"]
    assert fresh["described"] == ["a=float", "bb=float", "c=float"]  # keys sorted, as stored


# -- values: the same on every executor, fresh or cached ----------------------------------------


def test_steps_get_their_own_copy_of_each_input_on_every_executor(
    local_ws: Workspace, executor: Executor
) -> None:
    result = _edge_steps.shared.run(local_ws, executor=executor)
    assert result.ok
    values = dict(result)
    assert values == {
        "base": [1, 2, 3],  # `grown` appended to its own copy
        "grown": 4,
        "summed": 6,
        "unordered": {"a": 2, "b": 1},
        "keys": ["a", "b"],  # what a step reading the stored dict sees, cached or not
    }
    cached = _edge_steps.shared.run(local_ws, executor="inprocess")
    assert sorted(cached.cached) == sorted(values) and dict(cached) == values


def test_an_output_no_format_takes_fails_once_naming_the_step_and_type(
    local_ws: Workspace, executor: Executor
) -> None:
    result = _edge_steps.unstorable.run(local_ws, executor=executor)
    assert result.status is PipelineRunStatus.FAILED
    failed = local_ws.pipelines.get(result.id).step("opaque")
    assert failed.status is StepStatus.FAILED
    assert failed.attempts == 1  # the same value would come back: not retried
    assert "Output 'opaque' of step 'opaque' is a builtins.generator" in (failed.error or "")
    assert "register_serializer" in (failed.error or "")


def test_a_failing_step_is_reported_the_same_on_every_executor(
    local_ws: Workspace, executor: Executor
) -> None:
    result = _edge_steps.exploding.run(local_ws, executor=executor)
    assert result.status is PipelineRunStatus.FAILED
    run = local_ws.pipelines.get(result.id)
    assert run.error == "Step 'explode' failed: RuntimeError: kaput"
    assert run.step("explode").error == "RuntimeError: kaput"
    assert run.step("after_explode").status is StepStatus.SKIPPED
    trace = run.step("explode").traceback or ""
    assert "_edge_steps.py" in trace and "RuntimeError: kaput" in trace
    assert "\x1b[" not in trace  # no terminal colours from a worker


# -- artifacts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"__keel_float__": "1.5"},
        {"__keel_float__": "not a number"},
        {"__keel_tuple__": [1, 2]},
        {"__keel_dict__": {"a": 1}},
        [{"__keel_float__": "inf", "other": (1, float("nan"))}],
    ],
)
def test_dicts_named_like_the_format_markers_read_back_as_dicts(value: Any) -> None:
    back = loads(dumps(value, what="Output 'x'"), what="Output 'x'")
    assert repr(back) == repr(value)


class _Box:
    def __init__(self, n: int) -> None:
        self.n = n


def test_an_output_that_never_reads_back_fails_its_consumer_instead_of_looping(
    local_ws: Workspace,
) -> None:
    def unreadable(data: bytes) -> Any:
        raise ValueError("this format cannot read what it wrote")

    register_serializer(
        Serializer(
            "edge-unreadable",
            lambda v: isinstance(v, _Box),
            lambda v: str(v.n).encode(),
            unreadable,
        )
    )

    @step
    def boxed() -> _Box:
        return _Box(3)

    @step
    def unboxed(boxed: _Box) -> int:
        return boxed.n

    result = Pipeline("edge-unreadable", steps=[boxed, unboxed]).run(local_ws)
    assert result.status is PipelineRunStatus.FAILED
    failed = local_ws.pipelines.get(result.id).step("unboxed")
    assert failed.status is StepStatus.FAILED
    assert "does not read back" in (failed.error or "")
    with pytest.raises(IntegrityError, match="does not read back"):
        result["boxed"]


# -- resume ---------------------------------------------------------------------------------------


def test_a_resume_that_recomputes_a_lost_artifact_keeps_lineage_unique(
    ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "broken").write_text("yes")
    failed = _steps.branching.run(ws, params={"workdir": str(tmp_path)})
    assert failed.status is PipelineRunStatus.FAILED
    source_digest = failed.run.step("source").outputs["source"]
    assert ws.blobs.delete(source_digest, scope=ws.ctx.project_id)  # the kept output is gone
    (tmp_path / "broken").unlink()
    resumed = ws.pipelines.resume(failed.id, pipeline=_steps.branching)
    assert resumed.ok and resumed["after_fragile"] == 41
    assert calls(tmp_path, "source") == 2  # computed again, to feed `fragile`
    assert calls(tmp_path, "branch") == 1 and calls(tmp_path, "fragile") == 2
    source_run = resumed.run.step("source")
    produced = [e for e in edges(ws) if e[1] == source_run.id and e[4] == "produced"]
    assert produced == [("step_run", source_run.id, "artifact", source_digest, "produced")]
    assert ws.blobs.exists(source_digest, scope=ws.ctx.project_id)


def test_a_resume_with_other_steps_is_refused_before_anything_changes(
    local_ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "broken").write_text("yes")
    failed = _steps.branching.run(local_ws, params={"workdir": str(tmp_path)})
    bigger = Pipeline("branching", steps=[*_steps.branching.steps.values(), _steps.squares])
    with pytest.raises(ConflictError, match=r"new steps: \['squares'\].*start a new run"):
        local_ws.pipelines.resume(failed.id, pipeline=bigger)
    run = local_ws.pipelines.get(failed.id)
    assert run.status is PipelineRunStatus.FAILED and run.attempt == 1


def _waiting_on_the_store(thread: threading.Thread) -> bool:
    """Whether ``thread`` is in resume, waiting for the store's lock to start its write.

    SQLite: blocked in ``BEGIN IMMEDIATE``; PostgreSQL: in ``SELECT … FOR UPDATE`` of the run.
    """
    frame = sys._current_frames().get(thread.ident or -1)
    in_resume = waiting = False
    while frame is not None:
        where = (Path(frame.f_code.co_filename).name, frame.f_code.co_name)
        in_resume |= where == ("_service.py", "resume")
        waiting |= where == ("_database.py", "_on_begin") and frame.f_locals.get("write") is True
        waiting |= where == ("_pipelines.py", "get") and frame.f_locals.get("lock") is True
        frame = frame.f_back
    return in_resume and waiting


@pytest.fixture
def held_lock(ws: Workspace) -> Iterator[Any]:
    """A callable that holds the store's write lock on a run (SQLite: the database) until
    the returned release function is called."""
    url = ws.settings.resolved_db_url
    releases: list[Any] = []

    def hold(run_id: str) -> Any:
        if url.startswith("sqlite"):
            conn = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None, timeout=60)
            conn.execute("BEGIN IMMEDIATE")

            def release() -> None:
                conn.execute("COMMIT")
                conn.close()

        else:
            engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
            conn = engine.connect()
            conn.execute(
                text("SELECT id FROM pipeline_runs WHERE id = :id FOR UPDATE"), {"id": run_id}
            )

            def release() -> None:
                conn.commit()
                conn.close()
                engine.dispose()

        releases.append(release)
        return release

    yield hold
    for release in releases:
        with contextlib.suppress(Exception):  # released by the test already
            release()


def test_two_resumers_at_once_one_wins_and_the_other_is_told(
    ws: Workspace, tmp_path: Path, held_lock: Any
) -> None:
    params = {"workdir": str(tmp_path)}
    (tmp_path / "broken").write_text("yes")
    failed = _edge_steps.gate.run(ws, params=params)
    assert failed.status is PipelineRunStatus.FAILED
    (tmp_path / "broken").unlink()

    outcomes: dict[str, Any] = {}

    def resume(label: str) -> None:
        try:
            outcomes[label] = ws.pipelines.resume(failed.id, pipeline=_edge_steps.gate)
        except Exception as exc:
            outcomes[label] = exc

    release = held_lock(failed.id)
    threads = [threading.Thread(target=resume, args=(label,)) for label in ("one", "two")]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while not all(_waiting_on_the_store(t) for t in threads):  # both checked, both waiting
        assert time.monotonic() < deadline, "the resumers never reached the store's lock"
        time.sleep(0.02)
    release()
    deadline = time.monotonic() + 60
    while not outcomes and calls(tmp_path, "gated") < 3:  # one refused, or (wrongly) both run
        assert time.monotonic() < deadline, "neither resumer got anywhere"
        time.sleep(0.02)
    (tmp_path / "release").write_text("go")
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    errors = [o for o in outcomes.values() if isinstance(o, Exception)]
    results = [o for o in outcomes.values() if not isinstance(o, Exception)]
    assert len(errors) == 1 and len(results) == 1, outcomes
    assert isinstance(errors[0], ConflictError) and "still running" in str(errors[0])
    assert results[0].ok and results[0]["gated"] == 2
    assert calls(tmp_path, "gated") == 2  # the failed attempt, and one resume
    assert calls(tmp_path, "first") == 1
    assert ws.pipelines.get(failed.id).attempt == 2


KILL_SCRIPT = """
import sys
from keel.settings import Settings
from keel.workspace import connect
from tests.pipelines import _steps
ws = connect(settings=Settings(home=sys.argv[1]), principal="user:tester")
_steps.killable.run(ws, params={"workdir": sys.argv[2]})
"""


def test_a_run_killed_mid_step_resumes_without_duplicate_work_edges_or_blobs(
    tmp_path: Path,
) -> None:
    home, workdir = tmp_path / "home", tmp_path / "work"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(home), str(workdir)], cwd=ROOT, env=env
    )
    ws = None
    try:
        deadline = time.monotonic() + 60
        while not (workdir / "started").exists():
            assert proc.poll() is None, "the pipeline process ended before its slow step"
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.02)
        ws = connect(settings=make_settings(home), principal="user:tester")
        (run,) = ws.pipelines.runs()
        while ws.pipelines.get(run.id).step("hang_once").status is not StepStatus.RUNNING:
            assert time.monotonic() < deadline, "the running step was never recorded"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL

        result = ws.pipelines.resume(run.id, pipeline=_steps.killable)
        assert result.ok and result["last"] == (sum(range(4)) + 1) * 2
        assert [calls(workdir, n) for n in ("source", "squares", "hang_once", "last")] == [
            1,
            1,
            2,  # the killed attempt, and once more
            1,
        ]
        steps = {s.name: s for s in ws.pipelines.get(run.id).steps}
        assert {s.status for s in steps.values()} == {StepStatus.COMPLETED}
        found = edges(ws)
        assert len(found) == len(set(found))
        by_relation: dict[str, int] = {}
        for edge in found:
            by_relation[edge[4]] = by_relation.get(edge[4], 0) + 1
        assert by_relation == {"ran": 4, "produced": 4, "used": 3}
        for item in steps.values():
            (digest,) = item.outputs.values()
            assert ("step_run", item.id, "artifact", digest, "produced") in found
        blobs = [p for p in (home / "blobs").rglob("*") if p.is_file() and len(p.name) == 64]
        digests = {d for s in steps.values() for d in s.outputs.values()}
        assert sorted(p.name for p in blobs) == sorted(d.split(":")[1] for d in digests)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if ws is not None:
            ws.close()


def test_resuming_a_finished_run_is_refused_and_changes_nothing(local_ws: Workspace) -> None:
    done = _steps.arith.run(local_ws, params={"n": 2})
    before = edges(local_ws)
    with pytest.raises(ConflictError, match="finished; there is nothing to resume"):
        local_ws.pipelines.resume(done.id, pipeline=_steps.arith)
    run = local_ws.pipelines.get(done.id)
    assert run.status is PipelineRunStatus.FINISHED and run.attempt == 1
    assert edges(local_ws) == before
