"""Deployments end to end: blue-green, canary analysis, shadow, logs, metrics, faults."""

# ruff: noqa: N803, N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from keel.errors import IntegrityError
from keel.serving import AnalysisConfig, ServedVersion, ServeOptions, start_in_thread
from keel.workspace import Workspace
from tests.serving.conftest import FEATURES, training_data

NAMES = [f"f{i}" for i in range(FEATURES)]


def _records(n: int, seed: int = 9) -> list[dict[str, float]]:
    X = training_data(seed)[0][:n]
    return [dict(zip(NAMES, row.tolist(), strict=True)) for row in X]


def test_blue_green_switches_and_rolls_back_instantly(served_ws: Workspace) -> None:
    first = served_ws.deployments.deploy("churn@champion", environment="staging")
    assert (first.name, first.state.primary, first.state.phase) == ("churn-staging", 1, "stable")
    switched = served_ws.deployments.deploy("churn@challenger", environment="staging")
    assert (switched.state.primary, switched.state.previous) == (2, 1)
    back = served_ws.deployments.rollback("churn-staging", reason="bad numbers")
    assert back.state.primary == 1
    actions = [r.action for r in served_ws.deployments.revisions("churn-staging")]
    assert actions == ["deploy", "deploy", "rollback"]
    audited = [e.action for e in served_ws.audit.events() if e.action.startswith("deployment.")]
    assert audited.count("deployment.deploy") == 2 and "deployment.rollback" in audited
    graph = served_ws.lineage.graph(f"deployment:{first.id}", direction="up")
    assert any(n.type == "model_version" for n in graph.nodes)


class _BrokenLoader:
    def __init__(self, inner: object) -> None:
        self._inner = inner

    def load(self, model: str, version: int | str | None) -> ServedVersion:
        served: ServedVersion = self._inner.load(model, version)  # type: ignore[attr-defined]

        class Broken:
            def predict_proba(self, X: object) -> object:
                raise RuntimeError("corrupt tree")

        return replace(served, predictor=Broken())


def test_a_version_failing_its_smoke_prediction_never_gets_traffic(served_ws: Workspace) -> None:
    served_ws.deployments.deploy("churn@champion", environment="production")
    service = served_ws.deployments.service
    with pytest.raises(IntegrityError, match="smoke prediction"):
        service.deploy(
            served_ws.ctx,
            "churn@challenger",
            environment="production",
            strategy="canary",
            loader=_BrokenLoader(service.loader(served_ws.ctx)),
        )
    now = served_ws.deployments.get("churn-production")
    assert now.state.primary == 1 and now.state.candidate is None
    assert served_ws.deployments.revisions("churn-production")[-1].action == "reject"


def test_canary_is_analysed_and_promoted_automatically_with_logs_and_metrics(
    served_ws: Workspace,
) -> None:
    served_ws.deployments.deploy("churn@champion", environment="staging")
    served_ws.deployments.deploy(
        "churn@challenger", environment="staging", strategy="canary", steps="50,100"
    )
    options = ServeOptions(
        deployments=["churn-staging"],
        poll_seconds=0.2,
        analysis=AnalysisConfig(min_requests=40, max_psi=5.0, max_latency_ratio=50.0),
    )
    handle = start_in_thread(served_ws.deployments.server(options))
    ids: list[str] = []
    variants: set[str] = set()
    try:
        with httpx.Client(base_url=handle.url) as client:
            deadline = time.monotonic() + 60
            while served_ws.deployments.get("churn-staging").state.phase == "rolling":
                assert time.monotonic() < deadline, "the canary was never promoted"
                body = client.post("/predict/churn-staging", json={"records": _records(2)}).json()
                ids.extend(body["prediction_ids"])
                variants.add(body["variant"])
            metrics = client.get("/metrics").text
    finally:
        handle.stop()
    final = served_ws.deployments.get("churn-staging")
    assert final.state.primary == 2 and final.state.phase == "promoted"
    analysed = [
        r
        for r in served_ws.deployments.revisions("churn-staging")
        if r.action.startswith("analysis.")
    ]
    assert [r.action for r in analysed] == ["analysis.promote", "analysis.promote"]
    assert analysed[0].analysis is not None and "psi" in analysed[0].analysis["stats"]
    assert variants == {"primary", "candidate"}
    # prediction log: every id once, after the shutdown flush
    logged = served_ws.deployments.read_predictions("churn-staging")
    assert sorted(logged["prediction_id"].to_list()) == sorted(ids)
    assert set(logged["variant"].to_list()) <= {"primary", "candidate"}
    # metrics parse with prometheus_client
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    served = {
        (s.labels["version"], s.labels["variant"])
        for s in families["keel_requests"].samples
        if s.name == "keel_requests_total"
    }
    assert ("1", "primary") in served and ("2", "candidate") in served
    assert any(s.name.endswith("_bucket") for s in families["keel_request_latency_seconds"].samples)


