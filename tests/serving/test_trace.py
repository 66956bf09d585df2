"""Tracing a served prediction back to its data: the logged row, the revision that routed it,
the model version that answered, its late label, and the lineage up to the dataset version."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import keel
from keel import clock
from keel.data import DatasetVersion
from keel.errors import InvalidInputError, NotFoundError
from keel.lineage import Node
from keel.serving import PredictionTrace
from keel.serving._predlog import _to_table
from keel.serving._service import ServiceLogSink
from keel.serving._trace import prediction_moment
from keel.tracking import ModelVersion
from keel.types import new_id
from keel.workspace import Workspace, connect
from tests.conftest import make_settings
from tests.server._live import live_server
from tests.serving.conftest import FEATURES, serve_records, training_data

NAMES = [f"f{i}" for i in range(FEATURES)]
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _trained(ws: Workspace) -> tuple[DatasetVersion, str, ModelVersion, Any]:
    """A dataset version, the run that read it and the model version the run produced."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = training_data(0)
    frame = pl.DataFrame({**{n: X[:, i] for i, n in enumerate(NAMES)}, "y": y})
    data = ws.datasets.ingest("churn-data", frame)
    model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    with ws.runs.start(experiment="churn") as run:
        ws.datasets.record_use("churn-data", data.version, f"run:{run.id}")
        version = ws.models.log_model(
            model, name="churn", sample=X[:50], run_id=run.id, dataset_version="churn-data:1"
        )
    ws.models.set_alias("churn", "champion", version.version)
    return data, run.id, version, model


def _id_at(moment: Any) -> str:
    """A prediction id as a model server makes it at ``moment`` (time in its first 10 chars)."""
    value = clock.to_millis(moment) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def test_a_served_prediction_is_traced_to_the_dataset_version_it_learned_from(
    ws: Workspace,
) -> None:
    data, run_id, version, model = _trained(ws)
    deployment = ws.deployments.deploy("churn@champion", environment="staging")
    X, _ = training_data(0)
    ids = serve_records(ws, "churn-staging", X[:3])
    ws.monitors.ingest_labels([{"prediction_id": ids[0], "label": 1}])

    found = ws.deployments.trace(ids[1])
    assert found.prediction_id == ids[1]
    assert (found.deployment, found.deployment_id) == ("churn-staging", deployment.id)
    assert (found.model, found.version, found.model_version_id) == ("churn", 1, version.id)
    assert found.variant == "primary"
    assert found.prediction == int(model.predict(X[1:2])[0])
    assert found.inputs == pytest.approx(dict(zip(NAMES, X[1].tolist(), strict=True)))
    assert (found.revision, found.revision_action) == (1, "deploy")
    assert abs(found.timestamp - prediction_moment(ids[1])) < timedelta(seconds=5)
    assert not found.labelled and found.label is None
    labelled = ws.deployments.trace(ids[0], deployment="churn-staging")
    assert labelled.labelled and labelled.label == 1

    log = Node("prediction_log", f"{deployment.id}.{version.id}")
    assert found.log == log
    assert found.lineage is not None and found.lineage.root == log
    edges = {(str(e.upstream), e.relation, str(e.downstream)) for e in found.lineage.upstream}
    assert (f"model_version:{version.id}", "predicted", str(log)) in edges
    assert (f"deployment:{deployment.id}", "logged", str(log)) in edges
    assert (f"run:{run_id}", "produced", f"model_version:{version.id}") in edges
    assert (f"dataset_version:{data.id}", "used_by", f"run:{run_id}") in edges
    assert not found.lineage.truncated  # the walk ended at the source, within its depth
    # the log is downstream of the deployment for anyone walking the graph the other way
    down = ws.lineage.graph(f"deployment:{deployment.id}", direction="down")
    assert log in down.nodes
    # a second batch of the same version links nothing twice
    serve_records(ws, "churn-staging", X[3:4])
    again = ws.lineage.graph(str(log), direction="up", depth=1)
    assert sorted(e.relation for e in again.upstream) == ["logged", "predicted"]


def test_the_revision_in_force_and_the_canary_version_are_named(local_ws: Workspace) -> None:
    from tests.serving.conftest import register_forest

    ws = local_ws
    register_forest(ws, trees=3, seed=0, alias="champion")
    register_forest(ws, trees=3, seed=1, alias="challenger")
    ws.deployments.deploy("churn@champion", environment="staging")
    before = clock.now()
    ws.deployments.deploy("churn@challenger", environment="staging", strategy="canary")
    stamp = clock.now()
    sink = ServiceLogSink(ws.deployments.service, ws.ctx)
    pid = _id_at(stamp)
    row = (pid, "churn-staging", "churn", 2, "candidate", "req-7", stamp, 1.5, '{"f0": 1}', "0")
    sink.write_batch("churn-staging", "canary-batch", _to_table([row]))

    found = ws.deployments.trace(pid)
    assert (found.version, found.variant, found.request_id) == (2, "candidate", "req-7")
    assert found.revision == 2 and found.revision_action == "deploy"
    assert found.revision_reason is not None and "canary" in found.revision_reason
    assert found.timestamp >= before
    challenger = ws.models.version("churn", 2)
    assert found.model_version_id == challenger.id
    # the champion's row: its lineage goes up through its own version, not through the
    # deployment to the challenger deployed after it
    old = _id_at(stamp)
    row = (old, "churn-staging", "churn", 1, "primary", None, stamp, 1.0, "{}", "1")
    sink.write_batch("churn-staging", "primary-batch", _to_table([row]))
    champion = ws.deployments.trace(old)
    assert champion.lineage is not None
    assert Node("model_version", ws.models.version("churn", 1).id) in champion.lineage.nodes
    assert Node("model_version", challenger.id) not in champion.lineage.nodes
    deployed = ws.deployments.get("churn-staging").id
    assert Node("deployment", deployed) in champion.lineage.nodes  # its own edge, not beyond


