"""Fixtures of the pipeline tests: a local workspace, and Ray started once per session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.pipelines import Executor, InProcessExecutor, ProcessExecutor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A RayExecutor on a local Ray started once (it takes ~10 s), HOME in a temp folder.

    Ray writes an auth token under HOME and its session files under /tmp/ray; its workers
    import the test modules through PYTHONPATH. Both are set only while Ray starts.
    """
    pytest.importorskip("ray", reason="Ray is the keel-mlops[ray] extra")
    import ray

    from keel.pipelines import RayExecutor

    home = tmp_path_factory.mktemp("ray-home")
    saved = {key: os.environ.get(key) for key in ("HOME", "PYTHONPATH", "RAY_ADDRESS")}
    os.environ["HOME"] = str(home)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *sys.path])
    os.environ.pop("RAY_ADDRESS", None)
    executor = RayExecutor(max_workers=2)
    try:
        assert executor.submit(int, "1").result(timeout=120) == 1  # start Ray here, once
    finally:  # Ray's processes keep the environment they started with
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield executor
    finally:
        executor.shutdown()
        if ray.is_initialized():
            ray.shutdown()


@pytest.fixture(scope="module")
def process_executor() -> Iterator[ProcessExecutor]:
    """A process pool of two workers, shared by a module's tests."""
    executor = ProcessExecutor(max_workers=2)
    yield executor
    executor.shutdown()


@pytest.fixture(params=["inprocess", "process", "ray"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Each executor in turn: threads, the process pool, Ray."""
    if request.param == "inprocess":
        threads = InProcessExecutor(max_workers=2)
        yield threads
        threads.shutdown()
    else:
        yield request.getfixturevalue(f"{request.param}_executor")
