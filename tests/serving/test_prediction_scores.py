"""Prediction logs carry classifier scores: the positive-class probability (two classes) or
every class's probability (several), none for regressors; older logs read with null scores."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from keel.serving._predlog import PredictionLogger, _to_table
from keel.workspace import Workspace
from tests.serving.conftest import FEATURES, serve_records, training_data

NAMES = [f"f{i}" for i in range(FEATURES)]


def test_a_binary_classifier_logs_its_positive_class_probability(served_ws: Workspace) -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, y = training_data(0)
    model = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(X, y)
    served_ws.deployments.deploy("churn@champion", environment="staging")
    ids = serve_records(served_ws, "churn-staging", X[:25])
    logged = served_ws.deployments.read_predictions("churn-staging")
    by_id = {r["prediction_id"]: r for r in logged.iter_rows(named=True)}
    scores = [by_id[pid]["score"] for pid in ids]
    assert all(isinstance(s, float) for s in scores)
    assert scores == pytest.approx(model.predict_proba(X[:25])[:, 1].tolist(), abs=1e-5)
    assert logged["scores"].null_count() == logged.height
    # the logged label is the class the score says
    predicted = [json.loads(by_id[pid]["prediction"]) for pid in ids]
    assert predicted == [int(s > 0.5) for s in scores]


def test_a_multiclass_classifier_logs_every_class_probability(served_ws: Workspace) -> None:
    from sklearn.linear_model import LogisticRegression

    X, _ = training_data(2)
    y = np.digitize(X[:, 0], [-0.5, 0.5])  # three classes: 0, 1, 2
    model = LogisticRegression(max_iter=500).fit(X, y)
    version = served_ws.models.log_model(model, name="tiers", sample=X[:30])
    served_ws.deployments.deploy(f"tiers:{version.version}", environment="staging")
    ids = serve_records(served_ws, "tiers-staging", X[:20])
    logged = served_ws.deployments.read_predictions("tiers-staging")
    by_id = {r["prediction_id"]: r for r in logged.iter_rows(named=True)}
    decoded = [json.loads(by_id[pid]["scores"]) for pid in ids]
    assert all(set(d) == {"0", "1", "2"} for d in decoded)
    expected = model.predict_proba(X[:20])
    got = np.array([[d["0"], d["1"], d["2"]] for d in decoded])
    assert np.allclose(got, expected, atol=1e-5)
    assert logged["score"].null_count() == logged.height


def test_a_regressor_logs_no_scores(served_ws: Workspace) -> None:
    from sklearn.linear_model import LinearRegression

    X, _ = training_data(3)
    model = LinearRegression().fit(X, X[:, 0] * 2.0)
    version = served_ws.models.log_model(model, name="amount", sample=X[:30])
    served_ws.deployments.deploy(f"amount:{version.version}", environment="staging")
    ids = serve_records(served_ws, "amount-staging", X[:5])
    logged = served_ws.deployments.read_predictions("amount-staging")
    assert sorted(logged["prediction_id"].to_list()) == sorted(ids)
    assert logged["score"].null_count() == 5 and logged["scores"].null_count() == 5


class _Sink:
    def __init__(self) -> None:
        self.tables: list[Any] = []
        self.done = threading.Event()

    def write_batch(self, deployment: str, batch_key: str, table: Any) -> None:
        self.tables.append(table)
        self.done.set()


def test_the_logger_expands_scores_in_its_writer_thread() -> None:
    sink = _Sink()
    logger = PredictionLogger(sink, flush_seconds=0.05)
    now = datetime.now(UTC)
    proba = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    common: dict[str, Any] = {
        "deployment": "d",
        "model": "m",
        "version": 1,
        "variant": "primary",
        "request_id": None,
        "timestamp": now,
        "latency_ms": 1.0,
        "features": ["x"],
        "rows": np.array([[1.0], [2.0]]),
    }
    logger.log_request(
        prediction_ids=["a", "b"],
        predictions=np.array(["mid", "low"]),
        probabilities=proba,
        classes=("low", "mid", "high"),
        **common,
    )
    logger.log_request(
        prediction_ids=["c", "d"],
        predictions=np.array([True, False]),
        probabilities=np.array([[0.1, 0.9], [0.7, 0.3]]),
        classes=(np.False_, np.True_),
        **common,
    )
    logger.log(
        prediction_id="e",
        deployment="d",
        model="m",
        version=1,
        variant="primary",
        request_id=None,
        timestamp=now,
        latency_ms=1.0,
        inputs={"x": 3.0},
        prediction=1,
        score=0.75,
    )
    logger.close()
    rows = {r["prediction_id"]: r for t in sink.tables for r in t.to_pylist()}
    assert json.loads(rows["a"]["scores"]) == {"low": 0.2, "mid": 0.5, "high": 0.3}
    assert rows["a"]["score"] is None
    assert [rows["c"]["score"], rows["d"]["score"]] == [0.9, 0.3]
    assert rows["c"]["scores"] is None
    assert rows["e"]["score"] == 0.75 and logger.written == 5


def test_logs_written_before_the_score_columns_still_read(served_ws: Workspace) -> None:
    service = served_ws.deployments.service
    now = datetime.now(UTC)
    old = _to_table([("p0", "d", "churn", 1, "primary", None, now, 1.0, "{}", "1")])
    assert old.column("score").to_pylist() == [None]  # short rows: null scores
    service.write_log_batch(served_ws.ctx, "d", "old", old.drop_columns(["score", "scores"]))
    new = _to_table([("p1", "d", "churn", 1, "primary", None, now, 1.0, "{}", "1", 0.8, None)])
    service.write_log_batch(served_ws.ctx, "d", "new", new)
    frame = served_ws.deployments.read_predictions("d")
    scores = dict(zip(frame["prediction_id"].to_list(), frame["score"].to_list(), strict=True))
    assert scores == {"p0": None, "p1": 0.8}
