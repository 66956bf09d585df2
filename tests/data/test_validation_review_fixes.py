"""Regressions from a review of the check engine: aggregate expressions over a whole version,
redaction of failing rows from any part, bias and reference checks that fail closed instead of
crashing or passing on nothing, dates in YAML suites, time-zone-aware bounds, NaN and nulls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from keel.data._checks import CheckResult, parse_suite, run_suite, run_suite_parts
from keel.settings import Settings
from keel.workspace import Workspace, connect

NAMES = ["Fatima Al Mansoori", "John Smith", "Maria Garcia", "Ahmed Hassan"]


@pytest.fixture
def w(tmp_path: Path) -> Iterator[Workspace]:
    with connect(settings=Settings(home=tmp_path / "home"), principal="user:me") as ws:
        yield ws


def _one(frame: pl.DataFrame, check: dict[str, Any], **kw: Any) -> CheckResult:
    return run_suite(frame, parse_suite([check]), **kw).checks[0]


# --- 1. aggregate and window expressions run over the whole version ---------------------------


def test_aggregate_expression_is_measured_over_the_whole_version(w: Workspace) -> None:
    w.datasets.ingest("d", pl.DataFrame({"x": [1.0, 2.0, 3.0]}))
    w.datasets.ingest("d", pl.DataFrame({"x": [100.0, 200.0]}), mode="append")
    report = w.datasets.validate("d", [{"kind": "expression", "expr": "x <= 2 * AVG(x)"}])
    check = report.result["checks"][0]
    assert not report.passed
    assert check["observed"] == 1  # 200 > 2 * 61.2; part by part nothing failed
    assert check["failing_rows"] == [{"row": 4, "x": 200.0}]


def test_window_and_count_expressions_fold_over_parts_correctly() -> None:
    parts = [pl.DataFrame({"g": ["a", "a"], "x": [1, 2]}), pl.DataFrame({"g": ["a"], "x": [9]})]
    suite = parse_suite(
        [
            {"kind": "expression", "name": "win", "expr": "x < 2 * AVG(x) OVER (PARTITION BY g)"},
            {"kind": "expression", "name": "count", "expr": "COUNT(*) >= 3"},
            {"kind": "expression", "name": "rowwise", "expr": "x > 0"},
        ]
    )
    # the gate passes `whole=None` when no whole check names a column: the parts make it up
    result = run_suite_parts(iter(parts), suite, whole=None)
    by_name = {c.name: c for c in result.checks}
    assert by_name["win"].observed == 1  # 9 >= 2 * 4
    assert by_name["count"].passed and by_name["count"].observed == 0
    assert by_name["rowwise"].passed
    assert result.rows == 3


def test_aggregate_detector() -> None:
    from keel.data._transforms import uses_aggregates as aggregates

    for expr in ("x <= 2 * AVG(x)", "x > stddev(x)", "COUNT(*) > 3", "x > median(x)",
                 "ROW_NUMBER() OVER (ORDER BY x) > 1", "x < SUM(y) OVER (PARTITION BY g)",
                 "x > QUANTILE_CONT(x, 0.5)"):  # fmt: skip
        assert aggregates(expr), expr
    row_local = ("x > 0", "end_date >= start_date", "abs(x) > 1 AND upper(s) = s")
    row_local += ("LEFT(s,2)='a'", "SUBSTR(s,1,1)='a'", "REVERSE(s)<>'x'", "LOG(x) > 0")
    for expr in row_local:  # string functions read their own row only: folded part by part
        assert not aggregates(expr), expr


# --- 2. failing rows are redacted whichever part holds them ----------------------------------


def test_personal_data_only_in_later_parts_is_redacted(w: Workspace) -> None:
    empty = pl.Series([None] * 3, dtype=pl.String)
    w.datasets.ingest("c", pl.DataFrame({"full_name": empty, "amt": [1, 2, 3]}))
    later = pl.DataFrame({"full_name": NAMES, "amt": [-1, -2, -3, -4]})
    w.datasets.ingest("c", later, mode="append")
    report = w.datasets.validate("c", [{"kind": "expression", "expr": "amt > 0 OR full_name = ''"}])
    rows = report.result["checks"][0]["failing_rows"]
    assert [r["amt"] for r in rows] == [-1, -2, -3, -4]
    assert {r["full_name"] for r in rows} == {"[redacted: person_name]"}
    html = w.datasets.report_html(report.id)
    assert not any(name in html or name in str(report.result) for name in NAMES)


def test_stored_labels_force_redaction(w: Workspace) -> None:
    w.datasets.ingest("k", pl.DataFrame({"code": ["K-17", "K-18"], "amt": [-1, 2]}))
    suite = [{"kind": "expression", "expr": "amt > 0 OR code = ''"}]
    report = w.datasets.validate("k", suite)
    assert report.result["checks"][0]["failing_rows"][0]["code"] == "K-17"  # not personal
    w.datasets.override(
        "k", "code", sensitivity="confidential", categories=["person_name"], reason="pseudonym"
    )
    report = w.datasets.validate("k", suite)
    assert report.result["checks"][0]["failing_rows"][0]["code"].startswith("[redacted")


# --- 3. bias and reference checks that cannot run fail closed --------------------------------


def test_disparate_impact_on_text_labels_fails_with_a_reason(w: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("g,lab\na,yes\nb,no\n")
    w.datasets.ingest("b", str(path))
    report = w.datasets.validate("b", [{"kind": "disparate_impact", "column": "g", "label": "lab"}])
    check = report.result["checks"][0]
    assert not report.passed and check["observed"] is None
    assert "positive label 1 cannot be compared with lab" in check["message"]
    assert w.datasets.report_html(report.id)  # the report was stored
    fixed = w.datasets.validate(
        "b", [{"kind": "disparate_impact", "column": "g", "label": "lab", "positive": "yes"}]
    )
    assert fixed.result["checks"][0]["observed"] == 0.0


def test_a_column_named_like_the_statistics_does_not_collide() -> None:
    frame = pl.DataFrame({"n": ["a", "a", "b", "b"], "rate": [1, 0, 1, 1]})
    reference = pl.DataFrame({"n": ["a", "b", "b", "b"], "rate": [1, 1, 1, 1]})
    suite = parse_suite(
        [
            {"kind": "representation", "column": "n", "min_share": 0.4},
            {"kind": "disparate_impact", "column": "n", "label": "rate"},
            {"kind": "distribution_shift", "column": "n", "method": "psi", "max": 10},
        ]
    )
    rep, impact, shift = run_suite(frame, suite, reference=reference).checks
    assert rep.passed and rep.details["shares"] == {"a": 0.5, "b": 0.5}
    assert impact.observed == 0.5 and not impact.passed
    assert shift.passed and shift.details["categories"] == 2 and shift.observed > 0


def test_distribution_shift_on_a_list_column_fails_with_a_reason() -> None:
    frame = pl.DataFrame({"tags": [["a"], ["b", "c"]]})
    check = _one(frame, {"kind": "distribution_shift", "column": "tags"}, reference=frame)
    assert not check.passed and check.observed is None
    assert "tags is List(String)" in check.message


# --- 4. bias checks with nothing to measure fail -----------------------------------------------


def test_bias_checks_fail_when_there_is_nothing_to_measure() -> None:
    frame = pl.DataFrame({"g": ["a", "a", "b", "b"], "lab": [True, True, False, True]})
    parity = {"kind": "positive_rate_parity", "column": "g", "label": "lab", "positive": "yes"}
    check = _one(frame, parity)
    assert (
        not check.passed and check.observed is None and "No row has the positive" in check.message
    )

    zeros = pl.DataFrame({"g": ["a", "b"], "lab": [0, 0]})
    check = _one(zeros, {"kind": "disparate_impact", "column": "g", "label": "lab"})
    assert not check.passed and check.observed is None

    empty = pl.DataFrame(
        {"g": pl.Series([], dtype=pl.String), "lab": pl.Series([], dtype=pl.Int64)}
    )
    for kind in ("disparate_impact", "positive_rate_parity"):
        check = _one(empty, {"kind": kind, "column": "g", "label": "lab"})
        assert not check.passed and check.message.startswith("No rows"), kind
    check = _one(empty, {"kind": "representation", "column": "g"})
    assert not check.passed and check.observed is None
    assert check.message == "No rows to measure the representation of g in."

    few = pl.DataFrame({"g": ["a", "a", "b"], "lab": [1, 0, 1]})
    impact = {"kind": "disparate_impact", "column": "g", "label": "lab", "min_count": 2}
    check = _one(few, impact)
    assert not check.passed and "Fewer than two groups of g with at least 2 rows" in check.message

    measured = _one(few, {"kind": "disparate_impact", "column": "g", "label": "lab"})
    assert measured.observed == 0.5  # with something to measure, a ratio as before


# --- 5. dates in a YAML suite ------------------------------------------------------------------


def test_yaml_dates_are_stored_and_match_date_columns(w: Workspace) -> None:
    suite = yaml.safe_load(
        "- {kind: allowed_values, column: d, values: [2024-01-01, 2024-01-02]}\n"
        "- {kind: disparate_impact, column: g, label: d, positive: 2024-01-01}\n"
        "- {kind: allowed_values, column: ts, values: [2024-01-01 00:00:00], name: ts}\n"
    )
    assert isinstance(suite[0]["values"][0], date)
    assert parse_suite(suite).checks[0].params["values"] == ["2024-01-01", "2024-01-02"]
    frame = pl.DataFrame(
        {
            "d": [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 1)],
            "g": ["a", "a", "b", "b"],
            "ts": [datetime(2024, 1, 1)] * 3 + [datetime(2024, 1, 2)],
        }
    )
    w.datasets.ingest("dates", frame)
    report = w.datasets.validate("dates", suite)
    allowed, impact, ts = report.result["checks"]
    assert allowed["observed"] == 1 and allowed["failing_rows"][0]["d"] == "2024-01-03"
    assert allowed["threshold"]["values"] == ["2024-01-01", "2024-01-02"]
    assert impact["details"]["rates"] == {"a": 0.5, "b": 0.5}
    assert ts["observed"] == 1 and ts["failing_rows"][0]["row"] == 3


# --- 6. range bounds on a time-zone-aware column ------------------------------------------------


def test_range_on_an_aware_column_compares_instants() -> None:
    dubai = pl.Datetime("us", "Asia/Dubai")
    moments = [datetime(2024, 1, 1, 3), datetime(2024, 1, 1, 5)]  # 23:00 and 01:00 UTC
    frame = pl.DataFrame({"ts": pl.Series(moments).dt.replace_time_zone("Asia/Dubai")})
    assert frame.schema["ts"] == dubai
    aware = _one(frame, {"kind": "range", "column": "ts", "min": "2024-01-01T00:00:00+00:00"})
    assert aware.observed == 1 and aware.failing_rows[0]["row"] == 0
    # a naive bound is read in the column's zone: 04:00 Dubai
    naive = _one(frame, {"kind": "range", "column": "ts", "max": "2024-01-01T04:00:00"})
    assert naive.observed == 1 and naive.failing_rows[0]["row"] == 1
    day = _one(frame, {"kind": "range", "column": "ts", "min": date(2024, 1, 1)})
    assert day.passed  # midnight in Dubai
    utc = pl.DataFrame({"ts": [datetime(2024, 1, 1, 1)]})  # naive column: read as UTC
    late = {"kind": "range", "column": "ts", "max": datetime(2024, 1, 1, 4, tzinfo=UTC)}
    assert _one(utc, late).passed


# --- 7. NaN and nulls ---------------------------------------------------------------------------


def test_nan_is_out_of_range_and_nulls_are_not_duplicates() -> None:
    frame = pl.DataFrame(
        {"f": [1.0, float("nan"), 2.0], "u": [1, None, None], "v": [1, 1, None], "k": [2, 2, 2]}
    )
    low = _one(frame, {"kind": "range", "column": "f", "min": 0})
    high = _one(frame, {"kind": "range", "column": "f", "max": 5})
    assert low.observed == high.observed == 1
    assert low.failing_rows[0]["row"] == 1
    unique = _one(frame, {"kind": "unique", "column": "u"})
    assert unique.passed and unique.message == "All 3 rows pass."
    pair = _one(frame, {"kind": "unique", "columns": ["v", "k"]})
    assert pair.observed == 2  # (1, 2) twice; (null, 2) is no duplicate


def test_a_bias_check_that_cannot_run_names_no_other_columns_type() -> None:
    frame = pl.DataFrame({"g": ["a", "b"], "i": [1, 0]})
    suite = [{"kind": "disparate_impact", "column": "g", "label": "i", "positive": "1"}]
    message = run_suite(frame, parse_suite(suite)).checks[0].message
    assert "String" not in message and "i (Int64)" in message
