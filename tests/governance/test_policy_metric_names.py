"""Model gates read the metrics ``train_model`` registers (``test.auc``, per-attribute ratios)."""

from __future__ import annotations

import math

import pytest

from keel.governance import PolicyDeniedError, evaluate, parse_policy
from keel.governance._gates import gate_metrics
from keel.governance._policy_rules import lookup
from keel.workspace import Workspace

QUALITY = """
name: quality
gates: [alias.promote]
rules:
  - id: auc
    require: {{path: model.metrics.auc, op: ">=", value: {auc}}}
  - id: disparate-impact
    require: {{path: model.metrics.disparate_impact, op: ">=", value: {di}}}
"""


def test_a_dotted_path_finds_keys_that_hold_dots() -> None:
    context = {"model": {"metrics": {"test.auc": 0.9, "test": {"f1": 0.5}}}}
    assert lookup(context, "model.metrics.test.auc") == (True, 0.9)
    assert lookup(context, "model.metrics.test.f1") == (True, 0.5)  # the nested key still
    assert lookup(context, "model.metrics.test.recall") == (False, None)
    assert lookup({"a.b": {"c": 1}, "a": {"b": {"d": 2}}}, "a.b.d") == (True, 2)


def test_gate_metrics_give_short_names_without_hiding_registered_ones() -> None:
    metrics = gate_metrics(
        {
            "test.auc": 0.91,
            "auc": 0.5,  # registered under the short name itself: it stands
            "test.f1": 0.8,
            "test.disparate_impact.gender": 0.85,
            "test.disparate_impact.age_band": 0.7,
        }
    )
    assert metrics["auc"] == 0.5 and metrics["f1"] == 0.8 and metrics["test.auc"] == 0.91
    assert metrics["disparate_impact.gender"] == 0.85
    assert metrics["disparate_impact"] == 0.7  # the lowest over the sensitive attributes
    nan = gate_metrics({"test.disparate_impact.a": math.nan, "test.disparate_impact.b": 0.9})
    assert math.isnan(nan["disparate_impact"])
    policy = parse_policy(QUALITY.format(auc=0.0, di=0.8))
    assert not evaluate([policy], "alias.promote", {"model": {"metrics": nan}}).allowed


def test_a_trained_models_scores_pass_and_fail_the_documented_rules(local_ws: Workspace) -> None:
    from sklearn.linear_model import LogisticRegression

    from keel.training import load_builtin, train_model

    data = load_builtin("breast_cancer", sensitive="mean radius")
    trained = train_model(
        local_ws, LogisticRegression(max_iter=5000), data, experiment="e", register_as="m"
    )
    assert trained.version is not None
    registered = trained.version.metrics
    assert "auc" not in registered and registered["test.auc"] > 0.9
    [ratio] = [v for k, v in registered.items() if k.startswith("test.disparate_impact.")]

    local_ws.policies.apply(QUALITY.format(auc=0.9, di=round(ratio - 0.01, 4)))
    local_ws.models.set_alias("m", "production", trained.version.version)
    assert local_ws.models.version("m@production").version == trained.version.version
    [decision] = local_ws.policies.decisions(gate="alias.promote", subject=None)[:1]
    assert decision.allowed
    assert decision.evidence["quality.auc"]["value"] == registered["test.auc"]

    local_ws.policies.apply(QUALITY.format(auc=0.9, di=round(ratio + 0.01, 4)))
    with pytest.raises(PolicyDeniedError, match="disparate-impact"):
        local_ws.models.set_alias("m", "staging", trained.version.version)
