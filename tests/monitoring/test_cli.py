"""``keel monitors …`` through the real CLI: create, labels ingest, rules, run, report, alerts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.monitoring.conftest import Deployed, log_predictions, traffic


def keel(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_HOME": str(home), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} failed: {result.stderr}")
    return result


def test_the_monitoring_commands(deployed: Deployed, tmp_path: Path) -> None:
    from keel.workspace import local_principal

    ws = deployed.ws
    ws.projects.grant(local_principal(), "owner")
    home = ws.settings.home
    made = json.loads(
        keel(
            home,
            "monitors",
            "create",
            "churn",
            "--reference",
            "customers:1",
            "--deployment",
            deployed.deployment,
            "--target",
            "label",
            "--window",
            "count:500",
            "--threshold",
            "a=ks:0.1:0.05",
            "--json",
        ).stdout
    )
    assert made["thresholds"]["a"] == {"metric": "ks", "drift": 0.1, "warning": 0.05}
    inputs, predicted, truth = traffic(deployed.model, 300, shift=2.0)
    ids = log_predictions(ws, deployed.deployment, inputs, predicted)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "prediction_id,label\n" + "".join(f"{i},{t}\n" for i, t in zip(ids, truth, strict=True))
    )
    ingested = json.loads(
        keel(
            home, "monitors", "labels", "ingest", str(labels), "-d", deployed.deployment, "--json"
        ).stdout
    )
    assert (ingested["stored"], ingested["matched"]) == (300, 300)
    keel(
        home,
        "monitors",
        "rules",
        "add",
        "drift-high",
        "--monitor",
        "churn",
        "--metric",
        "drift.share",
        "--threshold",
        "0.2",
    )
    html = tmp_path / "report.html"
    table = keel(home, "monitors", "run", "churn", "--html", str(html)).stdout
    assert "drift" in table and "quality: ok" in table and "alert drift-high: firing" in table
    assert html.read_text().startswith("<!doctype html>")
    report = json.loads(keel(home, "monitors", "report", "churn", "--json").stdout)
    assert report["status"] == "drift" and report["quality"]["coverage"] == 1.0
    alerts = json.loads(
        keel(home, "monitors", "alerts", "list", "--state", "firing", "--json").stdout
    )
    assert [a["rule"] for a in alerts] == ["drift-high"]
    assert [a["deliveries"][0]["status"] for a in alerts] == ["sent"]
    listed = json.loads(keel(home, "monitors", "list", "--json").stdout)
    assert [m["name"] for m in listed] == ["churn"]
    history = json.loads(keel(home, "monitors", "history", "churn", "--json").stdout)
    assert len(history) == 1
    bad = keel(home, "monitors", "create", "x", "--reference", "customers:1", check=False)
    assert bad.returncode == 2 and "exactly one" in bad.stderr
    missing = keel(home, "monitors", "report", "nope", check=False)
    assert missing.returncode != 0 and "keel monitors list" in missing.stderr