def test_shadow_copies_never_change_the_primary_response(served_ws: Workspace) -> None:
    served_ws.deployments.deploy("churn@champion", environment="staging")
    served_ws.deployments.deploy("churn@challenger", environment="staging", strategy="shadow")
    handle = start_in_thread(
        served_ws.deployments.server(ServeOptions(deployments=["churn-staging"], analysis=None))
    )
    expected = served_ws.models.load("churn:1").predict(
        np.asarray([list(r.values()) for r in _records(30)])
    )
    try:
        with httpx.Client(base_url=handle.url) as client:
            got = []
            for record in _records(30):
                body = client.post("/predict/churn-staging", json=[record]).json()
                assert (body["version"], body["variant"]) == (1, "primary")
                got.extend(body["predictions"])
        endpoint = handle.app.host.endpoints["churn-staging"]
        deadline = time.monotonic() + 10
        while endpoint.shadow.compared < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = endpoint.shadow.to_dict()
    finally:
        handle.stop()
    assert got == expected.tolist()
    assert stats["sent"] == 30 and stats["compared"] == 30 and stats["errors"] == 0
    assert 0.0 <= stats["disagreement_rate"] <= 1.0


_SERVER = """
import sys
from keel.serving import ServeOptions, run_server
from keel.settings import Settings
from keel.workspace import connect
ws = connect(settings=Settings(home=sys.argv[1]), principal="user:tester")
app = ws.deployments.server(ServeOptions(deployments=["churn-staging"], analysis=None))
run_server(app, port=int(sys.argv[2]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(home), str(port)])
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)


def _candidate_share(port: int, n: int) -> float:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        hits = sum(
            client.post("/predict", json=_records(1)).json()["variant"] == "candidate"
            for _ in range(n)
        )
    return hits / n


def test_server_killed_mid_canary_resumes_its_state(served_ws: Workspace, tmp_path: Path) -> None:
    served_ws.deployments.deploy("churn@champion", environment="staging")
    served_ws.deployments.deploy(
        "churn@challenger", environment="staging", strategy="canary", steps="10,50,100"
    )
    served_ws.deployments.promote("churn-staging")  # 10% -> 50%
    home = served_ws.settings.home
    port = _free_port()
    proc = _start(home, port)
    try:
        assert 0.3 < _candidate_share(port, 200) < 0.7
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc = _start(home, port)
        assert 0.3 < _candidate_share(port, 200) < 0.7
        assert served_ws.deployments.get("churn-staging").state.step == 1
    finally:
        proc.kill()
        proc.wait(10)


def test_personal_fields_of_the_training_dataset_are_redacted_in_the_log(
    served_ws: Workspace,
) -> None:
    import json

    import polars as pl
    from sklearn.linear_model import LogisticRegression

    X, y = training_data(3)
    frame = pl.DataFrame({name: X[:, i] for i, name in enumerate(NAMES)})
    ingested = served_ws.datasets.ingest("customers", frame)
    served_ws.datasets.override(
        "customers",
        "f3",
        sensitivity="confidential",
        categories=["date_of_birth"],
        reason="birth dates",
        version=ingested.version,
    )
    model = LogisticRegression().fit(X, y)
    version = served_ws.models.log_model(
        model,
        name="scoring",
        sample=X[:20],
        feature_names=NAMES,
        dataset_version=f"customers:{ingested.version}",
    )
    served_ws.deployments.deploy(f"scoring:{version.version}", environment="staging")
    handle = start_in_thread(
        served_ws.deployments.server(ServeOptions(deployments=["scoring-staging"], analysis=None))
    )
    try:
        body = httpx.post(f"{handle.url}/predict", json={"records": _records(3)}).json()
    finally:
        handle.stop()
    logged = served_ws.deployments.read_predictions("scoring-staging")
    assert sorted(logged["prediction_id"].to_list()) == sorted(body["prediction_ids"])
    inputs = [json.loads(text) for text in logged["inputs"].to_list()]
    assert all(row["f3"] == "[REDACTED]" for row in inputs)
    assert all(isinstance(row["f0"], float) for row in inputs)


def test_late_labels_feed_the_canary_accuracy_check(served_ws: Workspace) -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, y = training_data(0)
    flipped = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, 1 - y)
    bad = served_ws.models.log_model(flipped, name="churn", sample=X[:50])
    served_ws.deployments.deploy("churn@champion", environment="staging")
    served_ws.deployments.deploy(
        f"churn:{bad.version}", environment="staging", strategy="canary", steps="50,100"
    )
    app = served_ws.deployments.server(
        ServeOptions(deployments=["churn-staging"], analysis=None, log_predictions=False)
    )
    handle = start_in_thread(app)
    held, truth = training_data(11)
    try:
        with httpx.Client(base_url=handle.url) as client:
            for row, label in zip(held[:120], truth[:120], strict=True):
                record = dict(zip(NAMES, row.tolist(), strict=True))
                body = client.post("/predict/churn-staging", json=[record]).json()
                labels = [{"prediction_id": body["prediction_ids"][0], "label": int(label)}]
                answer = client.post("/labels/churn-staging", json={"labels": labels}).json()
                assert answer == {"received": 1, "matched": 1}
            unknown = client.post(
                "/labels/churn-staging", json={"labels": [{"prediction_id": "nope"}]}
            ).json()
            assert unknown["matched"] == 0
        config = AnalysisConfig(
            min_requests=30, min_labels=30, max_psi=1e9, max_latency_ratio=1e9, alpha=0.01
        )
        decision = app.host.analyse("churn-staging", config)
    finally:
        handle.stop()
    assert decision.action == "rollback"
    assert any(reason.startswith("Accuracy") for reason in decision.reasons)
    assert decision.stats["accuracy"]["canary"] < decision.stats["accuracy"]["baseline"]


def test_a_new_version_is_loaded_off_the_event_loop(served_ws: Workspace) -> None:
    # before: the controller loaded a deployment's new version on the server's event loop, so
    # a large model stalled every request for as long as it took to load
    import threading

    from keel.serving._host import ModelHost

    served_ws.deployments.deploy("churn@champion", environment="staging")
    threads: dict[str, set[int]] = {"load": set(), "switch": set()}
    load, switch = ModelHost._load, ModelHost.apply_state

    def loading(self: ModelHost, *args: Any, **kwargs: Any) -> Any:
        threads["load"].add(threading.get_ident())
        return load(self, *args, **kwargs)

    def switching(self: ModelHost, *args: Any, **kwargs: Any) -> Any:
        threads["switch"].add(threading.get_ident())
        return switch(self, *args, **kwargs)

    options = ServeOptions(deployments=["churn-staging"], poll_seconds=0.1, analysis=None)
    handle = start_in_thread(served_ws.deployments.server(options))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ModelHost, "_load", loading)
            patch.setattr(ModelHost, "apply_state", switching)
            served_ws.deployments.deploy(
                "churn@challenger", environment="staging", strategy="canary", steps="50,100"
            )
            with httpx.Client(base_url=handle.url) as client:
                deadline = time.monotonic() + 30
                while "2" not in client.get("/v2/models/churn-staging").json()["versions"]:
                    assert time.monotonic() < deadline, "the server never took version 2"
                    time.sleep(0.05)
    finally:
        handle.stop()
    assert threads["load"] and threads["switch"]  # version 2 was loaded, then switched in
    assert not threads["load"] & threads["switch"]  # never on the loop that switches
