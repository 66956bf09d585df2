"""Module-level steps of the cache/resume edge-case tests (importable by workers and Ray)."""

from __future__ import annotations

import time
from pathlib import Path

from keel.pipelines import Pipeline, step
from tests.pipelines._steps import mark


@step
def base() -> list[int]:
    return [1, 2, 3]


@step
def grown(base: list[int]) -> int:
    """Changes its input in place: no other step may see that."""
    base.append(99)
    return len(base)


@step
def summed(base: list[int], grown: int) -> int:
    return sum(base)


@step
def unordered() -> dict[str, int]:
    return {"b": 1, "a": 2}


@step
def keys(unordered: dict[str, int]) -> list[str]:
    return list(unordered)


shared = Pipeline("edge-shared", steps=[base, grown, summed, unordered, keys])


@step(retries=2, backoff=0.01, cache=False)
def opaque() -> object:
    return (i for i in range(3))  # a generator: no safe format, and it does not pickle


unstorable = Pipeline("edge-unstorable", steps=[opaque])


@step(cache=False)
def explode(*, message: str = "kaput") -> int:
    raise RuntimeError(message)


@step
def after_explode(explode: int) -> int:
    return explode + 1


exploding = Pipeline("edge-exploding", steps=[explode, after_explode])


@step(cache=False)
def first(*, workdir: str = "") -> int:
    mark(workdir, "first")
    return 1


@step(cache=False)
def gated(first: int, *, workdir: str = "") -> int:
    """Fails while ``broken`` exists; otherwise waits (at most a minute) for ``release``."""
    mark(workdir, "gated")
    folder = Path(workdir)
    if (folder / "broken").exists():
        raise RuntimeError("gated is broken")
    deadline = time.monotonic() + 60
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return first + 1


gate = Pipeline("edge-gate", steps=[first, gated])


@step(cache=False)
def described(*, mapping: dict[str, float] | None = None, workdir: str = "") -> list[str]:
    """Fails while ``broken`` exists; returns the keys it got, in order, and their types."""
    if (Path(workdir) / "broken").exists():
        raise RuntimeError("described is broken")
    return [f"{key}={type(value).__name__}" for key, value in (mapping or {}).items()]


describing = Pipeline("edge-describing", steps=[described])
