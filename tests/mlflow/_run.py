"""Run the conformance scenario with an MLflow client interpreter against a live Keel server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.server._live import LiveServer

SCENARIO = Path(__file__).with_name("_scenario.py")


def run_scenario(python: str | Path, live: LiveServer, out: Path, *extra: str) -> dict[str, Any]:
    """The facts the scenario observed (fails with the client's output if it crashed)."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": live.url,
        "MLFLOW_TRACKING_TOKEN": live.admin_token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), str(SCENARIO), str(out), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (
        f"the MLflow client failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    )
    facts: dict[str, Any] = json.loads(out.read_text())
    return facts
