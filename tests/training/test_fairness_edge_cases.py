"""The model-evaluation disparate-impact ratio on degenerate slices, and slice keys that
must not merge two groups."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from keel.training import TrainingData, disparate_impact, slice_metrics, train_sklearn
from keel.training._metrics import flatten_metrics
from keel.workspace import Workspace


def _rates(*values: float) -> dict[str, dict[str, float]]:
    return {f"g{i}": {"selection_rate": v, "count": 1.0} for i, v in enumerate(values)}


def test_disparate_impact_is_a_number_when_defined() -> None:
    assert disparate_impact(_rates(0.4, 0.5)) == pytest.approx(0.8)
    assert disparate_impact(_rates(0.0, 0.5)) == 0.0  # never selected vs selected: widest gap
    assert disparate_impact(_rates(0.3, 0.3, 0.3)) == 1.0


@pytest.mark.parametrize(
    "slices",
    [
        _rates(0.5),  # one group
        {"a": {"count": 3.0}, "b": {"count": 2.0}},  # no selection rate (multi-class)
        _rates(0.0, 0.0),  # nobody selected: nothing to compare
        _rates(-2.0, 1.0),  # a regressor's negative mean prediction is no rate
        _rates(-2.0, -1.0),
        _rates(float("nan"), 1.0),
        _rates(1.0, float("nan")),
        _rates(float("inf"), 1.0),
    ],
)
def test_disparate_impact_is_none_when_undefined(slices: dict[str, dict[str, float]]) -> None:
    assert disparate_impact(slices) is None
    flat = flatten_metrics("test", {"auc": 0.9}, attribute="g", slices=slices)
    assert not any(".disparate_impact." in key for key in flat)


def test_groups_whose_keys_collide_keep_slices_of_their_own() -> None:
    # Arabic names sanitise to nothing ("empty"), "a b" and "a_b" to the same key: before, the
    # second group overwrote the first and the ratio was computed on one group (None)
    groups = ["ذكر", "ذكر", "أنثى", "أنثى", "a b", "a_b", "plain"]
    truth = np.array([1, 0, 1, 0, 1, 1, 0])
    pred = np.array([1, 1, 0, 0, 1, 0, 1])
    slices = slice_metrics("classification", groups, truth, pred, None, [0, 1])
    assert len(slices) == 5 and "plain" in slices
    by_count = sorted((m["count"], m["selection_rate"]) for m in slices.values())
    assert by_count == [(1.0, 0.0), (1.0, 1.0), (1.0, 1.0), (2.0, 0.0), (2.0, 1.0)]
    empties = sorted(k for k in slices if k.startswith("empty_"))
    assert len(empties) == 2 and all(len(k) == len("empty_") + 8 for k in empties)
    assert len([k for k in slices if k.startswith("a_b_")]) == 2
    assert disparate_impact(slices) == 0.0
    again = slice_metrics("classification", groups, truth, pred, None, [0, 1])
    assert list(again) == list(slices)  # stable keys


def test_training_logs_a_slice_per_group_in_arabic(local_ws: Workspace) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    groups = np.where(X[:, 1] > 0, "ذكر", "أنثى")
    data = TrainingData.from_arrays(X, y, sensitive=groups, sensitive_name="gender")
    result = train_sklearn(local_ws, LogisticRegression(), data, experiment="fair", seed=1)
    counts = {k: v for k, v in result.metrics.items() if k.endswith(".count")}
    assert len(counts) == 2 and sum(counts.values()) == len(result.splits.test)
    assert "test.disparate_impact.gender" in result.metrics
