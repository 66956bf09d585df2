"""The garbage collector's settings of a ``keel`` process (issue 9: start-up time).

Each case runs in a fresh interpreter: the settings are process-wide.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_MAIN_THEN_REPORT = """\
import atexit, gc, json, sys, tempfile
from pathlib import Path

out = Path(sys.argv[1])
kept = tempfile.TemporaryDirectory()  # cleaned by weakref.finalize at exit
Path(kept.name, "marker").write_text("x")
before = gc.get_threshold()
from keel.cli import main
try:
    main(["--version"])
except SystemExit as exc:
    code = exc.code
during = gc.get_threshold()
from keel.cli._collector import steady_state
steady_state()
report = {
    "code": code,
    "before": before,
    "during": during,
    "after": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "tempdir": kept.name,
}
atexit.register(lambda: out.write_text(json.dumps(report)))  # runs before the freeze hook
"""


def test_start_raises_the_threshold_and_steady_state_gives_it_back(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", _MAIN_THEN_REPORT, str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("keel ")
    report = json.loads(out.read_text())  # the exit hook registered after main() ran
    assert report["code"] in (0, None)
    assert report["during"][0] == 100_000 > report["before"][0]
    assert report["during"][1:] == report["before"][1:]
    assert report["after"] == report["before"]
    assert report["frozen"] > 10_000  # the start-up's objects, out of later collections
    # weakref.finalize callbacks still ran at exit: the temporary folder is gone
    assert not Path(report["tempdir"]).exists()
