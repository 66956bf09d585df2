"""``keel validate|plan|apply|export`` import only the areas they use (issue 9).

Each command runs in a fresh interpreter, which then reports the modules it loaded. A plan
must not pay for the data, serving, compliance or training areas, nor for the heavy libraries
behind them: a module-level import added anywhere on the path makes these tests fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cicd._project import write_project

#: Third-party libraries no project-file command needs.
HEAVY = (
    "fastapi",
    "numpy",
    "onnx",
    "pandas",
    "polars",
    "pyarrow",
    "ray",
    "scipy",
    "skops",
    "sklearn",
    "starlette",
    "uvicorn",
)
#: Keel areas a plan does not use (the workspace builds each area on first access).
UNUSED_BY_PLAN = (
    "keel.compliance",
    "keel.data",
    "keel.server",
    "keel.serving",
    "keel.training",
    "keel.ui",
    "keel.workspace._remote",
)

_RUN = """\
import json, sys
from keel.cli import main
out = sys.argv.pop(1)
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def loaded(folder: Path, *args: str) -> tuple[int, set[str]]:
    """The exit code of ``keel ARGS`` in a fresh interpreter and the modules it loaded."""
    env = {**os.environ, "KEEL_HOME": str(folder / ".keel")}
    env.pop("KEEL_DB_URL", None)
    report = folder / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(report), *args],
        capture_output=True, text=True, env=env, cwd=folder, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    return int(data["code"] or 0), set(data["modules"])


def _under(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The loaded modules that are one of ``packages`` or inside one."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the test project applied: roles, triggers, models and monitors recorded."""
    folder = tmp_path_factory.mktemp("imports")
    write_project(folder)
    assert loaded(folder, "init")[0] == 0
    code, modules = loaded(folder, "apply")
    assert code == 0
    assert _under(modules, HEAVY) == []
    assert _under(modules, ("keel.serving", "keel.compliance", "keel.training", "keel.ui")) == []
    return folder


def test_plan_imports_no_area_it_does_not_use(applied: Path) -> None:
    code, modules = loaded(applied, "plan", "--detailed-exitcode")
    assert code == 3  # the monitor still waits for its deployment: a pending update
    # the owner's plan reads the store in plain SQL: no ORM, no tables, no services
    assert "keel.store._readonly" in modules
    assert _under(modules, ("sqlalchemy", "alembic", "keel.store._schema")) == []
    assert _under(modules, ("keel.pipelines", "keel.tracking", "keel.monitoring")) == []
    assert _under(modules, HEAVY) == []
    assert _under(modules, UNUSED_BY_PLAN) == []


def test_validate_opens_no_store_and_export_loads_no_heavy_library(applied: Path) -> None:
    code, modules = loaded(applied, "validate")
    assert code == 0
    assert _under(modules, HEAVY) == []
    assert _under(modules, ("keel.workspace", "keel.settings", "keel.blobs", *UNUSED_BY_PLAN)) == []
    code, modules = loaded(applied, "export", "-o", "exported.yaml")
    assert code == 0 and (applied / "exported.yaml").is_file()
    assert _under(modules, HEAVY) == []
    assert _under(modules, ("keel.compliance", "keel.training", "keel.server", "keel.ui")) == []
