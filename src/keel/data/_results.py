"""The outcome of each kind of check, as a ``CheckResult`` with a message that reads well."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.data._bias import GroupRates, group_rates, group_shares
from keel.data._checks import Check, CheckResult, as_datetime, human_age

if TYPE_CHECKING:
    import polars as pl

    from keel.data._redact import Redactor

__all__ = ["bias_result", "dtype_matches", "frame_check", "freshness", "result", "row_result"]

_MAX_GROUPS = 50


def result(
    check: Check, passed: bool, observed: Any, threshold: Any, message: str, **extra: Any
) -> CheckResult:
    return CheckResult(
        name=check.name,
        kind=check.kind,
        column=check.column,
        level=check.level,
        passed=passed,
        observed=observed,
        threshold=threshold,
        message=message,
        failing_rows=extra.pop("failing_rows", ()),
        details=extra,
    )


_WHAT = {
    "not_null": "are null",
    "unique": "are duplicated",
    "range": "are out of range",
    "allowed_values": "hold a value not allowed",
    "regex": "do not match the pattern",
    "expression": "break the expression",
}


def row_result(
    check: Check,
    failing: int,
    rows: int,
    failing_frame: pl.DataFrame | None,
    redactor: Redactor,
    first_columns: Sequence[str],
) -> CheckResult:
    limit = float(check.params.get("max_fraction") or 0.0)
    passed = failing <= limit * rows
    share = failing / rows if rows else 0.0
    threshold: dict[str, Any] = {"max_fraction": limit}
    for key in ("min", "max", "pattern", "expr", "values"):
        if key in check.params and check.params[key] is not None:
            value = check.params[key]
            threshold[key] = list(value)[:50] if key == "values" else value
    message = f"{failing:,} of {rows:,} rows ({share:.2%}) {_WHAT[check.kind]}"
    if failing and limit:
        message += f"; at most {limit:.2%} allowed"
    message += "." if failing or limit else ""
    if not failing:
        message = f"All {rows:,} rows pass."
    shown: tuple[dict[str, Any], ...] = ()
    if failing and not passed and failing_frame is not None:
        shown = redactor.rows(failing_frame, first_columns)
    return result(
        check,
        passed,
        failing,
        threshold,
        message,
        failing_rows=shown,
        failing_fraction=round(share, 6),
    )


def freshness(check: Check, latest: object, now: datetime | None) -> CheckResult:
    max_age = float(check.params["max_age"])
    moment = as_datetime(latest)
    if moment is None or now is None:
        return result(check, False, None, max_age, "No timestamps to measure freshness by.")
    age = (now - moment).total_seconds()
    passed = age <= max_age
    message = (
        f"Newest value {moment.isoformat()} is {human_age(max(age, 0))} old; "
        f"at most {human_age(max_age)} allowed."
    )
    return result(check, passed, round(age, 3), max_age, message, latest=moment.isoformat())


def frame_check(check: Check, schema: pl.Schema, rows: int) -> CheckResult:
    """A ``type`` or ``row_count`` check, from the schema and the number of rows."""
    p = check.params
    if check.kind == "type":
        actual = schema[check.column or ""]
        passed = dtype_matches(actual, p["dtype"])
        return result(
            check, passed, str(actual), p["dtype"], f"Column is {actual}; expected {p['dtype']}."
        )
    passed = (p["min"] is None or rows >= p["min"]) and (p["max"] is None or rows <= p["max"])
    bounds = {k: p[k] for k in ("min", "max") if p[k] is not None}
    return result(check, passed, rows, bounds, f"{rows:,} rows; expected {_bounds(bounds)}.")


def dtype_matches(dtype: pl.DataType, expected: str) -> bool:
    """Whether a Polars dtype is what a ``type`` check declares (``integer``, ``float64``, …)."""
    import polars as pl

    groups = {
        "integer": dtype.is_integer(),
        "int": dtype.is_integer(),
        "float": dtype.is_float(),
        "numeric": dtype.is_numeric(),
        "decimal": isinstance(dtype, pl.Decimal),
        "string": dtype == pl.String,
        "str": dtype == pl.String,
        "bool": dtype == pl.Boolean,
        "boolean": dtype == pl.Boolean,
        "date": dtype == pl.Date,
        "datetime": isinstance(dtype, pl.Datetime),
        "time": dtype == pl.Time,
        "duration": isinstance(dtype, pl.Duration),
        "categorical": isinstance(dtype, pl.Categorical | pl.Enum),
    }
    if expected in groups:
        return groups[expected]
    return str(dtype).lower() == expected


def _bounds(bounds: Mapping[str, Any]) -> str:
    if "min" in bounds and "max" in bounds:
        return f"between {bounds['min']:,} and {bounds['max']:,}"
    return f"at least {bounds['min']:,}" if "min" in bounds else f"at most {bounds['max']:,}"


def bias_result(frame: pl.DataFrame, check: Check) -> CheckResult:
    """A bias check's outcome. With nothing to measure (no rows, fewer than two groups to
    compare, no row with the positive label) it fails with the reason: a parity that holds
    only because nothing was measured must not pass a gate."""
    p = check.params
    attribute = check.column or ""
    if check.kind == "representation":
        shares = group_shares(frame, attribute)
        if not shares:
            return result(
                check,
                False,
                None,
                p["min_share"],
                f"No rows to measure the representation of {attribute} in.",
            )
        lowest = min(shares.values())
        under = [g for g, s in shares.items() if s < p["min_share"]]
        message = (
            f"Every group of {attribute} holds at least {p['min_share']:.1%} of the rows."
            if not under
            else f"Groups under {p['min_share']:.1%} of the rows: "
            + ", ".join(f"{g} ({shares[g]:.2%})" for g in under[:10])
        )
        return result(
            check,
            not under,
            round(lowest, 6),
            p["min_share"],
            message,
            shares=_capped(shares),
        )
    rates = group_rates(frame, attribute, p["label"], p["positive"], min_count=p["min_count"])
    summary = ", ".join(f"{g}: {r:.2%}" for g, r in list(rates.rates.items())[:10])
    limit = p["max_difference"] if check.kind == "positive_rate_parity" else p["threshold"]
    extra = {"rates": _capped(rates.rates), "counts": _capped(rates.counts)}
    if (reason := _unmeasurable(check, frame.height, rates)) is not None:
        return result(check, False, None, limit, reason, **extra)
    if check.kind == "positive_rate_parity":
        diff = rates.difference
        passed = diff <= p["max_difference"]
        return result(
            check,
            passed,
            round(diff, 6),
            p["max_difference"],
            f"Positive rate ({p['label']} = {p['positive']!r}) differs by {diff:.2%} "
            f"across {attribute} groups ({summary}).",
            **extra,
        )
    privileged = p["privileged"]
    if privileged is not None and str(privileged) not in rates.rates:
        return result(
            check,
            False,
            None,
            p["threshold"],
            f"The privileged group {privileged!r} has no rows in {attribute}.",
        )
    ratio = rates.impact_ratio(None if privileged is None else str(privileged))
    passed = ratio >= p["threshold"]
    over = f" over {privileged!r}" if privileged is not None else ""
    return result(
        check,
        passed,
        round(ratio, 6) if math.isfinite(ratio) else None,
        p["threshold"],
        f"Disparate-impact ratio{over} is {ratio:.3f} (rates: {summary}); "
        f"at least {p['threshold']} required.",
        **extra,
    )


def _unmeasurable(check: Check, rows: int, rates: GroupRates) -> str | None:
    """Why a parity check has nothing to measure, or None when it has."""
    p = check.params
    attribute = check.column or ""
    if not rows:
        return f"No rows to measure the positive rate of {p['label']} across {attribute} in."
    if len(rates.rates) < 2:
        kept = f" with at least {p['min_count']} rows" if p["min_count"] > 1 else ""
        return (
            f"Fewer than two groups of {attribute}{kept} ({len(rates.rates)}): "
            "there is nothing to compare."
        )
    if not rates.positives:
        return (
            f"No row has the positive label ({p['label']} = {p['positive']!r}): "
            "every rate is 0, which measures nothing; set 'positive' to the label's "
            "positive value."
        )
    return None


def _capped(values: Mapping[str, Any]) -> dict[str, Any]:
    return dict(list(values.items())[:_MAX_GROUPS])
