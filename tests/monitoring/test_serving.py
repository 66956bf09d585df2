"""With a real model server: labels from the ground-truth store feed the canary analysis, and a
monitor whose webhook hangs never holds up predictions."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np

from keel.serving import AnalysisConfig, ServeOptions, start_in_thread
from tests.monitoring.conftest import FEATURES, Deployed, Sink, traffic


def _served(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model's features only (the server refuses other fields)."""
    return [{k: v for k, v in record.items() if k in FEATURES} for record in inputs]


def _wait(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_labels_ingested_by_the_sdk_reach_the_canary_analysis(deployed: Deployed) -> None:
    from sklearn.linear_model import LogisticRegression

    ws = deployed.ws
    frame = ws.datasets.read("customers")
    X = frame.select(FEATURES).to_numpy()
    flipped = LogisticRegression().fit(X, 1 - frame["label"].to_numpy())
    bad = ws.models.log_model(flipped, name="churn", sample=X[:20], feature_names=FEATURES)
    ws.deployments.deploy(
        f"churn:{bad.version}", environment="staging", strategy="canary", steps="50,100"
    )
    app = ws.deployments.server(
        ServeOptions(deployments=[deployed.deployment], analysis=None, poll_seconds=0.1)
    )
    handle = start_in_thread(app)
    inputs, _, truth = traffic(deployed.model, 160, seed=5)
    inputs = _served(inputs)
    labels = []
    try:
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            for record, label in zip(inputs, truth, strict=True):
                body = client.post(f"/predict/{deployed.deployment}", json=[record]).json()
                labels.append({"prediction_id": body["prediction_ids"][0], "label": label})
        ws.monitors.ingest_labels(labels)  # not through the model server
        endpoint = app.host.endpoints[deployed.deployment]
        _wait(
            lambda: endpoint.stats["candidate"].labelled + endpoint.stats["primary"].labelled >= 150
        )
        config = AnalysisConfig(min_requests=30, min_labels=30, max_psi=1e9, max_latency_ratio=1e9)
        decision = app.host.analyse(deployed.deployment, config)
    finally:
        handle.stop()
    assert decision.action == "rollback"
    assert decision.stats["accuracy"]["canary"] < decision.stats["accuracy"]["baseline"]


def test_labels_posted_to_the_model_server_are_stored_for_monitoring(deployed: Deployed) -> None:
    ws = deployed.ws
    app = ws.deployments.server(ServeOptions(deployments=[deployed.deployment], analysis=None))
    handle = start_in_thread(app)
    try:
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            body = client.post(
                f"/predict/{deployed.deployment}", json=[{"a": 1.0, "b": 0.0, "c": 0.0}]
            )
            pid = body.json()["prediction_ids"][0]
            answer = client.post(
                f"/labels/{deployed.deployment}",
                json={"labels": [{"prediction_id": pid, "label": 1}]},
            )
            assert answer.status_code == 200
    finally:
        handle.stop()
    assert ws.monitors.service.labels.find(ws.ctx, [pid]) == {pid: 1}


def test_a_hanging_webhook_never_blocks_serving(deployed: Deployed, sink: Sink) -> None:
    ws = deployed.ws
    sink.delay = 3.0
    ws.monitors.create(
        "m", reference="customers:1", deployment=deployed.deployment, window="count:500"
    )
    ws.monitors.add_rule(
        "drift-high",
        monitor="m",
        metric="drift.share",
        threshold=0.1,
        channels=[
            {
                "type": "webhook",
                "url": sink.url,
                "allow_private": True,
                "timeout": 2.0,
                "retries": 2,
                "backoff": 0.0,
            }
        ],
    )
    app = ws.deployments.server(ServeOptions(deployments=[deployed.deployment], analysis=None))
    handle = start_in_thread(app)
    inputs = _served(traffic(deployed.model, 200, shift=3.0, seed=9)[0])
    try:
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            assert client.post(f"/predict/{deployed.deployment}", json=inputs).status_code == 200
            logger = app.host.logger
            assert logger is not None
            _wait(lambda: logger.written >= 200)
            report = ws.monitors.run("m")
            assert [a["state"] for a in report.alerts] == ["firing"]
            _wait(lambda: len(sink.received) >= 1)  # the webhook is now hanging
            answers = [
                client.post(f"/predict/{deployed.deployment}", json=inputs[i : i + 5])
                for i in range(0, 50, 5)
            ]
            assert all(a.status_code == 200 for a in answers)
            assert ws.monitors.alerts()[0].deliveries[0].status == "pending"
    finally:
        handle.stop()
    assert ws.monitors.wait_deliveries(60)
    delivery = ws.monitors.alerts()[0].deliveries[0]
    assert delivery.status == "failed" and ws.monitors.alerts()[0].state == "firing"
    assert np.isfinite(report.drift["share_drifted"])
