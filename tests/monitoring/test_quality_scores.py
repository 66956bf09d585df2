"""Classifier AUC from logged scores: equal to scikit-learn's on the same scores, one-vs-rest
for several classes, and a labelled fallback (``auc_from``) for logs without scores."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from keel import clock
from keel.monitoring._quality import assess_classification, score_auc
from keel.serving import ServeOptions, start_in_thread
from keel.serving._predlog import _to_table
from tests.monitoring.conftest import FEATURES, Deployed, traffic


def _binary(n: int = 400, seed: int = 3) -> tuple[list[int], list[float], list[int]]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    score = np.clip(0.5 * truth + rng.normal(0.25, 0.3, n), 0.0, 1.0)
    predicted = (score > 0.5).astype(int)
    return truth.tolist(), score.tolist(), predicted.tolist()


def test_binary_auc_from_scores_equals_sklearn() -> None:
    truth, score, predicted = _binary()
    metrics, source = assess_classification(truth, predicted, scores=score)
    assert source == "scores"
    assert metrics["auc"] == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    # the same predictions without scores: a 0/1 ranking, a different number
    hard, fallback = assess_classification(truth, predicted)
    assert fallback == "labels"
    assert hard["auc"] == pytest.approx(roc_auc_score(truth, predicted), abs=1e-12)
    assert hard["auc"] != pytest.approx(metrics["auc"], abs=1e-3)
    assert hard["accuracy"] == metrics["accuracy"]


def test_the_positive_class_is_read_off_the_predictions() -> None:
    """Classes 2 and 10: the model's positive class is 10 (numeric order), although 10 sorts
    first as text; string labels work the same way."""
    truth, score, predicted = _binary(seed=4)
    numeric = [10 if t else 2 for t in truth]
    numeric_pred = [10 if p else 2 for p in predicted]
    auc = score_auc(numeric, numeric_pred, score)
    assert auc == pytest.approx(roc_auc_score(numeric, score), abs=1e-12)
    words = ["yes" if t else "no" for t in truth]
    word_pred = ["yes" if p else "no" for p in predicted]
    assert score_auc(words, word_pred, score) == pytest.approx(
        roc_auc_score(words, score), abs=1e-12
    )
    # the same model logging the probability of "no" instead: the predictions say so
    flipped = [1.0 - s for s in score]
    assert score_auc(words, word_pred, flipped) == pytest.approx(
        roc_auc_score(words, score), abs=1e-12
    )


def test_multiclass_one_vs_rest_macro_auc_equals_sklearn() -> None:
    rng = np.random.default_rng(7)
    classes = ["ant", "bee", "cat"]
    truth = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 1.2 * np.eye(3)[truth]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = [classes[i] for i in truth]
    predicted = [classes[i] for i in proba.argmax(axis=1)]
    scores = [dict(zip(classes, row, strict=True)) for row in proba.tolist()]
    metrics, source = assess_classification(labels, predicted, scores=scores)
    assert source == "scores"
    expected = roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=classes)
    assert metrics["auc"] == pytest.approx(expected, abs=1e-12)
    # numeric classes are logged with JSON keys ("0", "1", "2"); labels 0/1/2 match them
    numeric = [{json.dumps(i): p for i, p in enumerate(row)} for row in proba.tolist()]
    again = score_auc(truth.tolist(), proba.argmax(axis=1).tolist(), numeric)
    assert again == pytest.approx(expected, abs=1e-12)
    # without scores there is no multiclass AUC at all
    assert "auc" not in assess_classification(labels, predicted)[0]


def test_a_missing_score_falls_back_to_labels() -> None:
    truth, score, predicted = _binary()
    partial: list[Any] = list(score)
    partial[5] = None
    metrics, source = assess_classification(truth, predicted, scores=partial)
    assert source == "labels"
    assert metrics["auc"] == pytest.approx(roc_auc_score(truth, predicted), abs=1e-12)


def _labels(ids: list[str], truth: list[int]) -> list[dict[str, Any]]:
    return [{"prediction_id": p, "label": t} for p, t in zip(ids, truth, strict=True)]


def _log(
    d: Deployed, inputs: list[dict[str, Any]], predicted: list[int], scores: list[float] | None
) -> list[str]:
    """One log batch as the server writes it (with ``score``), or as older servers did."""
    start = clock.now() - timedelta(minutes=5 if scores is None else 4)
    prefix = "old" if scores is None else "new"
    ids = [f"{prefix}{i}" for i in range(len(inputs))]
    rows = [
        (
            pid,
            d.deployment,
            "churn",
            d.version,
            "primary",
            None,
            start + i * timedelta(milliseconds=10),
            2.0,
            json.dumps(record),
            json.dumps(pred),
            *(() if scores is None else (scores[i], None)),
        )
        for i, (pid, record, pred) in enumerate(zip(ids, inputs, predicted, strict=True))
    ]
    table = _to_table(rows)
    if scores is None:  # the Parquet schema before the score columns existed
        table = table.drop_columns(["score", "scores"])
    d.ws.deployments.service.write_log_batch(d.ws.ctx, d.deployment, f"{prefix}-b", table)
    return ids


def test_monitor_auc_uses_logged_scores_and_says_so(deployed: Deployed) -> None:
    ws = deployed.ws
    inputs, predicted, truth = traffic(deployed.model, 300, seed=11)
    X = np.array([[r[f] for f in FEATURES] for r in inputs])
    score = deployed.model.predict_proba(X)[:, 1].tolist()
    ws.monitors.create("m", reference="customers:1", deployment=deployed.deployment, min_labels=10)
    # an older log (no score columns) is read with null scores: the AUC falls back to labels
    old = _log(deployed, inputs[:100], predicted[:100], None)
    ws.monitors.ingest_labels(_labels(old, truth[:100]))
    mixed = ws.monitors.run("m").quality
    assert mixed is not None and mixed["labelled"] == 100
    assert mixed["auc_from"] == "labels" and "predicted labels" in mixed["auc_note"]
    assert mixed["overall"]["auc"] == pytest.approx(
        roc_auc_score(truth[:100], predicted[:100]), abs=1e-9
    )
    # new logs with scores; once only scored predictions are labelled, the AUC uses them
    new = _log(deployed, inputs[100:], predicted[100:], score[100:])
    logged = ws.deployments.read_predictions(deployed.deployment)
    assert logged.height == 300 and logged["score"].null_count() == 100
    ws.monitors.create(
        "scored",
        reference="customers:1",
        deployment=deployed.deployment,
        window="count:200",
        min_labels=10,
    )
    ws.monitors.ingest_labels(_labels(new, truth[100:]))
    report = ws.monitors.run("scored")
    quality = report.quality
    assert quality is not None and quality["labelled"] == 200
    assert quality["auc_from"] == "scores" and "auc_note" not in quality
    expected = roc_auc_score(truth[100:], score[100:])
    assert quality["overall"]["auc"] == pytest.approx(expected, abs=1e-9)
    assert quality["versions"][0]["auc_from"] == "scores"
    assert quality["versions"][0]["auc"] == pytest.approx(expected, abs=1e-9)
    assert "AUC from scores" in ws.monitors.html("scored")
    # the window over both logs: 100 labelled predictions lack a score → labels, said so
    both = ws.monitors.run("m").quality
    assert both is not None and both["labelled"] == 300 and both["auc_from"] == "labels"


def test_a_served_classifier_feeds_score_auc_end_to_end(deployed: Deployed) -> None:
    ws = deployed.ws
    ws.monitors.create("m", reference="customers:1", deployment=deployed.deployment, min_labels=10)
    inputs, _, truth = traffic(deployed.model, 120, seed=12)
    records = [{k: v for k, v in r.items() if k in FEATURES} for r in inputs]
    handle = start_in_thread(
        ws.deployments.server(ServeOptions(deployments=[deployed.deployment], analysis=None))
    )
    try:
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            body = client.post(f"/predict/{deployed.deployment}", json=records).json()
    finally:
        handle.stop()
    ids = body["prediction_ids"]
    ws.monitors.ingest_labels(_labels(ids, truth))
    logged = ws.deployments.read_predictions(deployed.deployment)
    by_id = dict(zip(logged["prediction_id"].to_list(), logged["score"].to_list(), strict=True))
    scores = [by_id[p] for p in ids]
    X = np.array([[r[f] for f in FEATURES] for r in records])
    assert scores == pytest.approx(deployed.model.predict_proba(X)[:, 1].tolist(), abs=1e-5)
    quality = ws.monitors.run("m").quality
    assert quality is not None and quality["auc_from"] == "scores"
    assert quality["overall"]["auc"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-9)
