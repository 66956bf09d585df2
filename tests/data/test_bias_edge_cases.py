"""Bias checks on degenerate data: a privileged group never selected, groups with no known
label, NaN and null labels, a positive value the label never takes, a single group, and
bias parameters that would make a check unable to fail or crash on every frame."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from keel.data._bias import GroupRates, group_rates, group_shares
from keel.data._checks import CheckResult, parse_suite, run_suite
from keel.errors import InvalidInputError
from keel.settings import Settings
from keel.workspace import Workspace, connect

IMPACT = {"kind": "disparate_impact", "column": "gender", "label": "approved"}
PARITY = {"kind": "positive_rate_parity", "column": "gender", "label": "approved"}


@pytest.fixture
def w(tmp_path: Path) -> Iterator[Workspace]:
    with connect(settings=Settings(home=tmp_path / "home"), principal="user:me") as ws:
        yield ws


def _one(frame: pl.DataFrame, check: dict[str, Any]) -> CheckResult:
    return run_suite(frame, parse_suite([check])).checks[0]


def _frame(groups: dict[str, list[Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "gender": [g for g, labels in groups.items() for _ in labels],
            "approved": [v for labels in groups.values() for v in labels],
        }
    )


# --- the privileged (reference) group's rate is 0 ------------------------------------------


def test_a_privileged_group_never_selected_while_others_are_fails(w: Workspace) -> None:
    # the reported defect: m's rate 0, f's 50% gave an infinite ratio that passed (observed None)
    frame = _frame({"m": [0, 0, 0, 0], "f": [1, 0, 1, 0]})
    w.datasets.ingest("loans", frame)
    report = w.datasets.validate("loans", [{**IMPACT, "privileged": "m", "threshold": 0.8}])
    check = report.result["checks"][0]
    assert not report.passed and not check["passed"]
    assert check["observed"] == 0.0
    message = check["message"]
    assert "privileged group 'm' divides by its positive rate, 0" in message
    assert "none of its 4 rows is positive" in message and "'f' has 50.00%" in message
    assert "least favoured" in message and len(message) < 400
    assert w.datasets.report_html(report.id)


def test_a_privileged_group_at_zero_fails_also_when_another_group_is_at_zero() -> None:
    # 0/0 for x, 0.5/0 for f: the old code took the lowest (0) and returned a ratio of 1.0
    frame = _frame({"m": [0, 0], "f": [1, 0], "x": [0, 0]})
    check = _one(frame, {**IMPACT, "privileged": "m"})
    assert not check.passed and check.observed == 0.0
    assert "'f' has 50.00%" in check.message


def test_a_privileged_group_with_a_rate_stays_measured_as_before() -> None:
    frame = _frame({"m": [1, 1, 0, 0], "f": [1, 0, 0, 0]})
    check = _one(frame, {**IMPACT, "privileged": "m"})
    assert not check.passed and check.observed == 0.5
    # Two-sided: the others favoured over the privileged group by as much fails the same way
    # (m 25%, f 50% is 0.5, as m 50%, f 25% is), and names who is favoured.
    favoured = _one(_frame({"m": [1, 0, 0, 0], "f": [1, 0]}), {**IMPACT, "privileged": "m"})
    assert not favoured.passed and favoured.observed == 0.5
    assert "between the privileged group 'm' and 'f'" in favoured.message
    assert "('f' favoured)" in favoured.message and "within 0.8-1.25 times" in favoured.message
    close = _one(
        _frame({"m": [1, 0, 0, 0, 0], "f": [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]}),
        {**IMPACT, "privileged": "m"},
    )
    assert close.passed and close.observed == 1.0


def test_impact_ratio_names_its_degenerate_cases() -> None:
    rates = GroupRates({"f": 0.5, "m": 0.0}, {"f": 2, "m": 3})
    assert rates.impact_ratio() == 0.0  # lowest over highest: a real 0
    assert rates.impact_ratio("m") == rates.impact_ratio("f") == 0.0  # two-sided, never inf
    three = GroupRates({"m": 0.5, "f": 0.25, "x": 0.75}, {"m": 4, "f": 4, "x": 4})
    assert three.impact_ratio("m") == 0.5 and three.most_unequal("m") == "f"
    assert GroupRates({"m": 0.4, "x": 0.6}, {"m": 5, "x": 5}).impact_ratio("x") == 0.4 / 0.6
    with pytest.raises(InvalidInputError, match="'z' is not among the groups measured"):
        rates.impact_ratio("z")
    zeros = GroupRates({"f": 0.0, "m": 0.0}, {"f": 2, "m": 2})
    assert zeros.impact_ratio() == zeros.impact_ratio("m") == 1.0  # equal rates
    assert GroupRates({"f": 0.3}, {"f": 3}).impact_ratio() == 1.0


# --- labels: null, NaN, a positive that never occurs, the wrong type -------------------------


def test_null_and_nan_labels_are_left_out_of_the_rates() -> None:
    # m: one positive of two known labels (50%), not one of four (25%)
    frame = pl.DataFrame(
        {
            "gender": ["m"] * 4 + ["f"] * 2,
            "approved": [1.0, 0.0, None, float("nan"), 1.0, 0.0],
        }
    )
    rates = group_rates(frame, "gender", "approved", 1)
    assert rates.rates == {"f": 0.5, "m": 0.5}
    assert rates.counts == {"f": 2, "m": 2} and rates.unlabelled == 2
    check = _one(frame, IMPACT)
    assert check.passed and check.observed == 1.0


def test_a_group_whose_labels_are_all_null_is_not_a_rate_of_zero() -> None:
    frame = pl.DataFrame(
        {"gender": ["m", "m", "f", "f"], "approved": pl.Series([None, None, 1, 0], dtype=pl.Int64)}
    )
    assert group_rates(frame, "gender", "approved", 1).rates == {"f": 0.5}
    for spec in (IMPACT, PARITY):
        check = _one(frame, spec)
        assert not check.passed and check.observed is None
        assert "Fewer than two groups of gender" in check.message
    # before, m counted as 0% and the parity check reported a 50-point gap it had not measured


def test_a_label_that_is_null_everywhere_fails_with_the_reason() -> None:
    frame = pl.DataFrame({"gender": ["m", "f"], "approved": [float("nan"), None]})
    check = _one(frame, IMPACT)
    assert not check.passed and check.observed is None
    assert "Every value of approved is null or NaN (2 rows)" in check.message


def test_a_positive_value_the_label_never_takes_names_the_values_it_does() -> None:
    frame = _frame({"m": [0, 2, 0], "f": [2, 2, 0]})
    for spec in (IMPACT, PARITY):
        check = _one(frame, spec)
        assert not check.passed and check.observed is None
        assert "No row has the positive label (approved = 1)" in check.message
        assert "the label holds 0, 2: set 'positive'" in check.message
    many = pl.DataFrame({"gender": ["m", "f"] * 10, "approved": [f"v{i}" for i in range(20)]})
    check = _one(many, {**IMPACT, "positive": "yes"})
    assert "the label holds 'v0', 'v1', 'v2', 'v3', 'v4' and 15 more:" in check.message


def test_a_boolean_label_with_a_positive_string_names_its_values() -> None:
    frame = _frame({"m": [True, False], "f": [True, True]})
    check = _one(frame, {**IMPACT, "positive": "yes"})
    assert not check.passed and "the label holds True, False" in check.message
    assert _one(frame, {**IMPACT, "positive": True}).observed == 0.5


def test_a_label_of_the_wrong_type_says_which_values_it_holds() -> None:
    frame = _frame({"m": ["1", "0"], "f": ["1", "1"]})
    check = _one(frame, IMPACT)
    assert not check.passed and check.observed is None
    assert "positive label 1 cannot be compared with approved (String)" in check.message
    assert "the label holds '1', '0'" in check.message


def test_min_count_counts_rows_with_a_known_label() -> None:
    frame = pl.DataFrame(
        {"gender": ["m"] * 3 + ["f"] * 2, "approved": [1, None, None, 1, 0]},
        schema={"gender": pl.String, "approved": pl.Int64},
    )
    assert group_rates(frame, "gender", "approved", 1, min_count=2).rates == {"f": 0.5}


def test_no_rows_is_no_groups_not_an_error() -> None:
    empty = pl.DataFrame(schema={"gender": pl.String, "approved": pl.Int64})
    assert group_rates(empty, "gender", "approved", 1).rates == {}
    assert group_shares(empty, "gender") == {}


# --- representation -------------------------------------------------------------------------


def test_representation_of_a_single_group_fails_with_the_reason() -> None:
    one = pl.DataFrame({"gender": ["f"] * 5})
    check = _one(one, {"kind": "representation", "column": "gender"})
    assert not check.passed and check.observed is None
    assert "Every value of gender is 'f' (5 rows)" in check.message
    nulls = pl.DataFrame({"gender": pl.Series([None] * 3, dtype=pl.String)})
    check = _one(nulls, {"kind": "representation", "column": "gender"})
    assert not check.passed and "Every value of gender is null (3 rows)" in check.message
    two = pl.DataFrame({"gender": ["f", "f", None]})  # null is a group of its own
    assert _one(two, {"kind": "representation", "column": "gender"}).observed == 0.333333


# --- parameters that would make a check unable to fail, or crash --------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**IMPACT, "threshold": 80}, "'threshold' must be a number between 0 and 1; got 80"),
        ({**IMPACT, "threshold": -1}, "'threshold' must be a number between 0 and 1"),
        ({**IMPACT, "threshold": None}, "'threshold' must be a number between 0 and 1"),
        ({**PARITY, "max_difference": 5}, "'max_difference' must be a number between 0 and 1"),
        (
            {"kind": "representation", "column": "g", "min_share": -0.1},
            "'min_share' must be a number between 0 and 1",
        ),
        ({**IMPACT, "min_count": 0}, "'min_count' must be a whole number of rows, at least 1"),
        ({**IMPACT, "min_count": "x"}, "'min_count' must be a whole number of rows"),
        ({**IMPACT, "min_count": True}, "'min_count' must be a whole number of rows"),
        ({**IMPACT, "label": 5}, "'label' must be the label column's name; got 5"),
        ({**PARITY, "label": ["a"]}, "'label' must be the label column's name"),
        ({**IMPACT, "label": "gender"}, "'label' and 'column' both name 'gender'"),
        ({**IMPACT, "positive": None}, "'positive' must be one value of the label"),
        ({**IMPACT, "positive": [1, 2]}, "'positive' must be one value of the label"),
        ({**IMPACT, "positive": float("nan")}, "'positive' must be one value of the label"),
        ({**IMPACT, "privileged": {"a": 1}}, "'privileged' must be one value of the column"),
        ({"kind": "representation", "column": None}, "'column' must be a column name"),
        ({"kind": "not_null", "column": ""}, "'column' must be a column name"),
    ],
)
def test_bias_parameters_are_checked_when_the_suite_is_parsed(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_suite([spec])
    assert "Check #1" in str(caught.value) and message in str(caught.value)


def test_accepted_bias_parameters_round_trip() -> None:
    suite = parse_suite(
        [
            {**IMPACT, "privileged": "m", "threshold": 1, "min_count": 3, "positive": "yes"},
            {**PARITY, "max_difference": 0, "positive": True},
            {"kind": "representation", "column": "gender", "min_share": 0.25},
        ]
    )
    impact, parity, representation = suite.to_list()
    assert impact["privileged"] == "m" and impact["min_count"] == 3
    assert parity["positive"] is True and parity["max_difference"] == 0
    assert representation["min_share"] == 0.25
