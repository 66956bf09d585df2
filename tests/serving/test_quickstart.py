"""The serving quickstart runs end to end and shows an automatic canary decision."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "serving" / "quickstart.py"


def test_quickstart_deploys_a_canary_and_the_server_decides(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "canary: 20% of traffic to v2" in out
    decisions = [line for line in out.splitlines() if " analysis." in line]
    assert decisions, out
    assert "final: promoted" in out or "final: rolled_back" in out
    assert "predictions logged" in out
