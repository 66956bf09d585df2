"""How a bias check reports through ``ws.datasets.validate``: degenerate data fails as a
measurement (threshold, rates and counts shown), the privileged group is matched by value in
the column's type and explained when it has no rate, group names are bounded, the null group
cannot be confused with a text ``"(null)"``, and a report shows no row of the data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from keel.settings import Settings
from keel.workspace import Workspace, connect

IMPACT = {"kind": "disparate_impact", "column": "gender", "label": "approved"}
PARITY = {"kind": "positive_rate_parity", "column": "gender", "label": "approved"}
SHARE = {"kind": "representation", "column": "gender"}
CANNOT_RUN = "cannot run"


@pytest.fixture
def w(tmp_path: Path) -> Iterator[Workspace]:
    with connect(settings=Settings(home=tmp_path / "home"), principal="user:me") as ws:
        yield ws


def _checks(w: Workspace, frame: pl.DataFrame, suite: list[dict[str, Any]]) -> list[dict[str, Any]]:
    w.datasets.ingest("loans", frame)
    report = w.datasets.validate("loans", suite)
    checks: list[dict[str, Any]] = report.result["checks"]
    assert len(checks) == len(suite)
    return checks


def _frame(groups: dict[Any, list[Any]], dtype: Any = None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "gender": pl.Series([g for g, labels in groups.items() for _ in labels], dtype=dtype),
            "approved": [v for labels in groups.values() for v in labels],
        }
    )


# --- 1. degenerate data fails as a measurement: threshold, rates and counts shown -----------


def test_a_privileged_group_never_selected_is_a_measured_total_disparity(w: Workspace) -> None:
    frame = _frame({"m": [0, 0, 0, 0], "f": [1, 0, 1, 0]})
    [check] = _checks(w, frame, [{**IMPACT, "privileged": "m", "threshold": 0.8}])
    assert not check["passed"]
    assert check["observed"] == 0.0 and check["threshold"] == 0.8
    details = check["details"]
    assert details["rates"] == {"f": 0.5, "m": 0.0}
    assert details["counts"] == {"f": 4, "m": 4}
    assert details["measure"] == "lowest rate over the highest"
    assert details["least_favoured"] == "m" and details["most_favoured"] == "f"
    message = check["message"]
    assert CANNOT_RUN not in message
    assert "none of its 4 rows is positive" in message and "'f' has 50.00%" in message
    assert "reported as 0.000, the lowest rate over the highest" in message
    assert "(at least 0.8 required)" in message


def test_a_label_null_everywhere_shows_the_groups_and_the_threshold(w: Workspace) -> None:
    frame = pl.DataFrame(
        {"gender": ["m", "m", "f"], "approved": pl.Series([None] * 3, dtype=pl.Int64)}
    )
    impact, parity = _checks(w, frame, [IMPACT, {**PARITY, "max_difference": 0.2}])
    for check, limit in ((impact, 0.8), (parity, 0.2)):
        assert not check["passed"] and check["observed"] is None
        assert check["threshold"] == limit
        assert check["message"].startswith("Every value of approved is null (3 rows)")
        details = check["details"]
        assert details["unlabelled"] == 3 and details["rates"] == {}
        assert details["left_out"] == {
            "f": {"rows": 1, "labelled": 0},
            "m": {"rows": 2, "labelled": 0},
        }


def test_a_positive_value_never_taken_shows_the_rates_measured(w: Workspace) -> None:
    frame = _frame({"m": [0, 2, 0], "f": [2, 0]})
    [check] = _checks(w, frame, [{**PARITY, "max_difference": 0.05}])
    assert not check["passed"] and check["observed"] is None
    assert check["threshold"] == 0.05
    assert check["details"]["rates"] == {"f": 0.0, "m": 0.0}
    assert check["details"]["counts"] == {"f": 2, "m": 3}
    assert check["message"].startswith("No row has the positive label (approved = 1)")
    assert CANNOT_RUN not in check["message"]


def test_a_single_group_shows_its_share_and_the_threshold(w: Workspace) -> None:
    frame = pl.DataFrame({"gender": ["f"] * 5})
    [check] = _checks(w, frame, [{**SHARE, "min_share": 0.2}])
    assert not check["passed"] and check["observed"] is None
    assert check["threshold"] == 0.2
    assert check["details"] == {"shares": {"f": 1.0}, "counts": {"f": 5}, "groups": 1}
    assert check["message"].startswith("Every value of gender is 'f' (5 rows): one group holds")


def test_a_label_of_another_type_still_shows_the_threshold(w: Workspace) -> None:
    frame = _frame({"m": ["1", "0"], "f": ["1", "1"]})
    [check] = _checks(w, frame, [{**IMPACT, "threshold": 0.9}])
    assert not check["passed"] and check["threshold"] == 0.9
    assert check["message"].startswith("The positive label 1 cannot be compared with approved")


def test_a_list_attribute_fails_with_the_reason_and_the_threshold(w: Workspace) -> None:
    frame = pl.DataFrame({"gender": [["f"], ["m"]], "approved": [1, 0]})
    impact, share = _checks(w, frame, [IMPACT, {**SHARE, "min_share": 0.3}])
    for check, limit in ((impact, 0.8), (share, 0.3)):
        assert not check["passed"] and check["threshold"] == limit
        assert check["message"].startswith("gender is List(String): a bias check groups")


def test_positives_only_in_groups_left_out_say_so(w: Workspace) -> None:
    frame = _frame({"a": [1], "b": [0, 0], "c": [0, 0]})
    [check] = _checks(w, frame, [{**PARITY, "min_count": 2}])
    assert not check["passed"] and check["observed"] is None and check["threshold"] == 0.1
    assert check["message"].startswith(
        "No row of the groups measured has the positive label (approved = 1): every rate is 0"
    )
    assert "left out: 'a' (1 labelled row, under min_count 2)" in check["message"]
    assert check["details"]["rates"] == {"b": 0.0, "c": 0.0}


# --- 2. a privileged group without a rate says why, and which groups there are -------------


def test_a_privileged_group_left_out_by_min_count_says_so(w: Workspace) -> None:
    frame = _frame({"m": [1], "f": [1, 0, 1], "x": [0, 1, 1]})
    [check] = _checks(w, frame, [{**IMPACT, "privileged": "m", "min_count": 2}])
    assert not check["passed"] and check["observed"] is None and check["threshold"] == 0.8
    message = check["message"]
    assert "has no rows" not in message
    assert "'m' has only 1 row with a known label, fewer than min_count 2" in message
    assert "(groups measured: 'f', 'x'); lower 'min_count'" in message
    assert check["details"]["left_out"] == {"m": {"rows": 1, "labelled": 1}}


def test_a_privileged_group_whose_labels_are_all_null_says_so(w: Workspace) -> None:
    frame = pl.DataFrame(
        {"gender": ["m", "m", "f", "f", "x"], "approved": [None, None, 1, 0, 1]},
        schema={"gender": pl.String, "approved": pl.Int64},
    )
    [check] = _checks(w, frame, [{**IMPACT, "privileged": "m"}])
    assert not check["passed"] and check["observed"] is None
    message = check["message"]
    assert "'m' has 2 rows in gender but every one has a null label (approved)" in message
    assert "(groups measured: 'f', 'x')" in message
    assert check["details"]["unlabelled"] == 2


def test_a_privileged_group_not_in_the_data_lists_the_groups_there_are(w: Workspace) -> None:
    groups = {f"g{i}": [1, 0] for i in range(8)}
    [check] = _checks(w, _frame(groups), [{**IMPACT, "privileged": "z"}])
    assert not check["passed"] and check["threshold"] == 0.8
    assert check["message"] == (
        "The privileged group 'z' has no rows in gender (its groups: 'g0', 'g1', 'g2', 'g3', "
        "'g4' and 3 more); set 'privileged' to one of them."
    )


# --- 3. the privileged group is matched by value, in the column's type ----------------------


@pytest.mark.parametrize(
    ("groups", "dtype", "privileged", "named"),
    [
        ({1: [1, 1], 2: [1, 0]}, pl.Int64, 1, "1"),
        ({1: [1, 1], 2: [1, 0]}, pl.Int64, "1", "1"),
        ({1: [1, 1], 2: [1, 0]}, pl.Int64, 1.0, "1"),
        ({1.0: [1, 1], 2.5: [1, 0]}, pl.Float64, 1, "1.0"),
        ({1.0: [1, 1], 2.5: [1, 0]}, pl.Float64, "1", "1.0"),
        ({True: [1, 1], False: [1, 0]}, pl.Boolean, True, "True"),
        ({True: [1, 1], False: [1, 0]}, pl.Boolean, "true", "True"),
        ({"true": [1, 1], "false": [1, 0]}, pl.String, True, "true"),
        ({date(2024, 1, 1): [1, 1], date(2024, 2, 1): [1, 0]}, pl.Date, "2024-01-01", "2024-01-01"),
        (
            {datetime(2024, 1, 1): [1, 1], datetime(2024, 2, 1): [1, 0]},
            pl.Datetime("us"),
            "2024-01-01",
            "2024-01-01T00:00:00",
        ),
        (
            {
                datetime(2024, 1, 1, tzinfo=UTC): [1, 1],
                datetime(2024, 2, 1, tzinfo=UTC): [1, 0],
            },
            pl.Datetime("us", "UTC"),
            "2024-01-01T04:00:00+04:00",
            "2024-01-01T00:00:00+00:00",
        ),
    ],
)
def test_the_privileged_group_is_matched_by_value(
    w: Workspace, groups: dict[Any, list[int]], dtype: Any, privileged: Any, named: str
) -> None:
    [check] = _checks(w, _frame(groups, dtype), [{**IMPACT, "privileged": privileged}])
    assert check["observed"] == 0.5, check["message"]
    assert check["details"]["privileged"] == named


def test_a_yaml_suite_matches_dates_and_booleans_by_value(w: Workspace) -> None:
    suite = yaml.safe_load(
        "- {kind: disparate_impact, column: d, label: approved, privileged: 2024-01-01}\n"
        "- {kind: disparate_impact, column: b, label: approved, privileged: true}\n"
        "- {kind: disparate_impact, column: x, label: approved, privileged: 1}\n"
    )
    frame = pl.DataFrame(
        {
            "d": [date(2024, 1, 1)] * 2 + [date(2024, 1, 2)] * 2,
            "b": [True, True, False, False],
            "x": [1.0, 1.0, 2.0, 2.0],
            "approved": [1, 1, 1, 0],
        }
    )
    for check in _checks(w, frame, suite):
        assert check["observed"] == 0.5, check["message"]


def test_a_privileged_value_of_another_number_matches_no_group(w: Workspace) -> None:
    frame = _frame({1: [1, 1], 2: [1, 0]}, pl.Int64)
    [check] = _checks(w, frame, [{**IMPACT, "privileged": 1.5}])
    assert not check["passed"] and check["observed"] is None
    assert "'privileged' group 1.5" not in check["message"]
    assert "The privileged group 1.5 has no rows in gender (its groups: 1, 2)" in check["message"]


# --- 4. group names and the number of groups are bounded --------------------------------------


def test_long_group_names_are_cut_in_messages_and_details(w: Workspace) -> None:
    long = [f"{i}" + "x" * 500 for i in range(3)]
    frame = pl.DataFrame({"gender": [long[0]] * 97 + [long[1]] * 2 + [long[2]], "approved": 1})
    share, impact = _checks(w, frame, [{**SHARE, "min_share": 0.1}, IMPACT])
    assert not share["passed"]
    # the least represented first: '2xxx…' (1 row) before '1xxx…' (2 rows)
    assert share["message"].startswith("Groups of gender under 10.0% of the rows: '2xxx")
    assert len(share["message"]) < 200
    assert all(len(name) <= 40 for name in share["details"]["shares"])
    assert len(share["details"]["shares"]) == 3  # cut names stay distinct
    assert len(impact["message"]) < 300 and all(len(n) <= 40 for n in impact["details"]["rates"])


def test_names_that_read_the_same_once_cut_stay_distinct(w: Workspace) -> None:
    same = ["y" * 60 + "a", "y" * 60 + "b"]
    frame = pl.DataFrame({"gender": same * 2, "approved": [1, 1, 1, 0]})
    [check] = _checks(w, frame, [{**PARITY, "max_difference": 0.9}])
    assert check["passed"] and check["observed"] == 0.5
    assert sorted(check["details"]["rates"].values()) == [0.5, 1.0]
    assert sorted(check["details"]["rates"]) == ["y" * 39 + "…", "y" * 35 + "… #2"]


def test_many_groups_are_capped_in_details_and_listed_briefly(w: Workspace) -> None:
    groups = {f"g{i:03}": [1] * (i + 1) for i in range(120)}
    share, impact = _checks(w, _frame(groups), [{**SHARE, "min_share": 0.5}, IMPACT])
    assert not share["passed"] and len(share["details"]["shares"]) == 10
    assert share["details"]["groups"] == 120 and share["details"]["unlisted"] == 110
    assert share["message"].endswith("and 115 more.")
    assert impact["details"]["groups"] == 120 and len(impact["details"]["counts"]) == 10
    assert "and 115 more" in impact["message"] and len(impact["message"]) < 300


# --- 5. the null group and a text "(null)" are two groups -------------------------------------


def test_a_text_null_is_not_the_null_group(w: Workspace) -> None:
    frame = pl.DataFrame(
        {"gender": ["(null)", "(null)", None, None, None, "a"], "approved": [1, 0, 1, 1, 1, 0]}
    )
    share, impact, privileged = _checks(
        w,
        frame,
        [
            {**SHARE, "min_share": 0.2},
            {**IMPACT, "threshold": 0.1},
            {**IMPACT, "privileged": "(null)", "threshold": 0.1, "name": "text"},
        ],
    )
    assert share["details"]["shares"] == pytest.approx(
        {"(null)": 0.5, "'(null)'": 1 / 3, "a": 1 / 6}
    )
    assert share["message"] == "Groups of gender under 20.0% of the rows: 'a' (16.67%)."
    assert impact["details"]["rates"] == {"'(null)'": 0.5, "a": 0.0, "(null)": 1.0}
    assert impact["details"]["counts"] == {"'(null)'": 2, "a": 1, "(null)": 3}
    assert "'(null)': 50.00%" in impact["message"] and "null: 100.00%" in impact["message"]
    # the text group is the privileged one, not the null group
    assert privileged["details"]["privileged"] == "'(null)'"
    assert privileged["observed"] == 0.0  # 'a' at 0% over '(null)' at 50%


def test_a_single_null_group_is_named_null(w: Workspace) -> None:
    frame = pl.DataFrame({"gender": pl.Series([None] * 3, dtype=pl.String)})
    [check] = _checks(w, frame, [SHARE])
    assert check["message"].startswith("Every value of gender is null (3 rows)")
    assert check["details"]["shares"] == {"(null)": 1.0}


# --- personal data ---------------------------------------------------------------------------


def test_a_failing_bias_report_shows_no_row_and_redacts_label_values(w: Workspace) -> None:
    emails = [f"person{i}@example.com" for i in range(6)]
    frame = pl.DataFrame(
        {
            "gender": ["m", "m", "m", "f", "f", "f"],
            "approved": emails,
            "phone": ["+971 50 123 456" + str(i) for i in range(6)],
        }
    )
    checks = _checks(
        w,
        frame,
        [
            {**IMPACT, "positive": "yes"},
            {**PARITY, "positive": "yes"},
            {**IMPACT, "label": "phone", "positive": "x", "name": "phone"},
        ],
    )
    for check in checks:
        assert not check["passed"] and check["failing_rows"] == []
        assert "[redacted:" in check["message"], check["message"]
        text = json.dumps(check)
        assert "@example.com" not in text and "123 456" not in text
        assert set(check["details"]) <= {"rates", "counts", "groups", "unlabelled", "left_out"}
        assert set(check["details"]["counts"]) == {"f", "m"}
