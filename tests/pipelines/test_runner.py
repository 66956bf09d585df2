"""The runner: order, parallelism, caching, corruption, retries, timeouts, cancel, resume."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from pathlib import Path

import pytest

from keel.errors import ConflictError, InvalidInputError
from keel.lineage import Node
from keel.pipelines import (
    DatasetInput,
    Pipeline,
    PipelineRunStatus,
    StepStatus,
    step,
)
from keel.workspace import Workspace
from tests.pipelines import _steps
from tests.pipelines._steps import calls


def test_run_gives_outputs_and_records_trigger_code_and_environment(ws: Workspace) -> None:
    result = _steps.arith.run(ws, params={"n": 5}, trigger="schedule", cause={"cron": "0 3 * * *"})
    assert result.ok and result.status is PipelineRunStatus.FINISHED
    assert result["total"] == 30 and result["count"] == 5 and result["source"] == [0, 1, 2, 3, 4]
    run = ws.pipelines.get(result.id)
    assert run.trigger == "schedule" and run.cause == {"cron": "0 3 * * *"}
    assert run.params["source"] == {"n": 5, "workdir": ""}
    assert run.code_version is not None and len(run.code_version) == 40  # this git checkout
    assert run.environment is not None and run.environment["python"].count(".") == 2
    assert [s.status for s in run.steps] == [StepStatus.COMPLETED] * 4
    assert run.step("total").outputs["total"] == result.digests["total"]
    assert ws.pipelines.read_output(result.id, "squares") == [0, 1, 4, 9, 16]


def test_lineage_links_run_to_steps_to_artifacts(local_ws: Workspace) -> None:
    result = _steps.arith.run(
        local_ws, inputs={}, params={"n": 2}, cause={"trigger_id": "T1"}, trigger="dataset"
    )
    graph = local_ws.lineage.graph(Node("pipeline_run", result.id), depth=4, direction="down")
    relations = {(e.upstream.type, e.relation, e.downstream.type) for e in graph.downstream}
    assert ("pipeline_run", "ran", "step_run") in relations
    assert ("step_run", "produced", "artifact") in relations
    assert ("artifact", "used", "step_run") in relations
    assert Node("artifact", result.digests["total"]) in graph.nodes
    up = local_ws.lineage.graph(Node("pipeline_run", result.id), depth=1, direction="up")
    assert Node("trigger", "T1") in up.nodes


def test_dataset_version_inputs_are_recorded_with_lineage(local_ws: Workspace) -> None:
    @step
    def rows(raw: DatasetInput) -> int:
        return raw.version

    pipeline = Pipeline("uses-data", steps=[rows], inputs=["raw"])
    with pytest.raises(InvalidInputError, match="missing \\['raw'\\]"):
        pipeline.run(local_ws)
    with pytest.raises(InvalidInputError, match="not declared \\['other'\\]"):
        pipeline.run(local_ws, inputs={"raw": 1, "other": 2})
    result = pipeline.run(local_ws, inputs={"raw": DatasetInput("churn", 7, id="DV1")})
    assert result["rows"] == 7
    run = local_ws.pipelines.get(result.id)
    assert run.datasets == {"raw": {"dataset": "churn", "version": 7, "id": "DV1"}}
    up = local_ws.lineage.graph(Node("pipeline_run", result.id), depth=1, direction="up")
    assert Node("dataset_version", "DV1") in up.nodes
    # A resumed or cached run gets the reference back, not a dict.
    again = pipeline.run(local_ws, inputs={"raw": DatasetInput("churn", 7, id="DV1")})
    assert again.cached == ["rows"]
    assert local_ws.pipelines.read_output(result.id, "rows") == 7


def test_independent_steps_run_in_parallel(local_ws: Workspace) -> None:
    started = time.perf_counter()
    result = _steps.parallel.run(local_ws, params={"seconds": 0.6}, executor="inprocess")
    elapsed = time.perf_counter() - started
    assert result.ok and result["joined"] == 1.2
    assert elapsed < 1.1, f"two 0.6 s steps took {elapsed:.2f} s: they did not overlap"


def test_cache_hits_skip_and_say_so_and_params_invalidate(
    local_ws: Workspace, tmp_path: Path
) -> None:
    params = {"n": 3, "workdir": str(tmp_path)}
    first = _steps.arith.run(local_ws, params=params)
    events: list[tuple[str, str]] = []
    second = _steps.arith.run(
        local_ws, params=params, progress=lambda e, s, d: events.append((e, s))
    )
    assert second["total"] == first["total"] == 5
    assert sorted(second.cached) == ["count", "source", "squares", "total"]
    assert {s for e, s in events if e == "cached"} == {"count", "source", "squares", "total"}
    assert calls(tmp_path, "source") == 1 and calls(tmp_path, "total") == 1
    assert [s.status for s in local_ws.pipelines.get(second.id).steps] == [StepStatus.CACHED] * 4
    third = _steps.arith.run(local_ws, params={**params, "n": 4})
    assert third.cached == [] and third["total"] == 14
    assert calls(tmp_path, "source") == 2


def test_a_code_change_invalidates_the_cache(local_ws: Workspace, tmp_path: Path) -> None:
    module = tmp_path / "flow_code_change.py"
    template = (
        "from keel.pipelines import Pipeline, step\n"
        "@step\ndef base() -> int:\n    return 1\n"
        "@step\ndef derived(base: int) -> int:\n    return base + {delta}\n"
        "pipeline = Pipeline('code-change', steps=[base, derived])\n"
    )
    module.write_text(template.format(delta=1))
    sys.path.insert(0, str(tmp_path))
    try:
        flow = importlib.import_module("flow_code_change")
        assert flow.pipeline.run(local_ws)["derived"] == 2
        assert sorted(flow.pipeline.run(local_ws).cached) == ["base", "derived"]
        module.write_text(template.format(delta=10))
        flow = importlib.reload(flow)
        again = flow.pipeline.run(local_ws)
        assert again["derived"] == 11 and again.cached == ["base"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("flow_code_change", None)


def test_a_corrupt_cached_artifact_is_detected_and_recomputed(
    local_ws: Workspace, tmp_path: Path
) -> None:
    params = {"n": 6, "workdir": str(tmp_path)}
    first = _steps.arith.run(local_ws, params=params)
    digest = first.digests["squares"]
    hexdigest = digest.split(":")[1]
    blob = (
        Path(local_ws.settings.home)
        / "blobs"
        / local_ws.ctx.project_id
        / hexdigest[:2]
        / hexdigest[2:4]
        / hexdigest
    )
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the encrypted payload
    blob.write_bytes(bytes(data))
    events: list[tuple[str, str]] = []
    second = _steps.arith.run(
        local_ws, params=params, progress=lambda e, s, d: events.append((e, s))
    )
    assert ("corrupt", "squares") in events
    assert second["squares"] == [x * x for x in range(6)]  # recomputed, never the corrupt one
    assert calls(tmp_path, "squares") == 2
    assert local_ws.pipelines.get(second.id).step("squares").status is StepStatus.COMPLETED
    third = _steps.arith.run(local_ws, params=params)  # the repaired artifact is used again
    assert "squares" in third.cached and third["squares"] == second["squares"]


def test_retries_back_off_then_succeed(local_ws: Workspace) -> None:
    attempts: list[float] = []

    @step(retries=2, backoff=0.2, cache=False)
    def flaky() -> int:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return len(attempts)

    events: list[tuple[str, dict[str, object]]] = []
    result = Pipeline("flaky", steps=[flaky]).run(
        local_ws, progress=lambda e, s, d: events.append((e, d))
    )
    assert result.ok and result["flaky"] == 3
    assert attempts[1] - attempts[0] >= 0.19 and attempts[2] - attempts[1] >= 0.39  # doubled
    assert [d["delay"] for e, d in events if e == "retry"] == [0.2, 0.4]
    assert local_ws.pipelines.get(result.id).step("flaky").attempts == 3


def test_a_timeout_fails_the_attempt(local_ws: Workspace) -> None:
    @step(timeout=0.3, cache=False)
    def sleepy() -> int:
        time.sleep(2)
        return 1

    started = time.perf_counter()
    result = Pipeline("sleepy", steps=[sleepy]).run(local_ws)
    assert time.perf_counter() - started < 1.5
    assert result.status is PipelineRunStatus.FAILED
    failed = local_ws.pipelines.get(result.id).step("sleepy")
    assert failed.status is StepStatus.FAILED
    assert "ran longer than its timeout of 0.3 s" in (failed.error or "")


def test_cancellation_stops_the_run(local_ws: Workspace) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.perf_counter()
    result = _steps.parallel.run(local_ws, params={"seconds": 3.0}, cancel=cancel)
    assert time.perf_counter() - started < 2.5
    assert result.status is PipelineRunStatus.CANCELLED
    steps = {s.name: s.status for s in local_ws.pipelines.get(result.id).steps}
    assert steps == {
        "slow_a": StepStatus.CANCELLED,
        "slow_b": StepStatus.CANCELLED,
        "joined": StepStatus.CANCELLED,
    }


def test_a_failing_step_keeps_its_traceback_branches_finish_and_resume_works(
    ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "broken").write_text("yes")
    params = {"workdir": str(tmp_path)}
    failed = _steps.branching.run(ws, params=params)
    assert failed.status is PipelineRunStatus.FAILED
    run = ws.pipelines.get(failed.id)
    status = {s.name: s.status for s in run.steps}
    assert status == {
        "source": StepStatus.COMPLETED,
        "fragile": StepStatus.FAILED,
        "after_fragile": StepStatus.SKIPPED,
        "branch": StepStatus.COMPLETED,  # the independent branch finished
    }
    trace = run.step("fragile").traceback or ""
    assert "Traceback" in trace and "RuntimeError: the fragile step is broken" in trace
    assert "_steps.py" in trace
    assert run.error is not None and "fragile" in run.error
    (tmp_path / "broken").unlink()
    resumed = ws.pipelines.resume(failed.id, pipeline=_steps.branching)
    assert resumed.ok and resumed.id == failed.id and resumed["after_fragile"] == 41
    assert calls(tmp_path, "source") == 1 and calls(tmp_path, "branch") == 1  # kept
    assert calls(tmp_path, "fragile") == 2
    again = ws.pipelines.get(failed.id)
    assert again.attempt == 2 and again.status is PipelineRunStatus.FINISHED
    with pytest.raises(ConflictError, match="nothing to resume"):
        ws.pipelines.resume(failed.id, pipeline=_steps.branching)


def test_unsafe_outputs_fail_the_step_with_the_fix(local_ws: Workspace) -> None:
    @step(cache=False)
    def opaque() -> object:
        return object()

    result = Pipeline("opaque", steps=[opaque]).run(local_ws)
    assert result.status is PipelineRunStatus.FAILED
    error = local_ws.pipelines.get(result.id).step("opaque").error or ""
    assert "register a serializer" in error and "never pickles" in error


def test_running_needs_pipeline_run_and_reading_needs_pipeline_read(
    local_ws: Workspace,
) -> None:
    from keel.errors import PermissionDeniedError
    from keel.workspace import connect

    result = _steps.arith.run(local_ws, params={"n": 2})
    local_ws.projects.grant("user:viewer", "viewer")
    viewer = connect(settings=local_ws.settings, principal="user:viewer")
    try:
        assert viewer.pipelines.get(result.id).status is PipelineRunStatus.FINISHED
        with pytest.raises(PermissionDeniedError, match=r"pipeline\.run"):
            _steps.arith.run(viewer, params={"n": 3})
        with pytest.raises(PermissionDeniedError):
            viewer.pipelines.resume(result.id, pipeline=_steps.arith)
        with pytest.raises(PermissionDeniedError):
            viewer.pipelines.create_trigger("t", pipeline="arith", kind="manual")
    finally:
        viewer.close()
    assert [r.id for r in local_ws.pipelines.runs()] == [result.id]  # nothing was started
    denied = [e for e in local_ws.audit.events(action="pipeline.run") if e.outcome == "denied"]
    assert denied
    assert {e.principal for e in denied} == {"user:viewer"}
