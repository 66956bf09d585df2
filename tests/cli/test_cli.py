"""The ``keel`` command: real subprocesses, real exit codes, JSON that scripts can read."""

from __future__ import annotations

import json
import os
import sqlite3
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
    """A store that has run the quickstart once (shared by the read-only tests)."""
    path = tmp_path_factory.mktemp("cli") / "home"
    out = keel(path, "quickstart", "--json")
    summary = json.loads(out.stdout)
    assert summary["reload_matches"] is True
    return path


def test_quickstart_trains_registers_and_promotes(home: Path) -> None:
    models = json.loads(keel(home, "models", "list", "--json").stdout)
    assert [m["name"] for m in models] == ["breast-cancer-classifier"]
    assert models[0]["aliases"] == {"champion": 1}
    shown = json.loads(keel(home, "models", "show", "breast-cancer-classifier", "--json").stdout)
    version = shown["versions"][0]
    assert version["format"] == "skops"
    assert version["artifact_digest"].startswith("sha256:")
    assert shown["alias_history"][0]["to_version"] == 1
    runs = json.loads(keel(home, "runs", "list", "--json").stdout)
    assert len(runs) == 2
    assert all(r["status"] == "FINISHED" for r in runs)
    assert version["run_id"] in {r["id"] for r in runs}
    assert all(r["metrics"]["test_auc"] > 0.95 for r in runs)


def test_runs_list_filters_and_orders(home: Path) -> None:
    out = keel(home, "runs", "list", "--json", "-f", "params.model = 'random_forest'")
    runs = json.loads(out.stdout)
    assert [r["params"]["model"] for r in runs] == ["random_forest"]
    ordered = json.loads(keel(home, "runs", "list", "--json", "-o", "metrics.test_auc ASC").stdout)
    aucs = [r["metrics"]["test_auc"] for r in ordered]
    assert aucs == sorted(aucs)


def test_runs_show_includes_environment_and_human_output(home: Path) -> None:
    run_id = json.loads(keel(home, "runs", "list", "--json").stdout)[0]["id"]
    data = json.loads(keel(home, "runs", "show", run_id, "--json").stdout)
    assert data["environment"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "scikit-learn" in data["environment"]["packages"]
    text = keel(home, "runs", "show", run_id).stdout
    assert run_id in text and "Params" in text


def test_malformed_filter_is_a_usage_error_with_exit_2(home: Path) -> None:
    result = keel(home, "runs", "list", "-f", "metrics.auc >", check=False)
    assert result.returncode == 2
    assert "Invalid filter at column" in result.stderr


def test_unknown_ids_fail_with_exit_1_and_a_fix(home: Path) -> None:
    result = keel(home, "runs", "show", "NOPE", check=False)
    assert result.returncode == 1
    assert "keel runs list" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_option_is_exit_2(home: Path) -> None:
    assert keel(home, "runs", "list", "--frobnicate", check=False).returncode == 2


def test_missing_store_says_how_to_create_one(tmp_path: Path) -> None:
    result = keel(tmp_path / "none", "runs", "list", check=False)
    assert result.returncode == 1
    assert "keel init" in result.stderr
    assert not (tmp_path / "none").exists()


def test_init_creates_a_private_key_and_is_idempotent(tmp_path: Path) -> None:
    first = json.loads(keel(tmp_path / "h", "init", "--json").stdout)
    assert first["created"] is True and first["project"] == "default"
    assert (tmp_path / "h" / "master.key").stat().st_mode & 0o777 == 0o600
    again = json.loads(keel(tmp_path / "h", "init", "--json").stdout)
    assert again["created"] is False
    shown = json.loads(keel(tmp_path / "h", "config", "show", "--json").stdout)
    assert shown["home"] == str(tmp_path / "h")
    status = json.loads(keel(tmp_path / "h", "db", "status", "--json").stdout)
    assert status["ok"] is True


def test_alias_and_rollback_commands(tmp_path: Path) -> None:
    home = tmp_path / "h"
    keel(home, "init")
    from keel.workspace import connect

    with connect(home) as ws:
        for payload in (b"a", b"b"):
            ws.models.register("m", artifact=payload, format="onnx")
    keel(home, "models", "alias", "m", "champion", "1")
    moved = json.loads(keel(home, "models", "alias", "m", "champion", "2", "--json").stdout)
    assert (moved["from_version"], moved["to_version"]) == (1, 2)
    back = json.loads(keel(home, "models", "rollback", "m", "champion", "--json").stdout)
    assert back["to_version"] == 1
    again = keel(home, "models", "rollback", "m", "champion", check=False)
    assert again.returncode == 1 and "nothing to roll back" in again.stderr


def test_outdated_schema_is_refused_with_the_upgrade_command(tmp_path: Path) -> None:
    home = tmp_path / "h"
    keel(home, "init")
    with sqlite3.connect(home / "keel.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000'")
    result = keel(home, "runs", "list", check=False)
    assert result.returncode == 1
    assert "keel db upgrade" in result.stderr
    status = keel(home, "db", "status", check=False)
    assert status.returncode == 1


def test_audit_verify_and_export_then_tamper(tmp_path: Path) -> None:
    home = tmp_path / "h"
    keel(home, "init")
    from keel.workspace import connect

    with connect(home) as ws:
        for name in ("a", "b", "c"):
            ws.experiments.create(name)
    ok = keel(home, "audit", "verify")
    assert "intact: 4 events" in ok.stdout
    out = tmp_path / "audit.jsonl"
    keel(home, "audit", "export", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4 and lines[-1]["object_type"] == "experiment"
    with sqlite3.connect(home / "keel.db") as conn:
        conn.execute("UPDATE audit_events SET action = 'nothing' WHERE seq = 3")
    broken = keel(home, "audit", "verify", check=False)
    assert broken.returncode == 1
    assert "event #3" in broken.stderr
    report = json.loads(keel(home, "audit", "verify", "--json", check=False).stdout)
    assert report["broken"]["seq"] == 3 and report["ok"] is False


def test_help_lists_the_commands() -> None:
    out = subprocess.run([*KEEL, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("init", "quickstart", "runs", "models", "audit", "db", "config"):
        assert command in out
