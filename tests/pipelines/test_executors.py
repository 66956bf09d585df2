"""One contract for every Executor adapter: in-process threads, a process pool, and Ray."""

from __future__ import annotations

import concurrent.futures
import operator
from pathlib import Path

import pytest

from keel.errors import InvalidInputError
from keel.pipelines import (
    Executor,
    InProcessExecutor,
    get_executor,
)
from keel.workspace import Workspace
from tests.pipelines import _steps


def test_submit_returns_a_standard_future_with_the_result(executor: Executor) -> None:
    assert isinstance(executor, Executor)
    futures = [executor.submit(operator.pow, 2, n) for n in range(6)]
    assert all(isinstance(f, concurrent.futures.Future) for f in futures)
    assert [f.result(timeout=60) for f in futures] == [1, 2, 4, 8, 16, 32]
    keyword = executor.submit(sorted, [3, 1, 2], reverse=True)
    assert keyword.result(timeout=60) == [3, 2, 1]


def test_a_task_error_reaches_the_caller(executor: Executor) -> None:
    future = executor.submit(int, "not a number")
    with pytest.raises(ValueError, match="invalid literal"):
        future.result(timeout=60)


def test_the_same_pipeline_gives_the_same_outputs(executor: Executor, local_ws: Workspace) -> None:
    result = _steps.arith.run(local_ws, params={"n": 7}, executor=executor)
    assert result.ok
    assert dict(result) == {
        "source": [0, 1, 2, 3, 4, 5, 6],
        "squares": [0, 1, 4, 9, 16, 25, 36],
        "total": 91,
        "count": 7,
    }
    assert local_ws.pipelines.get(result.id).executor == executor.name


@pytest.mark.parametrize("kind", ["process", "ray"])
def test_a_worker_killed_with_sigkill_is_retried_and_the_run_completes(
    kind: str, request: pytest.FixtureRequest, local_ws: Workspace, tmp_path: Path
) -> None:
    executor = request.getfixturevalue(f"{kind}_executor")
    restarts = getattr(executor, "restarts", 0)
    result = _steps.crashy.run(
        local_ws, params={"n": 5, "workdir": str(tmp_path)}, executor=executor
    )
    assert (tmp_path / "crashed").exists()  # the first attempt really killed its worker
    assert result.ok and result["crash_once"] == 10
    if kind == "process":
        assert executor.restarts == restarts + 1


def test_get_executor_by_name_and_bad_options() -> None:
    threads = get_executor("inprocess", max_workers=3)
    assert isinstance(threads, InProcessExecutor) and threads.max_workers == 3
    threads.shutdown()
    with pytest.raises(InvalidInputError, match="Unknown executor 'spark'"):
        get_executor("spark")
    with pytest.raises(InvalidInputError, match="takes no option address"):
        get_executor("process", address="ray://x")
    with pytest.raises(InvalidInputError, match="max_workers is 0"):
        get_executor("inprocess", max_workers=0)
