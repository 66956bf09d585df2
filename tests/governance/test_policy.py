"""Policy documents: parsing errors, rule kinds, scoping, the Rego backend, fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.errors import InvalidInputError
from keel.governance import evaluate, load_fixtures, parse_policy, run_fixtures
from keel.governance._policy_rules import policy_digest

EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"

MIN_AUC = """
name: quality
gates: [alias.promote, model.register]
rules:
  - id: auc
    require: {path: model.metrics.auc, op: ">=", value: 0.8}
"""


def test_example_policy_and_fixtures_agree() -> None:
    document = parse_policy((EXAMPLES / "production.yaml").read_text())
    assert document.name == "production" and len(document.rules) == 5
    results = run_fixtures([document], load_fixtures(EXAMPLES / "fixtures"))
    assert len(results) == 4 and all(r.passed for r in results), [r.problem for r in results]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("- a\n- b\n", "not a mapping"),
        ("name: x\n", "'rules' is missing"),
        ("name: x\nrules: [{id: a}]\n", "has 0 checks"),
        ("name: x\nrules: [{require: {path: a, value: 1}}]\n", "has no 'id'"),
        ("name: x\ngates: [model.deploy]\nrules: [{id: a, approvals: 1}]\n", "unknown gates"),
        ("name: x\nrules: [{id: a, require: {path: a, op: '=~', value: 1}}]\n", "op is one of"),
        ("name: x\nrules: [{id: a, residency: {allowed: ['Not A Region!']}}]\n", "Invalid region"),
        ("name: x\nrules: [{id: a, approvals: {min: 0}}]\n", "1 to 10"),
        ("name: x\nrules: [{id: a, approvals: 1}, {id: a, approvals: 2}]\n", "share an id"),
        ("name: x\nextra: 1\nrules: [{id: a, approvals: 1}]\n", "unknown keys"),
        ("name: ../etc\nrules: [{id: a, approvals: 1}]\n", "Invalid policy name"),
        ("name: x\nrules: [\n", "invalid YAML"),
        ("name: x\nbackend: rego\nrego: 'package keel\n deny contains x if {'\n", "does not"),
        ("name: x\nbackend: cue\n", "unknown backend"),
    ],
)
def test_bad_policies_say_what_is_wrong(source: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_policy(source, origin="p.yaml")


def test_missing_evidence_denies_and_gates_scope() -> None:
    policy = parse_policy(MIN_AUC)
    assert not evaluate([policy], "alias.promote", {"model": {"metrics": {}}}).allowed
    assert evaluate([policy], "alias.promote", {"model": {"metrics": {"auc": 0.8}}}).allowed
    assert evaluate([policy], "dataset.publish", {}).allowed  # not its gate
    nan = evaluate([policy], "alias.promote", {"model": {"metrics": {"auc": float("nan")}}})
    assert not nan.allowed
    text = evaluate([policy], "alias.promote", {"model": {"metrics": {"auc": "high"}}})
    assert not text.allowed


def test_operators() -> None:
    def check(op: str, value: object, actual: object) -> bool:
        source = f"name: t\nrules: [{{id: r, require: {{path: v, op: '{op}', value: {value}}}}}]"
        return evaluate([parse_policy(source)], "model.register", {"v": actual}).allowed

    assert check("==", "'a'", "a") and not check("!=", "'a'", "a")
    assert check("<", 1, 0.5) and check("<=", 1, 1) and check(">", 1, 2)
    assert check("in", "[a, b]", "b") and check("not_in", "[a, b]", "c")
    assert not check("in", "[a, b]", "c")


def test_only_approvals_missing_asks_for_approvals() -> None:
    policy = parse_policy((EXAMPLES / "production.yaml").read_text())
    context = {
        "alias": "production",
        "model": {"metrics": {"auc": 0.9, "disparate_impact": 0.9}, "features": ["a"]},
        "regions": {"storage": "ae"},
        "approvals": {"requester": "user:a", "approved_by": []},
    }
    result = evaluate([policy], "alias.promote", context)
    assert not result.allowed and result.approvals_needed == 1
    context["model"]["metrics"]["auc"] = 0.5  # type: ignore[index]
    worse = evaluate([policy], "alias.promote", context)
    assert not worse.allowed and worse.approvals_needed == 0


def test_restricted_columns_come_from_the_policy_and_the_context() -> None:
    policy = parse_policy("name: r\nrules: [{id: f, forbid_features: {columns: [Religion]}}]")
    assert not evaluate([policy], "model.register", {"model": {"features": ["religion"]}}).allowed
    assert evaluate([policy], "model.register", {"model": {"features": ["age"]}}).allowed
    classified = {"model": {"features": ["age"]}, "restricted_columns": ["age"]}
    assert not evaluate([policy], "model.register", classified).allowed


def test_rego_backend() -> None:
    source = """
name: rego-quality
backend: rego
gates: [alias.promote]
rego: |
  package keel
  import rego.v1
  deny contains msg if {
    input.model.metrics.auc < 0.8
    msg := sprintf("auc %v is below 0.8", [input.model.metrics.auc])
  }
"""
    policy = parse_policy(source)
    assert policy.backend == "rego"
    denied = evaluate([policy], "alias.promote", {"model": {"metrics": {"auc": 0.5}}})
    assert not denied.allowed and denied.reasons == ("rego-quality: auc 0.5 is below 0.8",)
    assert evaluate([policy], "alias.promote", {"model": {"metrics": {"auc": 0.9}}}).allowed


def test_digest_is_of_the_exact_text() -> None:
    assert policy_digest("a") != policy_digest("a ")
    assert policy_digest("a").startswith("sha256:") and len(policy_digest("a")) == 71


@given(auc=st.floats(min_value=0, max_value=1), threshold=st.floats(min_value=0, max_value=1))
def test_require_ge_matches_python(auc: float, threshold: float) -> None:
    policy = parse_policy(
        f"name: p\nrules: [{{id: r, require: {{path: m, op: '>=', value: {threshold!r}}}}}]"
    )
    assert evaluate([policy], "model.register", {"m": auc}).allowed == (auc >= threshold)