def test_only_the_batches_around_the_ids_time_are_read(
    local_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.serving.conftest import register_forest

    ws = local_ws
    register_forest(ws, trees=3, seed=0, alias="champion")
    ws.deployments.deploy("churn@champion", environment="staging")
    sink = ServiceLogSink(ws.deployments.service, ws.ctx)
    now = clock.now()
    for hours in range(5, 0, -1):  # five older batches, an hour apart
        at = now - timedelta(hours=hours)
        row = (_id_at(at), "churn-staging", "churn", 1, "primary", None, at, 1.0, "{}", "1")
        sink.write_batch("churn-staging", f"old-{hours}", _to_table([row]))
    pid = _id_at(now)
    row = (pid, "churn-staging", "churn", 1, "primary", None, now, 1.0, "{}", "0")
    sink.write_batch("churn-staging", "recent", _to_table([row]))
    blobs = ws.deployments.service._blobs
    read: list[str] = []
    original = blobs.get_bytes

    def counting(digest: str, **kwargs: Any) -> bytes:
        read.append(digest)
        return original(digest, **kwargs)

    monkeypatch.setattr(blobs, "get_bytes", counting)
    assert ws.deployments.trace(pid).prediction == 0
    assert len(read) == 1


def test_bad_ids_unknown_ids_and_unknown_deployments_say_what_to_do(local_ws: Workspace) -> None:
    ws = local_ws
    for bad in ("p001", "01JCV7Z3K8Q4M2N6P9R5T1W0X", "01JCV7Z3K8Q4M2N6P9R5T1W0XU", "x" * 500):
        with pytest.raises(InvalidInputError, match="is not a prediction id: a model server"):
            ws.deployments.trace(bad)
    with pytest.raises(NotFoundError, match=r"No logged prediction .* --deployment NAME"):
        ws.deployments.trace(new_id())
    with pytest.raises(NotFoundError, match="Deployment 'nope' does not exist"):
        ws.deployments.trace(new_id(), deployment="nope")
    with pytest.raises(InvalidInputError, match="depth must be between 1 and 50"):
        ws.deployments.trace(new_id(), depth=0)
    assert prediction_moment(new_id() + "-12") <= clock.now()


def _logged_one(home: Path, principal: str | None = None) -> str:
    """A deployment beside the store logs one prediction; returns its id."""
    from tests.serving.conftest import register_forest

    with connect(settings=make_settings(home), principal=principal) as ws:
        register_forest(ws, trees=3, seed=0, alias="champion")
        ws.deployments.deploy("churn@champion", environment="staging")
        X, _ = training_data(0)
        return serve_records(ws, "churn-staging", X[:1])[0]


def test_a_trace_over_the_api_is_the_local_trace(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with live_server(home) as server:
        server.token_for("admin", name="user:ops")  # the operator's role in the project
        pid = _logged_one(home, "user:ops")
        with connect(settings=make_settings(home), principal="user:ops") as local:
            expected = local.deployments.trace(pid)
        remote = keel.connect(server.url, token=server.token_for("viewer", name="user:auditor"))
        try:
            found = remote.deployments.trace(pid)
            assert isinstance(found, PredictionTrace)
            assert found.to_dict() == expected.to_dict()
            with pytest.raises(InvalidInputError, match="is not a prediction id"):
                remote.deployments.trace("p001")
            with pytest.raises(NotFoundError, match="No logged prediction"):
                remote.deployments.trace(new_id())
        finally:
            remote.close()


def test_the_cli_prints_the_trace_and_its_lineage(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pid = _logged_one(home)
    env = {**os.environ, "KEEL_HOME": str(home), "COLUMNS": "200"}
    env.pop("KEEL_DB_URL", None)
    command = [sys.executable, "-m", "keel.cli", "deployments", "trace", pid]
    shown = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["prediction_id"] == pid and data["model"] == "churn" and data["version"] == 1
    assert data["log"].startswith("prediction_log:")
    human = subprocess.run(command, capture_output=True, text=True, env=env)
    assert human.returncode == 0, human.stderr
    assert "churn:1 (primary)" in human.stdout
    assert f"Lineage upstream of {data['log']}" in human.stdout
    assert "—predicted→ prediction_log:" in human.stdout
    missing = subprocess.run([*command[:-1], "p001"], capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "is not a prediction id" in missing.stderr
