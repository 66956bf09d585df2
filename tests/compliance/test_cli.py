"""``keel compliance locate|erase|access|enforce-retention|erasures``: real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from keel.workspace import connect
from tests.compliance._helpers import ALICE, setup_orders
from tests.conftest import make_settings


def keel(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_HOME": str(home), "COLUMNS": "200"}
    env.pop("KEEL_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "keel.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        input=stdin,
    )


def test_the_compliance_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with connect(settings=make_settings(home)) as ws:  # the OS user, as the CLI is
        setup_orders(ws)

    located = keel(home, "compliance", "locate", ALICE, "--json")
    assert located.returncode == 0, located.stderr
    assert [(r["version"], r["rows"]) for r in json.loads(located.stdout)] == [(1, 2), (2, 2)]

    export = tmp_path / "alice.zip"
    subject_file = tmp_path / "subject.txt"
    subject_file.write_text(ALICE + "\n")
    accessed = keel(
        home, "compliance", "access", "--subject-file", str(subject_file), "--out", str(export)
    )
    assert accessed.returncode == 0, accessed.stderr
    assert "4 row(s) from 2 dataset version(s)" in accessed.stdout
    assert "subject.json" in zipfile.ZipFile(export).namelist()
    assert export.stat().st_mode & 0o777 == 0o600  # personal data: private to its owner
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".alice")] == []

    both = keel(home, "compliance", "locate", ALICE, "--subject-file", str(subject_file))
    assert both.returncode == 2 and "--subject-file" in both.stderr

    planned = keel(
        home, "compliance", "erase", "--subject-file", "-", "--dry-run", "--json", stdin=ALICE
    )
    assert json.loads(planned.stdout)["state"] == "planned"

    report = tmp_path / "reports" / "alice"
    erased = keel(home, "compliance", "erase", ALICE, "--report", str(report))
    assert erased.returncode == 0, erased.stderr
    assert "orders v2: 2 row(s) removed, replaced by version 3" in erased.stdout
    stored = json.loads(report.with_suffix(".json").read_text())
    assert stored["state"] == "done" and ALICE not in report.with_suffix(".txt").read_text()

    listed = json.loads(keel(home, "compliance", "erasures", "--json").stdout)
    assert [e["id"] for e in listed] == [stored["id"]]
    shown = keel(home, "compliance", "erasure", stored["id"])
    assert stored["id"] in shown.stdout

    retention = keel(home, "compliance", "enforce-retention", "--dry-run", "--json")
    assert retention.returncode == 0 and json.loads(retention.stdout)["versions"] == []

    bad = keel(home, "compliance", "erase", "")
    assert bad.returncode == 2 and "non-empty" in bad.stderr
    missing = keel(home, "compliance", "erasure", "NOPE")
    assert missing.returncode == 1 and "keel compliance erasures" in missing.stderr
