"""The ``keel`` command: real subprocesses, real exit codes, JSON that scripts can read."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

KEEL = [sys.executable, "-m", "keel.cli"]


def keel(
    home: Path, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_HOME": str(home), "COLUMNS": "200"}
    env.pop("KEEL_DB_URL", None)
    result = subprocess.run(
        [*KEEL, *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A store that has run the quickstart once, and its summary (shared, read-only)."""
    path = tmp_path_factory.mktemp("cli") / "home"
    out = keel(path, "quickstart", "--json", timeout=300)
    summary = json.loads(out.stdout)
    assert summary["reload_matches"] is True
    assert summary["audit"]["ok"] is True
    assert summary["loop"]["phase"] in ("promoted", "rolled_back"), summary["loop"]
    return path, summary


@pytest.fixture(scope="module")
def home(quickstart: tuple[Path, dict[str, Any]]) -> Path:
    return quickstart[0]


def test_quickstart_trains_through_the_hpo_pipeline_and_promotes(
    quickstart: tuple[Path, dict[str, Any]],
) -> None:
    home, summary = quickstart
    pipeline = summary["pipeline"]
    run = json.loads(keel(home, "pipelines", "show", pipeline["pipeline_run_id"], "--json").stdout)
    assert run["status"] == "FINISHED" and run["pipeline"] == "quickstart-train"
    assert [s["name"] for s in run["steps"]] == ["load", "tune", "check"]
    assert pipeline["trials"] == 8 and set(pipeline["best_params"]) == {
        "n_estimators",
        "learning_rate",
        "max_depth",
    }
    runs = json.loads(keel(home, "runs", "list", "--json", "--limit", "100").stdout)
    by_id = {r["id"]: r for r in runs}
    trials = [r for r in runs if r["tags"].get("keel.hpo") == "trial"]
    assert len(trials) == 8
    assert {t["parent_run_id"] for t in trials} == {pipeline["search_run_id"]}
    assert all(r["status"] == "FINISHED" for r in runs)
    models = json.loads(keel(home, "models", "list", "--json").stdout)
    assert [m["name"] for m in models] == ["car-loan-classifier"]
    promoted = summary["loop"]["phase"] == "promoted"
    assert models[0]["aliases"] == {"champion": 2 if promoted else 1, "challenger": 2}
    shown = json.loads(keel(home, "models", "show", "car-loan-classifier", "--json").stdout)
    champion = next(v for v in shown["versions"] if v["version"] == 1)
    assert champion["tags"]["keel.stage"] == "candidate"
    assert champion["tags"]["keel.hpo.search_run"] == pipeline["search_run_id"]
    assert set(champion["tags"]["keel.formats"].split(",")) == {"skops", "onnx"}
    assert by_id[champion["run_id"]]["parent_run_id"] == pipeline["search_run_id"]
    assert champion["metrics"]["test.auc"] > 0.9
    moves = {m["alias"]: m for m in reversed(shown["alias_history"])}  # the first of each
    assert moves["champion"]["to_version"] == 1
    assert pipeline["search_run_id"] in moves["champion"]["reason"]
    assert summary["champion"]["reason"] == moves["champion"]["reason"]


def test_quickstart_trains_from_the_published_dataset_version(
    quickstart: tuple[Path, dict[str, Any]],
) -> None:
    home, summary = quickstart
    versions = json.loads(keel(home, "datasets", "versions", "car-loans", "--json").stdout)
    assert [(v["version"], v["published"]) for v in versions] == [
        (1, False),
        (2, True),
        (3, True),  # the labelled production period, appended and published by the gate
    ]
    assert versions[2]["row_count"] == 90_000
    assert versions[1]["row_count"] == 50_000 and versions[1]["rejected_rows"] == 0
    assert versions[1]["classification"] is not None
    assert versions[1]["transform"]["kind"] == "steps"
    published = versions[1]["id"]
    runs = json.loads(keel(home, "runs", "list", "--json", "--limit", "100").stdout)
    trained = [r for r in runs if "keel.dataset_version" in r["tags"]]
    assert {r["id"]: r["tags"]["keel.dataset_version"] for r in trained} == {
        summary["pipeline"]["refit_run_id"]: published,
        summary["loop"]["run_id"]: versions[2]["id"],  # retrained on the newest published
    }
    run = json.loads(
        keel(home, "pipelines", "show", summary["pipeline"]["pipeline_run_id"], "--json").stdout
    )
    assert [d["id"] for d in run["datasets"].values()] == [published]
    graph = json.loads(
        keel(home, "lineage", "show", f"dataset_version:{published}", "--json").stdout
    )
    edges = graph["downstream"] + graph["upstream"]
    assert {"used_by", "input", "gated", "produced", "validated"} <= {e["relation"] for e in edges}
    assert f"run:{summary['pipeline']['refit_run_id']}" in graph["nodes"]


