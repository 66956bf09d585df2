"""What a failing bias report lists, and why it fails when it cannot run: at most ``LISTED``
groups, the most unequal (with the groups the result names), and how many more there are; an
attribute of about one row per group (an identifier) said to be one; and a missing column named,
with the field that names it, the columns there are and the check's threshold. Before, a report
listed the first 50 groups in their order (50 identifiers of an id column, none of them said to
be one), and a missing column showed the threshold None."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from keel.workspace import Workspace

IMPACT = {"kind": "disparate_impact", "column": "id", "label": "approved"}
PARITY = {"kind": "positive_rate_parity", "column": "id", "label": "approved"}
SHARE = {"kind": "representation", "column": "id"}
IDENTIFIER = "Note: id has 300 distinct values in 300 rows, most likely an identifier"


@pytest.fixture
def w(local_ws: Workspace) -> Workspace:
    return local_ws


def _checks(w: Workspace, frame: pl.DataFrame, suite: list[dict[str, Any]]) -> list[dict[str, Any]]:
    w.datasets.ingest("loans", frame)
    checks: list[dict[str, Any]] = w.datasets.validate("loans", suite).result["checks"]
    assert len(checks) == len(suite)
    return checks


def _customers(rows: int = 300) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [f"c{i:04}" for i in range(rows)], "approved": [i % 3 == 0 for i in range(rows)]}
    )


def test_an_identifier_column_lists_a_few_groups_and_is_said_to_be_one(w: Workspace) -> None:
    suite = [{**IMPACT, "positive": True}, {**PARITY, "positive": True}, SHARE]
    for check in _checks(w, _customers(), suite):
        assert not check["passed"]
        details = check["details"]
        table = details["rates"] if "rates" in details else details["shares"]
        assert len(table) == 10 and len(details["counts"]) == 10
        assert details["groups"] == 300 and details["unlisted"] == 290
        assert IDENTIFIER in check["message"], check["message"]
        assert "set 'column' to the attribute whose groups to compare" in check["message"]
        assert "and 295 more" in check["message"] and len(check["message"]) < 600


def test_the_most_unequal_groups_are_the_ones_listed(w: Workspace) -> None:
    # 30 groups of 20 rows, group g<k> approved in k of its 20 rows (g00 never, g29 always)
    rates = {f"g{k:02}": min(k, 20) for k in range(30)}
    frame = pl.DataFrame(
        {
            "id": [g for g in rates for _ in range(20)],
            "approved": [i < n for n in rates.values() for i in range(20)],
        }
    )
    impact, privileged = _checks(
        w,
        frame,
        [
            {**IMPACT, "positive": True, "threshold": 0.1},
            {**IMPACT, "positive": True, "privileged": "g10", "name": "privileged"},
        ],
    )
    listed = impact["details"]["rates"]
    assert len(listed) == 10 and impact["details"]["unlisted"] == 20
    assert {"g00", "g01", "g02", "g03", "g04"} <= set(listed)  # the lowest rates
    assert set(listed) - {"g00", "g01", "g02", "g03", "g04"} <= {f"g{k}" for k in range(20, 30)}
    assert listed["g00"] == 0.0 and max(listed.values()) == 1.0
    assert impact["message"].startswith(
        "Disparate-impact ratio is 0.000 (rates: 'g00': 0.00%, 'g01': 5.00%, 'g02': 10.00%, "
    )
    assert "id has" not in impact["message"]  # 30 groups of 20 rows: no identifier
    # the privileged group and its most unequal pair are listed whatever their rates
    assert privileged["details"]["privileged"] == "g10"
    assert {"g10", "g00"} <= set(privileged["details"]["rates"])
    assert len(privileged["details"]["rates"]) == 10


def test_few_groups_are_all_listed_without_a_count_of_more(w: Workspace) -> None:
    frame = pl.DataFrame({"id": ["a", "a", "b", "b"], "approved": [1, 1, 1, 0]})
    [check] = _checks(w, frame, [IMPACT])
    assert check["details"] == {
        "rates": {"a": 1.0, "b": 0.5},
        "counts": {"a": 2, "b": 2},
        "groups": 2,
    }
    assert "Note:" not in check["message"]


@pytest.mark.parametrize(
    ("check", "threshold", "reason"),
    [
        (
            {**IMPACT, "column": "gender"},
            0.8,
            "'column' names 'gender' (the sensitive attribute), which is not a column of the "
            "data (its columns: 'id', 'approved', 'a', 'b', 'c' and 2 more); set it to one of "
            "them.",
        ),
        (
            {**SHARE, "column": "gender", "min_share": 0.2},
            0.2,
            "'column' names 'gender' (the sensitive attribute), which is not a column",
        ),
        (
            {**PARITY, "label": "outcome", "max_difference": 0.05},
            0.05,
            "'label' names 'outcome' (the outcome), which is not a column of the data",
        ),
        (
            {**IMPACT, "column": "gender", "label": "outcome", "threshold": 0.9},
            0.9,
            "'column' names 'gender' (the sensitive attribute) and 'label' names 'outcome' "
            "(the outcome), which are not columns of the data (its columns: 'id', 'approved', "
            "'a', 'b', 'c' and 2 more); set them to columns it has.",
        ),
    ],
)
def test_a_missing_column_shows_the_threshold_and_the_columns_there_are(
    w: Workspace, check: dict[str, Any], threshold: float, reason: str
) -> None:
    frame = pl.DataFrame(
        {"id": [1], "approved": [1], "a": [1], "b": [1], "c": [1], "d": [1], "e": [1]}
    )
    [result] = _checks(w, frame, [check])
    assert not result["passed"] and result["observed"] is None
    assert result["threshold"] == threshold
    assert reason in result["message"], result["message"]
