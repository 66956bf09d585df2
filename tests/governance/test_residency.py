"""Residency: the pure check, and the policy rule that uses it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.errors import InvalidInputError
from keel.governance import check_residency, evaluate, parse_policy
from keel.governance._residency import normalise_region

REGIONS = st.sampled_from(["ae", "sa", "eu-west-1", "us-east-1", "in"])


def test_unrestricted_data_goes_anywhere() -> None:
    result = check_residency(destinations={"target": "us-east-1"})
    assert result.allowed and result.allowed_regions is None


def test_every_restriction_must_hold() -> None:
    result = check_residency(
        destinations={"storage": "ae", "target": "eu-west-1"},
        data_allowed=[["ae", "eu-west-1"], ["ae"]],
    )
    assert not result.allowed
    assert result.violations == ("target in 'eu-west-1'",)
    assert result.allowed_regions == ("ae",)


def test_unknown_destination_region_is_a_violation_when_restricted() -> None:
    result = check_residency(destinations={"target": None}, policy_allowed=["ae"])
    assert not result.allowed and result.violations == ("target region unknown",)


def test_region_codes_are_checked() -> None:
    assert normalise_region(" AE ") == "ae"
    for bad in ("", "a b", "../x", 3, "x" * 40):
        with pytest.raises(InvalidInputError):
            normalise_region(bad)


@given(
    destinations=st.dictionaries(st.sampled_from(["storage", "target"]), REGIONS, min_size=1),
    allowed=st.lists(st.lists(REGIONS, min_size=1), max_size=3),
)
def test_allowed_iff_every_destination_in_every_set(
    destinations: dict[str, str], allowed: list[list[str]]
) -> None:
    result = check_residency(destinations=destinations, data_allowed=allowed)
    expected = all(all(r in set(a) for a in allowed) for r in destinations.values())
    assert result.allowed == expected


def test_policy_rule_denies_copies_and_deployments_outside_the_data_regions() -> None:
    policy = parse_policy(
        "name: uae\ngates: [data.copy, deployment.create]\n"
        "rules: [{id: uae-only, residency: {allowed: [ae, sa]}}]"
    )
    inside = {"regions": {"target": "ae", "data_allowed": [["ae"]]}}
    assert evaluate([policy], "deployment.create", inside).allowed
    copy = {"regions": {"target": "sa", "data_allowed": [["ae"]]}}
    denied = evaluate([policy], "data.copy", copy)
    assert not denied.allowed and "target in 'sa'" in denied.reasons[0]
    assert not evaluate([policy], "data.copy", {}).allowed  # nowhere known: deny


def test_gate_contexts_for_publish_copy_and_deploy() -> None:
    from keel.governance import dataset_context, deployment_context

    policy = parse_policy(
        "name: uae\ngates: [dataset.publish, data.copy, deployment.create]\nrules:\n"
        "  - {id: uae-only, residency: {allowed: [ae]}}\n"
        "  - {id: no-pii-features, gates: [deployment.create], "
        "forbid_features: {columns: [email]}}\n"
    )
    publish = dataset_context(
        name="customers",
        version=2,
        columns=["id", "email"],
        region="ae",
        allowed_regions=["ae"],
        restricted_columns=["email"],
    )
    assert evaluate([policy], "dataset.publish", publish).allowed
    copy = dataset_context(
        name="customers",
        version=2,
        columns=[],
        region="ae",
        allowed_regions=["ae"],
        target_region="eu-west-1",
    )
    assert not evaluate([policy], "data.copy", copy).allowed
    deploy = deployment_context(
        model={"name": "churn", "features": ["tenure"]},
        target="dubai",
        target_region="ae",
        data_allowed=[["ae"]],
    )
    assert evaluate([policy], "deployment.create", deploy).allowed
    abroad = deployment_context(
        model={"name": "churn", "features": ["email"]}, target="virginia", target_region="us"
    )
    result = evaluate([policy], "deployment.create", abroad)
    assert not result.allowed and len(result.reasons) == 2