def test_a_quickstart_prediction_is_traced_to_the_published_dataset_and_its_source(
    quickstart: tuple[Path, dict[str, Any]],
) -> None:
    home, summary = quickstart
    trace = summary["trace"]
    shown = json.loads(keel(home, "deployments", "trace", trace["prediction_id"], "--json").stdout)
    assert (shown["model"], shown["version"], shown["revision"]) == ("car-loan-classifier", 1, 1)
    assert shown["label"] in (0, 1) and shown["labelled"]
    nodes = set(shown["lineage"]["nodes"])
    assert f"dataset_version:{summary['dataset']['version_id']}" in nodes  # trained on it
    assert f"run:{summary['pipeline']['refit_run_id']}" in nodes
    assert {n.split(":")[0] for n in nodes} >= {"source", "validation", "transform"}
    assert trace["lineage_types"] == sorted({n.split(":")[0] for n in nodes})


def test_quickstart_deploys_a_canary_and_the_server_decides(
    quickstart: tuple[Path, dict[str, Any]],
) -> None:
    home, summary = quickstart
    deployment = summary["deployment"]
    assert deployment["decision"] in ("promoted", "rolled_back")
    shown = json.loads(keel(home, "deployments", "show", deployment["name"], "--json").stdout)
    assert shown["phase"] == deployment["decision"]
    assert shown["environment"] == "production" and shown["strategy"] == "canary"
    actions = [r["action"] for r in shown["revisions"]]
    assert actions[:2] == ["deploy", "deploy"]
    assert actions[-1] in ("analysis.promote", "analysis.rollback")
    assert shown["revisions"][-1]["reason"] == deployment["reason"]
    assert shown["primary"] == (2 if deployment["decision"] == "promoted" else 1)
    assert deployment["predictions_logged"] >= deployment["requests"] > 0
    production = json.loads(
        keel(home, "datasets", "versions", "car-loans-production", "--json").stdout
    )
    assert [v["version"] for v in production] == [1, 2]
    assert production[1]["transform"]["kind"] == "steps"


def test_quickstart_closes_the_loop_from_drift_to_canary(
    quickstart: tuple[Path, dict[str, Any]],
) -> None:
    home, summary = quickstart
    loop, monitoring = summary["loop"], summary["monitoring"]
    # The drift is real: the first production windows are clean, the later ones drift.
    windows = monitoring["windows"]
    assert windows[0]["drift"] != "drift" and windows[-1]["drift"] == "drift"
    assert "car_value" in windows[-1]["drifted"]
    # Both alerts fired: drift while serving, the accuracy drop once the labels arrived.
    alerts = json.loads(keel(home, "monitors", "alerts", "list", "--json").stdout)
    firing = {a["rule"]: a for a in alerts if a["state"] == "firing"}
    assert set(firing) == {"car-loans-drift", "car-loans-accuracy"}
    assert firing["car-loans-accuracy"]["value"] < 0.885
    assert monitoring["labels"]["stored"] == 40_000
    # The drift alert's trigger ran the retraining pipeline, which registered a challenger.
    assert loop["alert_id"] == firing["car-loans-drift"]["id"]
    run = json.loads(keel(home, "pipelines", "show", loop["pipeline_run_id"], "--json").stdout)
    assert run["status"] == "FINISHED" and run["trigger"] == "alert"
    assert run["cause"]["alert"] == loop["alert_id"]
    assert loop["decision"]["register"] is True and loop["version"] == 2
    # The canary decision is recorded on the deployment, after the loop's deploy.
    name = summary["deployment"]["name"]
    shown = json.loads(keel(home, "deployments", "show", name, "--json").stdout)
    decided = [r for r in shown["revisions"] if r["revision"] == loop["decision_revision"]]
    assert decided and decided[0]["action"].startswith("analysis.")
    # Lineage says why the new deployment revision exists: the alert, and the drift.
    why = keel(home, "lineage", "show", f"deployment:{summary['deployment']['id']}").stdout
    assert f"alert:{loop['alert_id']}" in why and "car-loans-drift" in why
    assert "data drift" in why and "triggered" in why
    exported = home.parent / "loop-audit.jsonl"
    keel(home, "audit", "export", "--out", str(exported))
    events = [json.loads(line) for line in exported.read_text().splitlines()]
    actions = [e["action"] for e in events if e["action"].startswith("loop.")]
    assert actions[:2] == ["loop.retrain", "loop.canary"] and len(actions) == 3
    # The reports exist and are self-contained HTML.
    for path in summary["reports"].values():
        text = Path(path).read_text(encoding="utf-8")
        assert text.lstrip().lower().startswith("<!doctype html")
    assert "car_value" in Path(summary["reports"]["monitoring"]).read_text(encoding="utf-8")


def test_runs_list_filters_and_orders(home: Path) -> None:
    out = keel(
        home,
        "runs",
        "list",
        "--json",
        "-f",
        "params.estimator LIKE '%GradientBoostingClassifier' AND "
        "tags.`keel.trigger` = 'alert:car-loans-drift'",
    )
    runs = json.loads(out.stdout)
    assert len(runs) == 1 and runs[0]["experiment_id"]
    assert runs[0]["tags"]["keel.retrain.decision"] == "register"
    ordered = json.loads(
        keel(
            home,
            "runs",
            "list",
            "--json",
            "-o",
            "metrics.`test.auc` ASC",
            "-f",
            "metrics.`test.auc` > 0",
        ).stdout
    )
    aucs = [r["metrics"]["test.auc"] for r in ordered]
    assert len(aucs) >= 3 and aucs == sorted(aucs)


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
        conn.execute("DELETE FROM alembic_version")
        conn.execute("INSERT INTO alembic_version (version_num) VALUES ('0001')")
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
