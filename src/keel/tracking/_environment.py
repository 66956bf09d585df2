"""What a run ran on: Python, platform, installed packages, and the git commit of the code."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["capture_environment", "git_state"]


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[tuple[str, str], ...]:
    """Installed distributions, read once per process (scanning them takes ~30 ms)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.name
        if name:
            found[str(name).lower()] = dist.version
    return tuple(sorted(found.items()))


def _packages() -> dict[str, str]:
    return dict(_installed())


_GIT_TTL = 10.0  # seconds a git answer is reused (runs started in a loop ask every time)
_git_seen: dict[str, tuple[float, dict[str, Any] | None]] = {}


def git_state(path: Path | None = None) -> dict[str, Any] | None:
    """The commit and dirty flag of the git work tree at ``path`` (None outside one).

    The answer is reused for a few seconds, so starting many runs (HPO trials) does not run
    two git processes each time.
    """
    cwd = str(path or Path.cwd())
    seen = _git_seen.get(cwd)
    now = time.monotonic()
    if seen is not None and now - seen[0] < _GIT_TTL:
        return None if seen[1] is None else dict(seen[1])
    state = _read_git(cwd)
    _git_seen[cwd] = (now, state)
    return None if state is None else dict(state)


def _read_git(cwd: str) -> dict[str, Any] | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def capture_environment(*, include_packages: bool = True) -> dict[str, Any]:
    """A JSON-ready description of the interpreter, platform, packages and git state."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "git": git_state(),
    }
    if include_packages:
        env["packages"] = _packages()
    return env
