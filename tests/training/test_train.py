"""Training steps end to end on bundled data: metrics checked against sklearn.metrics."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import math

import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn import metrics
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor

from keel.errors import InvalidInputError
from keel.training import (
    TrainingData,
    evaluate,
    slice_metrics,
    train_lightgbm,
    train_model,
    train_sklearn,
    train_xgboost,
)
from keel.workspace import Workspace


def test_sklearn_classifier_metrics_slices_curves_and_tracking(
    local_ws: Workspace, breast_cancer: TrainingData
) -> None:
    result = train_sklearn(
        local_ws,
        GradientBoostingClassifier(n_estimators=40),
        breast_cancer,
        experiment="bc",
        seed=3,
    )
    model, test = result.model, result.splits.test
    X, y = breast_cancer.X[test], breast_cancer.y[test]
    proba, pred = model.predict_proba(X), model.predict(X)
    expected = {
        "test.auc": metrics.roc_auc_score(y, proba[:, 1]),
        "test.f1": metrics.f1_score(y, pred),
        "test.precision": metrics.precision_score(y, pred),
        "test.recall": metrics.recall_score(y, pred),
        "test.log_loss": metrics.log_loss(y, proba),
        "test.accuracy": metrics.accuracy_score(y, pred),
    }
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, rel=1e-12), key
    # per slice of the declared sensitive attribute (mean radius, split at its median)
    assert breast_cancer.sensitive is not None
    groups = breast_cancer.sensitive[test]
    rates = {}
    for group in ("low", "high"):
        mask = groups == group
        key = f"test.slice.mean_radius.{group}"
        assert result.metrics[f"{key}.count"] == mask.sum()
        assert result.metrics[f"{key}.f1"] == pytest.approx(metrics.f1_score(y[mask], pred[mask]))
        rates[group] = float(np.mean(pred[mask] == 1))
        assert result.metrics[f"{key}.selection_rate"] == pytest.approx(rates[group])
    ratio = min(rates.values()) / max(rates.values())
    assert result.metrics["test.disparate_impact.mean_radius"] == pytest.approx(ratio)
    # everything is in the run
    run = local_ws.runs.get(result.run_id)
    assert run.params["model.n_estimators"] == "40"
    assert run.params["seed"] == "3"
    assert run.tags["keel.data.digest"] == breast_cancer.source.digest
    assert run.tags["keel.trainer"] == "sklearn"
    assert run.metrics["test.auc"] == pytest.approx(expected["test.auc"])
    curve = local_ws.runs.metric_history(result.run_id, "curve.valid.log_loss")
    assert [p.step for p in curve] == list(range(1, 41))
    assert curve[-1].value < curve[0].value  # boosting lowers the validation loss
    assert "keel/training.json" in {a.path for a in local_ws.runs.artifacts(result.run_id)}


def test_lightgbm_regressor_metrics_and_round_curves(
    local_ws: Workspace, diabetes: TrainingData
) -> None:
    estimator = lightgbm.LGBMRegressor(n_estimators=30, verbose=-1)
    result = train_lightgbm(local_ws, estimator, diabetes, register_as="diabetes-lgbm")
    X, y = diabetes.X[result.splits.test], diabetes.y[result.splits.test]
    pred = result.model.predict(X)
    assert result.metrics["test.rmse"] == pytest.approx(
        math.sqrt(metrics.mean_squared_error(y, pred))
    )
    assert result.metrics["test.mae"] == pytest.approx(metrics.mean_absolute_error(y, pred))
    assert result.metrics["test.r2"] == pytest.approx(metrics.r2_score(y, pred))
    history = local_ws.runs.metric_history(result.run_id, "curve.valid.l2")
    assert len(history) == 30
    assert result.version is not None
    assert result.version.format == "lightgbm-text"
    assert result.version.run_id == result.run_id
    loaded = local_ws.models.load("diabetes-lgbm")
    np.testing.assert_array_equal(loaded.predict(X), pred)


def test_xgboost_multiclass_one_vs_rest_auc(local_ws: Workspace, wine: TrainingData) -> None:
    result = train_xgboost(local_ws, xgboost.XGBClassifier(n_estimators=15), wine)
    X, y = wine.X[result.splits.test], wine.y[result.splits.test]
    proba = result.model.predict_proba(X).astype(np.float64)
    proba /= proba.sum(axis=1, keepdims=True)
    assert result.metrics["test.auc"] == pytest.approx(
        metrics.roc_auc_score(y, proba, multi_class="ovr")
    )
    assert result.metrics["test.f1"] == pytest.approx(
        metrics.f1_score(y, result.model.predict(X), average="macro")
    )
    assert len(local_ws.runs.metric_history(result.run_id, "curve.train.mlogloss")) == 15


def test_sklearn_regressor_has_no_curves_but_all_split_metrics(
    local_ws: Workspace, diabetes: TrainingData
) -> None:
    result = train_model(local_ws, RandomForestRegressor(n_estimators=10), diabetes, valid_size=0)
    assert {k.split(".")[0] for k in result.metrics} == {"train", "test"}
    assert not [k for k in local_ws.runs.get(result.run_id).metrics if k.startswith("curve.")]


def test_wrong_trainer_for_the_library_is_refused(local_ws: Workspace, wine: TrainingData) -> None:
    with pytest.raises(InvalidInputError, match="train_xgboost"):
        train_sklearn(local_ws, xgboost.XGBClassifier(), wine)


def test_slice_metrics_handle_single_class_slices() -> None:
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    slices = slice_metrics("classification", ["a", "a", "b", "b"], y, pred, proba, [0, 1])
    assert "auc" not in slices["a"]  # one class only: AUC is undefined, not invented
    assert slices["a"]["selection_rate"] == 0.5
    assert slices["b"]["selection_rate"] == 1.0
    assert evaluate("regression", [1.0, 2.0], [1.0, 2.0])["rmse"] == 0.0


def test_training_failure_marks_the_run_failed(local_ws: Workspace) -> None:
    bad = TrainingData.from_arrays(np.full((40, 2), np.nan), np.arange(40) % 2)
    with pytest.raises(ValueError, match="NaN"):
        train_model(local_ws, GradientBoostingClassifier(), bad, experiment="bad")
    runs = local_ws.runs.search(experiments=["bad"]).runs
    assert [r.status.value for r in runs] == ["FAILED"]
