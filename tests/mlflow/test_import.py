"""`keel import mlflow`: copy an MLflow server (here: a live Keel serving the MLflow API)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.server.mlflow import MlflowImporter, MlflowSource
from keel.settings import Settings
from keel.tracking import dump_skops
from keel.workspace import Workspace, connect
from tests.server._live import LiveServer

API = "/api/2.0/mlflow"


def _fill(http: httpx.Client) -> dict[str, Any]:
    """Two experiments, three runs (metric history, artifacts), a model with an alias."""
    exp = http.post(f"{API}/experiments/create", json={"name": "churn-model"}).json()
    runs = []
    for index in range(3):
        run = http.post(
            f"{API}/runs/create",
            json={
                "experiment_id": exp["experiment_id"],
                "run_name": f"r{index}",
                "tags": [{"key": "team", "value": "ml"}],
            },
        ).json()["run"]["info"]
        metrics = [
            {"key": "loss", "value": 1.0 / (s + 1), "timestamp": 1000 + s, "step": s}
            for s in range(20)
        ]
        http.post(
            f"{API}/runs/log-batch",
            json={
                "run_id": run["run_id"],
                "metrics": metrics,
                "params": [{"key": "lr", "value": str(0.1 * (index + 1))}],
            },
        )
        where = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
        http.put(
            f"/api/2.0/mlflow-artifacts/artifacts/{where}/notes/readme.txt",
            content=f"run {index}".encode(),
        )
        http.post(f"{API}/runs/update", json={"run_id": run["run_id"], "status": "FINISHED"})
        runs.append(run)
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    where = runs[0]["artifact_uri"].removeprefix("mlflow-artifacts:/")
    http.put(
        f"/api/2.0/mlflow-artifacts/artifacts/{where}/model/model.skops",
        content=dump_skops(LogisticRegression(max_iter=300).fit(x, y)),
    )
    http.post(f"{API}/registered-models/create", json={"name": "churn"})
    made = http.post(
        f"{API}/model-versions/create",
        json={
            "name": "churn",
            "source": f"runs:/{runs[0]['run_id']}/model",
            "run_id": runs[0]["run_id"],
        },
    )
    assert made.status_code == 200, made.text
    http.post(
        f"{API}/registered-models/alias",
        json={"name": "churn", "alias": "champion", "version": "1"},
    )
    return {"experiment": exp["experiment_id"], "runs": runs}


@pytest.fixture(scope="module")
def source(live: LiveServer) -> dict[str, Any]:
    return _fill(live.client(live.admin_token))


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Workspace]:
    ws = connect(settings=Settings(home=tmp_path / "target"), create=True)
    yield ws
    ws.close()


def _import(live: LiveServer, ws: Workspace) -> dict[str, Any]:
    src = MlflowSource(live.url, token=live.admin_token)
    seen: list[str] = []
    try:
        report = MlflowImporter(src, ws, progress=lambda st, d, t, w: seen.append(st)).run()
    finally:
        src.close()
    assert {"experiments", "runs", "models"} <= set(seen)  # progress was reported
    return report.to_dict()


def test_import_copies_runs_metrics_artifacts_and_models(
    live: LiveServer, source: dict[str, Any], target: Workspace
) -> None:
    report = _import(live, target)
    assert report["runs"] == 3 and report["metrics"] == 60 and report["artifacts"] == 4
    assert report["versions"] == 1 and report["skipped"] == []
    exp = target.experiments.get_by_name("churn-model")
    assert exp.tags["mlflow.import.name"] == "churn-model"
    page = target.runs.search("params.lr = '0.2'", experiments=["churn-model"])
    assert [r.name for r in page.runs] == ["r1"]
    run = page.runs[0]
    assert run.status.value == "FINISHED" and run.tags["team"] == "ml"
    history = target.runs.metric_history(run.id, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history[:2]] == [(0, 1.0, 1000), (1, 0.5, 1001)]
    assert target.runs.read_artifact(run.id, "notes/readme.txt") == b"run 1"
    version = target.models.version("churn@champion")
    assert version.format == "skops" and version.version == 1
    assert (
        version.run_id
        == target.runs.search("attributes.run_name = 'r0'", experiments=["churn-model"]).runs[0].id
    )
    assert target.models.load_sklearn("churn@champion").predict([[5.1, 3.5, 1.4, 0.2]])[0] == 0


def test_import_is_idempotent_and_resumes(
    live: LiveServer, source: dict[str, Any], target: Workspace
) -> None:
    _import(live, target)
    again = _import(live, target)
    assert again["runs"] == 0 and again["runs_already_imported"] == 3
    assert again["versions"] == 0 and again["experiments"] == 0
    # An interrupted import leaves a run without its completion mark: it is copied again.
    victim = target.runs.search("params.lr = '0.1'", experiments=["churn-model"]).runs[0]
    target.runs.delete_tag(victim.id, "mlflow.import.complete")
    resumed = _import(live, target)
    assert resumed["runs"] == 1 and resumed["metrics"] == 20
    active = target.runs.search("params.lr = '0.1'", experiments=["churn-model"]).runs
    assert len(active) == 1 and active[0].id != victim.id
    assert len(target.runs.metric_history(active[0].id, "loss")) == 20
    assert len(target.models.versions("churn")) == 1


def test_the_cli_imports_with_progress_and_json(
    live: LiveServer, source: dict[str, Any], tmp_path: Path
) -> None:
    home = tmp_path / "cli-home"
    connect(settings=Settings(home=home), create=True).close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli",
            "--home",
            str(home),
            "import",
            "mlflow",
            "--from",
            live.url,
            "--json",
        ],
        env={
            "MLFLOW_TRACKING_TOKEN": live.admin_token,
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"] == 3
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli",
            "--home",
            str(home),
            "import",
            "mlflow",
            "--from",
            live.url,
            "--token",
            "keel_wrong",
        ],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert refused.returncode == 2 and "refused the credentials" in refused.stderr + refused.stdout


def test_names_keel_refuses_are_made_valid() -> None:
    from keel.server.mlflow._importer import keel_name

    assert keel_name("churn model") == "churn-model"
    assert keel_name("/Users/ana@corp.com/exp 1") == "Users-ana-corp.com-exp-1"
    assert keel_name("___") == "x___"
    assert keel_name("!!!") == "unnamed"
