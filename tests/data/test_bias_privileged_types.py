"""A disparate-impact check's ``privileged`` group on a date, date-time, time or duration
column: an ISO 8601 string (how a suite keeps such values) is read as a value of the column's
type, and one that is none is refused naming the value and the type. Before, a time
(``08:30:00``) or a duration (``PT1H``) matched no group, and neither did a date-time given for
a date column or a misspelt date; each read as "no rows in the column"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from keel.data._checks import iso_duration, parse_duration, parse_suite
from keel.settings import Settings
from keel.workspace import Workspace, connect

IMPACT = {"kind": "disparate_impact", "column": "group", "label": "approved"}


@pytest.fixture
def w(tmp_path: Path) -> Iterator[Workspace]:
    with connect(settings=Settings(home=tmp_path / "home"), principal="user:me") as ws:
        yield ws


def _checks(w: Workspace, groups: list[Any], suite: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``groups[0]`` approved twice of two, ``groups[1]`` once of two: a ratio of 0.5."""
    frame = pl.DataFrame(
        {
            "group": [groups[0], groups[0], groups[1], groups[1]],
            "approved": [1, 1, 1, 0],
        }
    )
    w.datasets.ingest("loans", frame)
    checks: list[dict[str, Any]] = w.datasets.validate("loans", suite).result["checks"]
    return checks


@pytest.mark.parametrize(
    ("groups", "privileged", "named"),
    [
        ([time(8, 30), time(17)], "08:30:00", "08:30:00"),
        ([time(8, 30), time(17)], "08:30", "08:30:00"),
        ([timedelta(hours=1), timedelta(hours=2)], "PT1H", "1:00:00"),
        ([timedelta(hours=1), timedelta(hours=2)], "1:00:00", "1:00:00"),  # as reports name it
        ([timedelta(days=-1), timedelta(0)], "-P1D", "-1 day, 0:00:00"),
        ([timedelta(0), timedelta(days=2)], "PT0S", "0:00:00"),
        ([date(2024, 1, 1), date(2024, 2, 1)], "2024-01-01", "2024-01-01"),
        ([datetime(2024, 1, 1, 8), datetime(2024, 2, 1)], "2024-01-01T08:00:00", None),
    ],
)
def test_a_privileged_group_in_iso_8601_matches_the_columns_value(
    w: Workspace, groups: list[Any], privileged: str, named: str | None
) -> None:
    [check] = _checks(w, groups, [{**IMPACT, "privileged": privileged}])
    assert check["observed"] == 0.5, check["message"]
    assert check["details"]["privileged"] == (named or groups[0].isoformat())


def test_times_and_durations_in_a_suite_are_kept_as_iso_and_match(w: Workspace) -> None:
    suite = parse_suite(
        [
            {**IMPACT, "privileged": time(8, 30), "name": "time"},
            {**IMPACT, "privileged": timedelta(minutes=90), "name": "duration"},
        ]
    )
    assert [c.params["privileged"] for c in suite.checks] == ["08:30:00", "PT1H30M"]
    [at_time, _] = _checks(w, [time(8, 30), time(9)], suite.to_list())
    assert at_time["observed"] == 0.5, at_time["message"]


def test_a_yaml_suite_with_a_quoted_time_matches(w: Workspace) -> None:
    suite = yaml.safe_load(
        "- {kind: disparate_impact, column: group, label: approved, privileged: '08:30:00'}"
    )
    [check] = _checks(w, [time(8, 30), time(9)], suite)
    assert check["observed"] == 0.5, check["message"]


@pytest.mark.parametrize(
    ("groups", "privileged", "said"),
    [
        (
            [date(2024, 1, 1), date(2024, 2, 1)],
            "yesterday",
            "The privileged group 'yesterday' is not a date, as the values of the column "
            "(Date) are: write it in ISO 8601, for example 2024-01-31.",
        ),
        (
            [date(2024, 1, 1), date(2024, 2, 1)],
            "2024-01-01T08:00:00",
            "The privileged group '2024-01-01T08:00:00' is not a date, as the values of the "
            "column (Date) are",
        ),
        (
            [datetime(2024, 1, 1), datetime(2024, 2, 1)],
            "2024-01-32",
            "The privileged group '2024-01-32' is not a date-time, as the values of the column "
            "(Datetime(time_unit='us', time_zone=None)) are: write it in ISO 8601, for example "
            "2024-01-31T08:00:00",
        ),
        (
            [time(8, 30), time(9)],
            "08:30:00+02:00",
            "The privileged group '08:30:00+02:00' is not a time of day (without a zone), as "
            "the values of the column (Time) are: write it in ISO 8601, for example 08:30:00.",
        ),
        (
            [time(8, 30), time(9)],
            30600,  # YAML 1.1 reads an unquoted 08:30:00 as 8 * 3600 + 30 * 60
            "The privileged group 30600 is not a time of day (without a zone), as the values "
            "of the column (Time) are: write it in ISO 8601, for example 08:30:00 (in YAML, "
            "quote it: an unquoted 08:30:00 is read as a number of seconds).",
        ),
        (
            [timedelta(hours=1), timedelta(hours=2)],
            "P1M",  # a month has no fixed length
            "The privileged group 'P1M' is not a duration, as the values of the column "
            "(Duration(time_unit='us')) are: write it in ISO 8601, for example PT1H30M or P2D.",
        ),
    ],
)
def test_a_privileged_group_not_of_the_columns_type_is_refused_naming_both(
    w: Workspace, groups: list[Any], privileged: Any, said: str
) -> None:
    [check] = _checks(w, groups, [{**IMPACT, "privileged": privileged}])
    assert not check["passed"] and check["observed"] is None
    assert check["threshold"] == 0.8
    assert said in check["message"], check["message"]
    assert "has no rows" not in check["message"]
    assert check["details"]["groups"] == 2 and len(check["details"]["rates"]) == 2  # shown


def test_allowed_times_given_as_iso_strings_are_times(w: Workspace) -> None:
    frame = pl.DataFrame({"opens": [time(8, 30), time(9), time(23)]})
    w.datasets.ingest("shops", frame)
    suite = [{"kind": "allowed_values", "column": "opens", "values": ["08:30:00", "09:00"]}]
    [check] = w.datasets.validate("shops", suite).result["checks"]
    assert check["observed"] == 1 and not check["passed"], check["message"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P2D", timedelta(days=2)),
        ("P1W", timedelta(weeks=1)),
        ("-PT0.5S", timedelta(seconds=-0.5)),
        ("pt1h", timedelta(hours=1)),
        ("P1DT0.000001S", timedelta(days=1, microseconds=1)),
        ("1 day, 2:00:00", timedelta(days=1, hours=2)),
        ("-1 day, 23:00:00", timedelta(hours=-1)),
        ("0:00:00.500000", timedelta(seconds=0.5)),
        ("P", None),
        ("PT", None),
        ("P1DT", None),
        ("P1Y", None),
        ("PT0.0000001S", None),  # under a microsecond
        ("PT1.2.3S", None),
    ],
)
def test_durations_are_read_from_iso_8601_and_written_back(
    text: str, value: timedelta | None
) -> None:
    assert parse_duration(text) == value
    if value is not None:
        assert parse_duration(iso_duration(value)) == value
