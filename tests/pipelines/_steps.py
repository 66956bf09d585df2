"""Module-level steps and pipelines the tests run (importable by worker processes and Ray)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from keel.pipelines import Pipeline, step


def mark(workdir: str, name: str) -> None:
    """Count a call of ``name`` in ``workdir`` (one byte per call)."""
    if workdir:
        with open(Path(workdir) / f"{name}.count", "a", encoding="utf-8") as handle:
            handle.write("x")


def calls(workdir: Path, name: str) -> int:
    path = workdir / f"{name}.count"
    return len(path.read_text(encoding="utf-8")) if path.exists() else 0


@step
def source(*, n: int = 4, workdir: str = "") -> list[int]:
    mark(workdir, "source")
    return list(range(n))


@step
def squares(source: list[int], *, workdir: str = "") -> list[int]:
    mark(workdir, "squares")
    return [x * x for x in source]


@step
def total(squares: list[int], *, workdir: str = "") -> int:
    mark(workdir, "total")
    return sum(squares)


@step
def count(source: list[int]) -> int:
    return len(source)


arith = Pipeline("arith", steps=[source, squares, total, count])


@step(outputs="slow_a")
def slow_a(*, seconds: float = 0.6) -> float:
    time.sleep(seconds)
    return seconds


@step(outputs="slow_b")
def slow_b(*, seconds: float = 0.6) -> float:
    time.sleep(seconds)
    return seconds


@step
def joined(slow_a: float, slow_b: float) -> float:
    return slow_a + slow_b


parallel = Pipeline("parallel", steps=[slow_a, slow_b, joined])


@step
def crash_once(source: list[int], *, workdir: str = "") -> int:
    """Kill this worker process the first time (kill -9), succeed afterwards."""
    marker = Path(workdir) / "crashed"
    if not marker.exists():
        marker.write_text("1", encoding="utf-8")
        os.kill(os.getpid(), signal.SIGKILL)
    return sum(source)


crashy = Pipeline("crashy", steps=[source, crash_once])


@step
def fragile(source: list[int], *, workdir: str = "") -> int:
    """Fails while the file ``broken`` exists in workdir."""
    mark(workdir, "fragile")
    if (Path(workdir) / "broken").exists():
        raise RuntimeError("the fragile step is broken")
    return len(source) * 10


@step
def after_fragile(fragile: int, *, workdir: str = "") -> int:
    mark(workdir, "after_fragile")
    return fragile + 1


@step
def branch(source: list[int], *, workdir: str = "") -> int:
    mark(workdir, "branch")
    return max(source)


branching = Pipeline("branching", steps=[source, fragile, after_fragile, branch])


@step
def hang_once(source: list[int], *, workdir: str = "") -> int:
    """Writes ``started`` and sleeps long the first time (the test kills the process)."""
    mark(workdir, "hang_once")
    marker = Path(workdir) / "started"
    if not marker.exists():
        marker.write_text("1", encoding="utf-8")
        time.sleep(60)
    return sum(source) + 1


@step
def last(hang_once: int, *, workdir: str = "") -> int:
    mark(workdir, "last")
    return hang_once * 2


killable = Pipeline("killable", steps=[source, squares, hang_once, last])
