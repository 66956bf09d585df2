"""What a pipeline run ran on: interpreter, platform, owner process, and the code's git commit.

The commit is read from the ``.git`` folder directly (no ``git`` process), so recording it
costs microseconds.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["code_version", "owner_alive", "process_owner", "run_environment"]


def _git_dir(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / ".git"
        if candidate.is_dir():
            return candidate
        if candidate.is_file():  # a worktree: "gitdir: <path>"
            text = candidate.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                return (folder / text.split(":", 1)[1].strip()).resolve()
    return None


def code_version(start: Path | None = None) -> str | None:
    """The commit checked out in the git work tree around ``start`` (None outside one)."""
    try:
        git = _git_dir((start or Path.cwd()).resolve())
        if git is None:
            return None
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head[:64] or None
        ref = head.split(":", 1)[1].strip()
        common = git
        commondir = git / "commondir"
        if commondir.exists():
            common = (git / commondir.read_text(encoding="utf-8").strip()).resolve()
        for base in (git, common):
            loose = base / ref
            if loose.exists():
                return loose.read_text(encoding="utf-8").strip()[:64] or None
        packed = common / "packed-refs"
        if packed.exists():
            for line in packed.read_text(encoding="utf-8").splitlines():
                parts = line.split(" ", 1)
                if len(parts) == 2 and parts[1].strip() == ref:
                    return parts[0][:64]
    except OSError:
        return None
    return None


def process_owner() -> str:
    """``host:pid`` of this process (who runs a pipeline run right now)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool | None:
    """Whether the owner process still runs: True/False on this host, None elsewhere."""
    if not owner or ":" not in owner:
        return None
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.lru_cache(maxsize=1)
def _keel_version() -> str | None:
    try:
        return metadata.version("keel-mlops")
    except metadata.PackageNotFoundError:
        return None


def run_environment(packages: dict[str, str | None]) -> dict[str, Any]:
    """The run's environment: Python, platform, executable and the declared packages."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": sys.platform,
        "executable": sys.executable,
        "keel": _keel_version(),
        "packages": dict(sorted(packages.items())),
    }
