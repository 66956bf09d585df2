"""A cached virtual environment holding the last MLflow 2.x client (built once, then reused).

The first run creates ``.cache/mlflow2-venv`` with ``python -m venv`` and installs
``mlflow-skinny<3`` and scikit-learn from PyPI (about a minute); later runs find it ready. A file
lock keeps parallel test workers from building it twice; the venv is built under a temporary
name and renamed into place, so a half-built one is never used.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
VENV = CACHE / "mlflow2-venv"
REQUIREMENTS = ("mlflow-skinny<3", "scikit-learn", "pandas")
STAMP = " ".join(REQUIREMENTS) + "\n"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def _is_ready(stamp: Path) -> bool:
    return stamp.exists() and stamp.read_text() == STAMP


def ensure_mlflow2_venv() -> Path:
    """The interpreter of the cached MLflow 2.x venv, building the venv if needed."""
    CACHE.mkdir(exist_ok=True)
    ready = VENV / ".ready"
    if _is_ready(ready):
        return python_of(VENV)
    with (CACHE / "mlflow2-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_ready(ready):
            return python_of(VENV)
        building = CACHE / "mlflow2-venv.building"
        shutil.rmtree(building, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(building)], check=True, timeout=300)
        subprocess.run(
            [
                str(python_of(building)),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *REQUIREMENTS,
            ],
            check=True,
            timeout=900,
        )
        (building / ".ready").write_text(STAMP)
        shutil.rmtree(VENV, ignore_errors=True)
        building.rename(VENV)
    return python_of(VENV)


if __name__ == "__main__":
    print(ensure_mlflow2_venv())
