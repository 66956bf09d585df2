"""The check engine: parsing with clear errors, each kind's outcome, levels, redaction."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from keel.data._checks import ValidationResult, parse_suite, run_suite
from keel.errors import InvalidInputError

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [1, 2, 3, 4, 4],
            "age": [25, 130, 41, None, 33],
            "email": ["ann@example.com", "bob@example.ae", "not-an-email", "d@x.org", "e@y.io"],
            "country": ["AE", "AE", "FR", "XX", "AE"],
            "start": [date(2026, 1, 1)] * 5,
            "end": [date(2026, 1, 2), date(2025, 12, 1), date(2026, 1, 5), None, date(2026, 2, 1)],
            "seen": [datetime(2026, 2, 28, 18, tzinfo=UTC)] * 5,
        }
    )


def _by_name(result: ValidationResult) -> dict[str, object]:
    return {c.name: c for c in result.checks}


def test_row_and_frame_checks_report_what_they_observed(frame: pl.DataFrame) -> None:
    suite = parse_suite(
        {
            "checks": [
                {"kind": "type", "column": "age", "dtype": "integer"},
                {"kind": "type", "column": "email", "dtype": "float", "name": "email_is_float"},
                {"kind": "not_null", "column": "age"},
                {"kind": "not_null", "column": "age", "max_fraction": 0.25, "name": "mostly"},
                {"kind": "unique", "column": "id"},
                {"kind": "range", "column": "age", "min": 0, "max": 120},
                {"kind": "allowed_values", "column": "country", "values": ["AE", "FR"]},
                {"kind": "regex", "column": "email", "pattern": r"^[^@\s]+@[^@\s]+$"},
                {"kind": "row_count", "min": 1, "max": 10},
                {"kind": "freshness", "column": "seen", "max_age": "1d"},
                {"kind": "expression", "expr": '"end" >= start', "name": "ordered"},
            ]
        }
    )
    result = run_suite(frame, suite, now=NOW)
    got = {c.name: (c.passed, c.observed) for c in result.checks}
    assert got == {
        "type:age": (True, "Int64"),
        "email_is_float": (False, "String"),
        "not_null:age": (False, 1),
        "mostly": (True, 1),
        "unique:id": (False, 2),
        "range:age": (False, 1),
        "allowed_values:country": (False, 1),
        "regex:email": (False, 1),
        "row_count": (True, 5),
        "freshness:seen": (True, 18 * 3600.0),
        "ordered": (False, 1),
    }
    assert result.rows == 5 and not result.passed
    ordered = _by_name(result)["ordered"]
    assert ordered.failing_rows[0]["row"] == 1  # type: ignore[attr-defined]


def test_warnings_pass_the_gate_and_errors_block_it(frame: pl.DataFrame) -> None:
    warn = parse_suite([{"kind": "range", "column": "age", "max": 120, "level": "warning"}])
    result = run_suite(frame, warn)
    assert result.passed and len(result.warnings) == 1 and not result.errors
    error = parse_suite([{"kind": "range", "column": "age", "max": 120}])
    assert not run_suite(frame, error).passed


def test_failing_rows_are_few_and_personal_data_is_redacted(frame: pl.DataFrame) -> None:
    big = pl.concat([frame] * 10)
    result = run_suite(big, parse_suite([{"kind": "range", "column": "age", "max": 120}]))
    check = result.checks[0]
    assert check.observed == 10 and len(check.failing_rows) == 5
    for row in check.failing_rows:
        assert row["age"] == 130
        assert row["email"].startswith("[redacted")
        assert "bob@example.ae" not in str(row)
    # a column the caller declares sensitive is redacted too
    hidden = run_suite(
        big,
        parse_suite([{"kind": "range", "column": "age", "max": 120}]),
        sensitive_columns=["country"],
    )
    assert all(r["country"].startswith("[redacted") for r in hidden.checks[0].failing_rows)


def test_a_missing_column_or_reference_fails_closed(frame: pl.DataFrame) -> None:
    suite = parse_suite(
        [
            {"kind": "not_null", "column": "salary"},
            {"kind": "distribution_shift", "column": "age"},
            {"kind": "range", "column": "email", "min": 0},
        ]
    )
    result = run_suite(frame, suite)
    assert [c.passed for c in result.checks] == [False, False, False]
    assert "salary" in result.checks[0].message and "columns: id" in result.checks[0].message
    assert "reference" in result.checks[1].message
    assert "cannot run" in result.checks[2].message


def test_freshness_needs_a_time_from_the_caller(frame: pl.DataFrame) -> None:
    suite = parse_suite([{"kind": "freshness", "column": "seen", "max_age": 3600}])
    with pytest.raises(InvalidInputError, match="now="):
        run_suite(frame, suite)
    stale = run_suite(frame, suite, now=NOW)
    assert not stale.passed and "18h" in stale.checks[0].message


def test_reference_checks(frame: pl.DataFrame) -> None:
    rng_ref = pl.DataFrame({"x": [float(i % 100) for i in range(5000)], "c": ["a", "b"] * 2500})
    shifted = pl.DataFrame(
        {"x": [float(i % 100) + 40 for i in range(5000)], "c": ["a", "b", "c", "d"] * 1250}
    )
    suite = parse_suite(
        [
            {"kind": "distribution_shift", "column": "x", "method": "psi"},
            {"kind": "distribution_shift", "column": "x", "method": "ks", "name": "ks"},
            {"kind": "distribution_shift", "column": "c", "name": "psi_c"},
            {"kind": "new_categories", "column": "c"},
            {"kind": "cardinality_change", "column": "c", "max_ratio": 0.5},
            {"kind": "null_rate_change", "column": "x"},
        ]
    )
    same = run_suite(rng_ref, suite, reference=rng_ref)
    assert same.passed, [c.message for c in same.checks if not c.passed]
    moved = _by_name(run_suite(shifted, suite, reference=rng_ref))
    assert not moved["distribution_shift:x"].passed  # type: ignore[attr-defined]
    assert moved["ks"].observed == pytest.approx(0.4)  # type: ignore[attr-defined]
    assert moved["new_categories:c"].observed == 2  # type: ignore[attr-defined]
    assert moved["new_categories:c"].details["new"] == ["c", "d"]  # type: ignore[attr-defined]
    assert moved["cardinality_change:c"].observed == 1.0  # type: ignore[attr-defined]
    assert moved["null_rate_change:x"].passed  # type: ignore[attr-defined]


def test_bias_checks_on_a_sensitive_attribute() -> None:
    # group a: 60 rows, 50% approved; group b: 40 rows, 25% approved
    frame = pl.DataFrame(
        {
            "gender": ["a"] * 60 + ["b"] * 40,
            "approved": [1] * 30 + [0] * 30 + [1] * 10 + [0] * 30,
        }
    )
    suite = parse_suite(
        [
            {"kind": "representation", "column": "gender", "min_share": 0.3},
            {"kind": "positive_rate_parity", "column": "gender", "label": "approved"},
            {"kind": "disparate_impact", "column": "gender", "label": "approved"},
            {
                "kind": "disparate_impact",
                "column": "gender",
                "label": "approved",
                "threshold": 0.5,
                "privileged": "a",
                "name": "lenient",
            },
        ]
    )
    got = {c.name: (c.passed, c.observed) for c in run_suite(frame, suite).checks}
    assert got == {
        "representation:gender": (True, 0.4),
        "positive_rate_parity:gender": (False, 0.25),
        "disparate_impact:gender": (False, 0.5),
        "lenient": (True, 0.5),
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "nope"}, "unknown kind 'nope'; use one of: type, not_null"),
        ({"kind": "range", "column": "a"}, "needs 'min', 'max' or both"),
        ({"kind": "range", "column": "a", "min": 0, "mx": 1}, "unknown field(s) mx"),
        ({"kind": "regex", "column": "a", "pattern": "("}, "not a valid regular expression"),
        ({"kind": "expression", "expr": "a >>> b"}, "not a valid SQL expression"),
        ({"kind": "type", "column": "a", "dtype": "money"}, "unknown dtype 'money'"),
        ({"kind": "not_null", "column": "a", "level": "fatal"}, "is not one of: error, warning"),
        ({"kind": "freshness", "column": "a", "max_age": "soon"}, "is not a duration"),
        ({"kind": "distribution_shift", "column": "a", "method": "x"}, "not one of: psi, ks"),
        ({"kind": "not_null"}, "needs the field(s) column"),
        ({"kind": "not_null", "column": "a", "max_fraction": 2}, "between 0 and 1"),
    ],
)
def test_bad_specs_say_which_check_and_what_is_allowed(
    spec: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_suite([{"kind": "row_count", "min": 1}, spec])
    assert "Check #2" in str(caught.value) and message in str(caught.value)


def test_duplicate_names_and_non_lists_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="unique 'name'"):
        parse_suite([{"kind": "not_null", "column": "a"}] * 2)
    with pytest.raises(InvalidInputError, match="list of checks"):
        parse_suite({"checks": "not_null"})


def test_expressions_are_sql_never_python() -> None:
    with pytest.raises(InvalidInputError):
        parse_suite([{"kind": "expression", "expr": "__import__('os').system('true')"}])


def test_results_round_trip_through_json(frame: pl.DataFrame) -> None:
    import json

    suite = parse_suite(
        [
            {"kind": "range", "column": "age", "max": 120},
            {"kind": "representation", "column": "country"},
        ]
    )
    result = run_suite(frame, suite)
    data = json.loads(json.dumps(result.to_dict()))
    assert ValidationResult.from_dict(data) == result
    assert data["errors"] == 1 and data["passed"] is False
    assert suite.to_list()[0] == {
        "name": "range:age",
        "kind": "range",
        "level": "error",
        "column": "age",
        "max": 120,
        "max_fraction": 0.0,
    }


def test_ranges_on_dates_take_iso_bounds_and_unique_takes_several_columns(
    frame: pl.DataFrame,
) -> None:
    suite = parse_suite(
        [
            {"kind": "range", "column": "end", "min": "2026-01-01", "max": "2026-01-31"},
            {"kind": "unique", "columns": ["country", "start"], "name": "pair"},
            {"kind": "range", "column": "seen", "max": "2026-02-28T17:00:00+00:00", "name": "t"},
        ]
    )
    got = {c.name: c.observed for c in run_suite(frame, suite).checks}
    assert got == {"range:end": 2, "pair": 3, "t": 5}


def test_a_frame_with_a_row_column_keeps_it_in_failing_rows() -> None:
    frame = pl.DataFrame({"row": ["r1", "r2"], "v": [1, -1]})
    result = run_suite(frame, parse_suite([{"kind": "range", "column": "v", "min": 0}]))
    assert result.checks[0].failing_rows == ({"__row__": 1, "v": -1, "row": "r2"},)
