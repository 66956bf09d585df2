"""Retraining policy: the pure margin rule (properties), and the orchestration on services."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.tree import DecisionTreeClassifier

from keel.errors import InvalidInputError
from keel.training import RetrainingPolicy, TrainingData, decide, retrain
from keel.workspace import Workspace

scores = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
margins = st.floats(min_value=0, max_value=1e3, allow_nan=False)


@given(challenger=scores, champion=scores, margin=margins, relative=st.booleans())
def test_registering_means_winning_by_the_margin(
    challenger: float, champion: float, margin: float, relative: bool
) -> None:
    policy = RetrainingPolicy("m", "dataset:x", metric="auc", margin=margin, relative=relative)
    decision = decide(policy, challenger=challenger, champion=champion)
    required = margin * abs(champion) if relative else margin
    assert decision.register == (challenger - champion > 0 and challenger - champion >= required)


@given(champion=scores, a=scores, b=scores, margin=margins)
def test_a_better_challenger_never_loses_where_a_worse_one_wins(
    champion: float, a: float, b: float, margin: float
) -> None:
    policy = RetrainingPolicy("m", "schedule:daily", metric="f1", margin=margin)
    worse, better = sorted((a, b))
    if decide(policy, challenger=worse, champion=champion).register:
        assert decide(policy, challenger=better, champion=champion).register


@given(challenger=scores, champion=scores, margin=margins)
def test_lower_is_better_metrics_mirror_higher_is_better(
    challenger: float, champion: float, margin: float
) -> None:
    rmse = RetrainingPolicy("m", "alert:drift", metric="rmse", margin=margin)
    auc = RetrainingPolicy("m", "alert:drift", metric="auc", margin=margin)
    assert (
        decide(rmse, challenger=challenger, champion=champion).register
        == decide(auc, challenger=-challenger, champion=-champion).register
    )


@given(challenger=scores)
def test_without_a_champion_any_finite_model_registers(challenger: float) -> None:
    policy = RetrainingPolicy("m", "dataset:x", margin=5.0)
    assert decide(policy, challenger=challenger, champion=None).register
    assert not decide(policy, challenger=math.nan, champion=None).register


def test_a_policy_checks_its_declaration() -> None:
    with pytest.raises(InvalidInputError, match="0 or more"):
        RetrainingPolicy("m", "dataset:x", margin=-0.1)
    with pytest.raises(InvalidInputError, match="names its trigger"):
        RetrainingPolicy("m", "")


def test_retraining_registers_a_challenger_only_when_it_wins(
    local_ws: Workspace, breast_cancer: TrainingData
) -> None:
    policy = RetrainingPolicy("bc", "dataset:breast_cancer", metric="auc", margin=0.01)
    weak = DecisionTreeClassifier(max_depth=1)
    first = retrain(local_ws, policy, weak, breast_cancer, cause="no champion yet")
    assert first.decision.register
    assert first.decision.champion is None
    assert first.version is not None
    assert local_ws.models.version("bc@challenger").version == first.version.version
    local_ws.models.set_alias("bc", "champion", first.version.version)
    # the same model again on the same data does not beat the champion by the margin
    again = retrain(local_ws, policy, weak, lambda: breast_cancer, cause="dataset v2")
    assert not again.decision.register
    assert again.decision.improvement == pytest.approx(0.0)
    assert again.version is None
    run = local_ws.runs.get(again.run_id)
    assert run.tags["keel.retrain.decision"] == "keep-champion"
    assert run.tags["keel.trigger"] == "dataset:breast_cancer"
    assert run.tags["keel.trigger.cause"] == "dataset v2"
    # a stronger model wins by more than the margin and becomes the challenger
    strong = GradientBoostingClassifier(n_estimators=50)
    better = retrain(local_ws, policy, strong, breast_cancer, cause="dataset v3")
    assert better.decision.register, better.decision.reason
    assert better.decision.improvement is not None and better.decision.improvement >= 0.01
    assert better.version is not None
    assert local_ws.models.version("bc@challenger").version == better.version.version
    assert local_ws.models.version("bc@champion").version == first.version.version
    assert better.version.tags["keel.stage"] == "challenger"
