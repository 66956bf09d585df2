"""``keel datasets …`` and exit codes, as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KEEL = [sys.executable, "-m", "keel.cli"]


def keel(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_HOME": str(home), "COLUMNS": "200"}
    env.pop("KEEL_DB_URL", None)
    result = subprocess.run([*KEEL, *args], capture_output=True, text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-datasets")
    csv = root / "loans.csv"
    csv.write_text(
        "id,amount,email\n"
        + "".join(f"{i},{i * 10.0},user{i}@example.com\n" for i in range(200))
        + "200,oops,x@example.com\n",
        encoding="utf-8",
    )
    home = root / "home"
    keel(home, "datasets", "ingest", "loans", str(csv), "--schema", "amount=float64", "--json")
    return home


def test_ingest_list_show_and_versions(home: Path) -> None:
    listed = json.loads(keel(home, "datasets", "list", "--json").stdout)
    assert [(d["name"], d["latest"]) for d in listed] == [("loans", 1)]
    shown = json.loads(keel(home, "datasets", "show", "loans", "--json").stdout)
    assert shown["row_count"] == 200 and shown["rejected_rows"] == 1
    assert {"name": "amount", "dtype": "Float64"} in shown["schema"]
    text = keel(home, "datasets", "show", "loans").stdout
    assert "rejected rows" in text and "amount" in text
    versions = json.loads(keel(home, "datasets", "versions", "loans", "--json").stdout)
    assert [v["version"] for v in versions] == [1]


def test_gate_exit_codes_publish_classify_anonymize_tag_diff(home: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("- {kind: range, column: amount, min: 0, max: 1000}\n", encoding="utf-8")
    failed = keel(home, "datasets", "validate", "loans", "--suite", str(suite), check=False)
    assert failed.returncode == 1 and "FAILED" in failed.stdout
    assert "[/]" not in failed.stdout and "[bold" not in failed.stdout  # styled, not raw markup
    refused = keel(home, "datasets", "publish", "loans", check=False)
    assert refused.returncode == 1 and "failed the validation gate" in refused.stderr
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps([{"kind": "not_null", "column": "id"}]), encoding="utf-8")
    html = tmp_path / "report.html"
    keel(home, "datasets", "validate", "loans", "--suite", str(ok), "--html", str(html))
    assert "<html" in html.read_text(encoding="utf-8").lower()
    published = json.loads(keel(home, "datasets", "publish", "loans", "--json").stdout)
    assert published["published"] is True
    labels = json.loads(keel(home, "datasets", "classify", "loans", "--json").stdout)
    assert labels["classification"]["columns"]["email"]["categories"] == ["contact.email"]
    missing_reason = keel(
        home, "datasets", "classify", "loans", "--set", "id=restricted", check=False
    )
    assert missing_reason.returncode == 2 and "--reason" in missing_reason.stderr
    over = keel(
        home,
        "datasets",
        "classify",
        "loans",
        "--set",
        "id=restricted",
        "--reason",
        "customer key",
        "--json",
    )
    assert json.loads(over.stdout)["sensitivity"] == "restricted"
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps([{"kind": "mask", "columns": ["email"]}]), encoding="utf-8")
    anon = json.loads(
        keel(home, "datasets", "anonymize", "loans", "--steps", str(steps), "--json").stdout
    )
    assert anon["version"] == 2 and anon["transform"]["record"]["masked"] == ["email"]
    tagged = json.loads(keel(home, "datasets", "tag", "loans", "golden", "1", "--json").stdout)
    assert "golden" in tagged["tags"]
    diff = json.loads(keel(home, "datasets", "diff", "loans", "1", "2", "--json").stdout)
    assert diff["rows_before"] == diff["rows_after"] == 200
    unknown = keel(home, "datasets", "show", "nope", check=False)
    assert unknown.returncode == 1 and "keel datasets list" in unknown.stderr


def test_quote_char_none_from_the_command_line(tmp_path: Path) -> None:
    csv = tmp_path / "screens.csv"
    csv.write_text('id,size\n1,5" screen\n2,7" screen\n', encoding="utf-8")
    home = tmp_path / "home"
    refused = keel(home, "datasets", "ingest", "screens", str(csv), check=False)
    assert refused.returncode != 0
    assert "--quote-char none" in refused.stderr + refused.stdout
    keel(home, "datasets", "ingest", "screens", str(csv), "--quote-char", "none", "--json")
    shown = json.loads(keel(home, "datasets", "show", "screens", "--json").stdout)
    assert shown["row_count"] == 2 and shown["rejected_rows"] == 0
