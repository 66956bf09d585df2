"""Fixtures: a deployed model with a reference dataset, and prediction logs written as the
model server writes them (through the deployment service's log sink)."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from keel import clock
from keel.serving._predlog import _to_table
from keel.workspace import Workspace, connect
from tests.conftest import make_settings

FEATURES = ["a", "b", "c"]
PLANS = ["basic", "plus", "pro"]


def reference_frame(rows: int = 2000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    return pl.DataFrame(
        {
            "a": X[:, 0],
            "b": X[:, 1],
            "c": X[:, 2],
            "plan": [PLANS[i] for i in rng.integers(0, 3, rows)],
            "label": (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64),
        }
    )


@dataclass
class Deployed:
    ws: Workspace
    deployment: str
    model: Any
    version: int


def deploy_model(ws: Workspace, *, reference: pl.DataFrame | None = None) -> Deployed:
    from sklearn.linear_model import LogisticRegression

    frame = reference if reference is not None else reference_frame()
    ws.datasets.ingest("customers", frame)
    X = frame.select(FEATURES).to_numpy()
    model = LogisticRegression().fit(X, frame["label"].to_numpy())
    registered = ws.models.log_model(model, name="churn", sample=X[:20], feature_names=FEATURES)
    deployment = ws.deployments.deploy(f"churn:{registered.version}", environment="staging")
    return Deployed(ws, deployment.name, model, registered.version)


def log_predictions(
    ws: Workspace,
    deployment: str,
    inputs: Sequence[dict[str, Any]],
    predictions: Sequence[Any],
    *,
    version: int = 1,
    variant: str = "primary",
    start: datetime | None = None,
    step: timedelta = timedelta(milliseconds=10),
    latency_ms: float = 2.0,
    prefix: str = "p",
) -> list[str]:
    """Write one log batch the way the model server does; returns the prediction ids."""
    first = start or clock.now() - timedelta(minutes=5)
    ids = [f"{prefix}{i}" for i in range(len(inputs))]
    rows = [
        (
            pid,
            deployment,
            "churn",
            version,
            variant,
            None,
            first + i * step,
            latency_ms + (i % 5),
            json.dumps(record),
            json.dumps(prediction),
        )
        for i, (pid, record, prediction) in enumerate(zip(ids, inputs, predictions, strict=True))
    ]
    ws.deployments.service.write_log_batch(
        ws.ctx, deployment, f"{prefix}-{len(ids)}", _to_table(rows)
    )
    return ids


def traffic(
    model: Any, rows: int, *, shift: float = 0.0, seed: int = 1, plans: Sequence[str] = PLANS
) -> tuple[list[dict[str, Any]], list[int], list[int]]:
    """Inputs, the model's predictions and the true labels of ``rows`` requests."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3)) + np.array([shift, 0.0, 0.0])
    chosen = [plans[i] for i in rng.integers(0, len(plans), rows)]
    inputs = [
        {"a": float(x[0]), "b": float(x[1]), "c": float(x[2]), "plan": p}
        for x, p in zip(X, chosen, strict=True)
    ]
    predicted = [int(v) for v in model.predict(X)]
    truth = [int(v) for v in (X[:, 0] + 0.5 * X[:, 1] > 0)]
    return inputs, predicted, truth


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployed]:
    ws = connect(settings=make_settings(tmp_path / "home"), principal="user:tester")
    try:
        yield deploy_model(ws)
    finally:
        ws.close()


@dataclass
class Sink:
    """A local HTTP server that records what it is sent and answers as told."""

    status: int = 200
    delay: float = 0.0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def sink() -> Iterator[Sink]:
    state = Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            if state.delay:
                time.sleep(state.delay)
            try:
                self.send_response(state.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                return

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
