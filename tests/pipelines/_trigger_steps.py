"""Steps for the scheduler tests: a pipeline whose middle step can be held while a test kills
the scheduler replica running it (module level, so a child process imports them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keel.pipelines import Pipeline, step
from tests.pipelines._steps import mark


@step
def before(*, workdir: str = "") -> int:
    mark(workdir, "before")
    return 1


@step
def held(before: int, *, workdir: str = "") -> int:
    """Say it started, then wait while ``workdir/hold`` exists (at most two minutes)."""
    mark(workdir, "held")
    (Path(workdir) / "started").write_text("1", encoding="utf-8")
    deadline = time.monotonic() + 120
    while (Path(workdir) / "hold").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return before + 1


@step
def after(held: int, *, workdir: str = "") -> int:
    mark(workdir, "after")
    return held + 1


holding = Pipeline("trigger-hold", steps=[before, held, after])


def wait_until(what: str, check: Callable[[], Any], seconds: float = 90) -> Any:
    """Poll ``check`` until it returns something truthy (a deadline, not a sleep racing work)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
