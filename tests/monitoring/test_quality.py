"""Quality metrics equal scikit-learn's; latency summaries; server counters; rule logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn import metrics

from keel.errors import InvalidInputError
from keel.monitoring import classification_quality, metric_value, parse_duration, roc_auc
from keel.monitoring._quality import (
    infer_task,
    latency_summary,
    merge_counters,
    parse_prometheus,
    regression_quality,
)
from keel.monitoring._rules import check_metric, step, worst


def test_binary_classification_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 500).tolist()
    predicted = [t if rng.random() < 0.8 else 1 - t for t in truth]
    found = classification_quality(truth, predicted)
    assert found["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    assert found["f1"] == pytest.approx(metrics.f1_score(truth, predicted))
    assert found["auc"] == pytest.approx(metrics.roc_auc_score(truth, predicted))


def test_scores_give_auc_from_scores() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 400)
    scores = np.clip(truth * 0.3 + rng.random(400) * 0.7, 0, 1).round(3).tolist()
    found = classification_quality(truth.tolist(), scores)
    assert found["auc"] == pytest.approx(metrics.roc_auc_score(truth, scores))
    assert roc_auc([1, 1], [0.2, 0.3]) is None


def test_multiclass_uses_macro_f1_and_mixed_label_types_match() -> None:
    truth = ["a", "b", "c", "a", "b", "c"]
    predicted = ["a", "b", "b", "a", "c", "c"]
    found = classification_quality(truth, predicted)
    assert found["f1"] == pytest.approx(metrics.f1_score(truth, predicted, average="macro"))
    assert "auc" not in found
    # True is the class 1 (as scikit-learn counts it): booleans scored against 0/1 labels
    assert classification_quality([1, 0, 1], ["1", 0.0, True])["accuracy"] == 1.0
    assert classification_quality([1, 0, 1, 0], [True, False, "true", "False"])["accuracy"] == 1.0


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(size=300)
    predicted = truth + rng.normal(0, 0.3, size=300)
    found = regression_quality(truth.tolist(), predicted.tolist())
    assert found["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(truth, predicted)))
    assert found["mae"] == pytest.approx(metrics.mean_absolute_error(truth, predicted))
    assert regression_quality(["x"], ["y"]) == {}
    assert infer_task(truth.tolist()) == "regression"
    assert infer_task([0, 1, 1, 0]) == "classification"
    with pytest.raises(InvalidInputError):
        classification_quality([1], [1, 2])


def test_latency_per_version_and_variant_counts_requests_once() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "version": [1, 1, 1, 2],
            "variant": ["primary", "primary", "primary", "candidate"],
            "timestamp": [now, now, now + timedelta(seconds=1), now],
            "latency_ms": [4.0, 4.0, 8.0, 20.0],
        }
    )
    found = {(e["version"], e["variant"]): e for e in latency_summary(frame)}
    assert found[(1, "primary")]["requests"] == 2
    assert found[(1, "primary")]["predictions"] == 3
    assert found[(1, "primary")]["p50_ms"] == pytest.approx(6.0)
    assert found[(2, "candidate")]["p95_ms"] == pytest.approx(20.0)


METRICS_TEXT = """
# HELP keel_requests_total Inference requests served
keel_requests_total{model="churn-staging",variant="primary",version="1"} 90.0
keel_requests_total{model="churn-staging",variant="candidate",version="2"} 10.0
keel_requests_total{model="other",variant="primary",version="1"} 5.0
keel_request_errors_total{model="churn-staging",status="500",variant="candidate",version="2"} 10.0
"""


def test_server_counters_give_error_rates_since_the_last_report() -> None:
    counters = parse_prometheus(METRICS_TEXT, endpoint="churn-staging")
    assert counters[("1", "primary")] == {"requests": 90.0, "errors": 0.0}
    assert counters[("2", "candidate")] == {"requests": 10.0, "errors": 10.0}
    merged = {(str(e["version"]), e["variant"]): e for e in merge_counters([], counters)}
    assert merged[("2", "candidate")]["error_rate"] == pytest.approx(0.5)
    before = {"2/candidate": {"requests": 10.0, "errors": 0.0}}
    since = {(str(e["version"]), e["variant"]): e for e in merge_counters([], counters, before)}
    assert since[("2", "candidate")]["error_rate"] == pytest.approx(1.0)
    restarted = {"2/candidate": {"requests": 1000.0, "errors": 0.0}}
    again = {(str(e["version"]), e["variant"]): e for e in merge_counters([], counters, restarted)}
    assert again[("2", "candidate")]["error_rate"] == pytest.approx(0.5)


REPORT = {
    "rows": 100,
    "drift": {
        "share_drifted": 0.5,
        "features": [
            {"feature": "age", "status": "drift", "value": 0.4, "stats": {"ks": 0.2}},
            {"feature": "a.b", "status": "ok", "value": 0.01, "stats": {"ks": 0.01}},
            {"feature": "gone", "status": "missing_in_current", "value": None, "stats": {}},
        ],
        "prediction": {"value": 0.3, "stats": {"js": 0.1}},
    },
    "quality": {"coverage": 0.25, "overall": {"accuracy": 0.8}},
    "latency": [{"p95_ms": 4.0, "error_rate": 0.1}, {"p95_ms": 9.0, "error_rate": 0.0}],
}


@pytest.mark.parametrize(
    ("metric", "value"),
    [
        ("rows", 100.0),
        ("drift.share", 0.5),
        ("drift.max", 0.4),
        ("drift.age", 0.4),
        ("drift.age.ks", 0.2),
        ("drift.a.b", 0.01),
        ("drift.gone", None),
        ("prediction.drift", 0.3),
        ("prediction.js", 0.1),
        ("quality.accuracy", 0.8),
        ("quality.auc", None),
        ("quality.coverage", 0.25),
        ("latency.p95_ms", 9.0),
        ("errors.rate", 0.1),
    ],
)
def test_metric_values_are_read_from_a_report(metric: str, value: float | None) -> None:
    check_metric(metric)
    assert metric_value(REPORT, metric) == value


def test_rule_definitions_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="Unknown alert metric"):
        check_metric("quality.bogus")
    assert parse_duration("15m") == 900.0
    assert parse_duration(30) == 30.0
    with pytest.raises(InvalidInputError):
        parse_duration("soon")
    assert worst([1.0, None, 3.0], ">") == 3.0
    assert worst([1.0, None, 3.0], "<=") == 1.0
    assert worst([None], ">") is None


def test_alert_state_steps() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    kw = {"comparison": ">", "threshold": 1.0, "now": now}
    assert step(None, value=2.0, started_at=None, for_seconds=0, **kw) == "fire"  # type: ignore[arg-type]
    assert step(None, value=2.0, started_at=None, for_seconds=60, **kw) == "pending"  # type: ignore[arg-type]
    early = now - timedelta(seconds=30)
    assert step("pending", value=2.0, started_at=early, for_seconds=60, **kw) == "update"  # type: ignore[arg-type]
    late = now - timedelta(seconds=61)
    assert step("pending", value=2.0, started_at=late, for_seconds=60, **kw) == "fire"  # type: ignore[arg-type]
    assert step("pending", value=0.5, started_at=late, for_seconds=60, **kw) == "clear"  # type: ignore[arg-type]
    assert step("firing", value=2.0, started_at=late, for_seconds=0, **kw) == "update"  # type: ignore[arg-type]
    assert step("firing", value=0.5, started_at=late, for_seconds=0, **kw) == "resolve"  # type: ignore[arg-type]
    assert step("firing", value=None, started_at=late, for_seconds=0, **kw) == "none"  # type: ignore[arg-type]
    assert step(None, value=0.5, started_at=None, for_seconds=0, **kw) == "none"  # type: ignore[arg-type]
