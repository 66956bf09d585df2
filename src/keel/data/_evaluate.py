"""How a parsed suite runs: one ``select`` for every row and frame check, then the rest.

Kept apart from the declarations in ``_checks`` so each module stays small. Every result is a
``CheckResult``; a check that cannot run (a missing column, a wrong type, no reference) fails
with a message that says why, so a gate fails closed instead of crashing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from keel.data._bias import group_rates, group_shares
from keel.data._checks import (
    MAX_FAILING_ROWS,
    Check,
    CheckResult,
    as_datetime,
    human_age,
)

if TYPE_CHECKING:
    import polars as pl

    from keel.data._classify import Classification

__all__ = ["columns_of", "evaluate"]

_ROW_KINDS = frozenset({"not_null", "unique", "range", "allowed_values", "regex", "expression"})
_MAX_GROUPS = 50
_MAX_SHOWN_COLUMNS = 12
_MAX_TEXT = 120


def _result(
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


def columns_of(check: Check) -> list[str]:
    """The columns ``check`` reads."""
    import polars as pl

    if check.kind == "unique":
        return list(check.params["columns"])
    if check.kind == "expression":
        names = pl.sql_expr(check.params["expr"]).meta.root_names()
        return [*dict.fromkeys(names)] + ([check.column] if check.column else [])
    cols = [check.column] if check.column else []
    if check.kind in ("positive_rate_parity", "disparate_impact"):
        cols.append(check.params["label"])
    return cols


def _violation(check: Check, schema: pl.Schema) -> pl.Expr:
    """A boolean expression that is True on the rows that break a row check."""
    import polars as pl

    p = check.params
    if check.kind == "not_null":
        return pl.col(check.column or "").is_null()
    if check.kind == "unique":
        cols = p["columns"]
        target: pl.Expr = pl.col(cols[0]) if len(cols) == 1 else pl.struct(cols)
        duplicated: pl.Expr = target.is_duplicated()
        return duplicated
    if check.kind == "expression":
        parsed: pl.Expr = pl.sql_expr(str(p["expr"]))
        return (~parsed.cast(pl.Boolean)).fill_null(False)
    col = pl.col(check.column or "")
    if check.kind == "regex":
        return (~col.cast(pl.String).str.contains(p["pattern"])).fill_null(False)
    if check.kind == "allowed_values":
        return (~col.is_in(list(p["values"]))).fill_null(False)
    # range
    dtype = schema[check.column or ""]
    low, high = (_bound(p[k], dtype) for k in ("min", "max"))
    parts = []
    if low is not None:
        parts.append(col < pl.lit(low))
    if high is not None:
        parts.append(col > pl.lit(high))
    outside = parts[0] if len(parts) == 1 else parts[0] | parts[1]
    return outside.fill_null(False)


def _bound(value: Any, dtype: pl.DataType) -> Any:
    if value is None or not isinstance(value, str) or not dtype.is_temporal():
        return value
    return (
        datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
    )


def evaluate(
    frame: pl.DataFrame,
    checks: Sequence[Check],
    *,
    reference: pl.DataFrame | None,
    sensitive: set[str],
    now: datetime | None,
) -> list[CheckResult]:
    import polars as pl

    schema = frame.schema
    results: dict[int, CheckResult] = {}
    aggregates: list[pl.Expr] = []
    violations: dict[int, pl.Expr] = {}
    empty = frame.head(0)
    for index, check in enumerate(checks):
        missing = [c for c in columns_of(check) if c not in schema]
        if missing:
            shown = ", ".join(list(schema)[:20])
            results[index] = _result(
                check,
                False,
                None,
                None,
                f"Column(s) {', '.join(missing)} not in the data (columns: {shown}).",
            )
            continue
        try:
            if check.kind in _ROW_KINDS:
                expr = _violation(check, schema)
                empty.select(expr.sum())  # type errors surface here, on no rows
                violations[index] = expr
                aggregates.append(expr.sum().alias(f"v{index}"))
            elif check.kind == "freshness":
                col = pl.col(check.column or "")
                if not schema[check.column or ""].is_temporal():
                    raise TypeError("freshness needs a date or datetime column")
                aggregates.append(col.max().alias(f"v{index}"))
        except Exception as exc:
            dtype = schema[check.column] if check.column else None
            results[index] = _result(
                check,
                False,
                None,
                None,
                f"The check cannot run on this data{f' (column dtype {dtype})' if dtype else ''}: "
                f"{str(exc).splitlines()[0][:300]}",
            )
            violations.pop(index, None)
    values: Mapping[str, Any] = frame.select(aggregates).row(0, named=True) if aggregates else {}
    redactor = _Redactor(frame, sensitive)
    for index, check in enumerate(checks):
        if index in results:
            continue
        if check.kind in _ROW_KINDS:
            results[index] = _row_result(
                frame, check, int(values[f"v{index}"] or 0), violations[index], redactor
            )
        elif check.kind == "freshness":
            results[index] = _freshness(check, values[f"v{index}"], now)
        else:
            results[index] = _other(frame, check, reference)
    return [results[i] for i in range(len(checks))]


_WHAT = {
    "not_null": "are null",
    "unique": "are duplicated",
    "range": "are out of range",
    "allowed_values": "hold a value not allowed",
    "regex": "do not match the pattern",
    "expression": "break the expression",
}


def _row_result(
    frame: pl.DataFrame, check: Check, failing: int, violation: pl.Expr, redactor: _Redactor
) -> CheckResult:
    rows = frame.height
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
    if failing and not passed:
        index = "row" if "row" not in frame.schema else "__row__"
        failing_frame = (
            frame.lazy().with_row_index(index).filter(violation).head(MAX_FAILING_ROWS).collect()
        )
        shown = redactor.rows(failing_frame, columns_of(check))
    return _result(
        check,
        passed,
        failing,
        threshold,
        message,
        failing_rows=shown,
        failing_fraction=round(share, 6),
    )


def _freshness(check: Check, latest: object, now: datetime | None) -> CheckResult:
    max_age = float(check.params["max_age"])
    moment = as_datetime(latest)
    if moment is None or now is None:
        return _result(check, False, None, max_age, "No timestamps to measure freshness by.")
    age = (now - moment).total_seconds()
    passed = age <= max_age
    message = (
        f"Newest value {moment.isoformat()} is {human_age(max(age, 0))} old; "
        f"at most {human_age(max_age)} allowed."
    )
    return _result(check, passed, round(age, 3), max_age, message, latest=moment.isoformat())


def _other(frame: pl.DataFrame, check: Check, reference: pl.DataFrame | None) -> CheckResult:
    p = check.params
    if check.kind == "type":
        actual = frame.schema[check.column or ""]
        passed = dtype_matches(actual, p["dtype"])
        return _result(
            check, passed, str(actual), p["dtype"], f"Column is {actual}; expected {p['dtype']}."
        )
    if check.kind == "row_count":
        n = frame.height
        passed = (p["min"] is None or n >= p["min"]) and (p["max"] is None or n <= p["max"])
        bounds = {k: p[k] for k in ("min", "max") if p[k] is not None}
        return _result(check, passed, n, bounds, f"{n:,} rows; expected {_bounds(bounds)}.")
    if check.kind in ("representation", "positive_rate_parity", "disparate_impact"):
        return _bias(frame, check)
    if reference is None:
        return _result(
            check,
            False,
            None,
            None,
            "This check compares with a reference version, and none was given: "
            "set a reference for the dataset or pass one.",
        )
    if (check.column or "") not in reference.schema:
        return _result(
            check, False, None, None, f"Column {check.column} is not in the reference data."
        )
    from keel.data._drift import reference_check

    observed, threshold, passed, message, details = reference_check(frame, reference, check)
    return _result(check, passed, observed, threshold, message, **details)


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


def _bias(frame: pl.DataFrame, check: Check) -> CheckResult:
    p = check.params
    attribute = check.column or ""
    if check.kind == "representation":
        shares = group_shares(frame, attribute)
        lowest = min(shares.values(), default=0.0)
        under = [g for g, s in shares.items() if s < p["min_share"]]
        message = (
            f"Every group of {attribute} holds at least {p['min_share']:.1%} of the rows."
            if not under
            else f"Groups under {p['min_share']:.1%} of the rows: "
            + ", ".join(f"{g} ({shares[g]:.2%})" for g in under[:10])
        )
        return _result(
            check,
            not under and bool(shares),
            round(lowest, 6),
            p["min_share"],
            message,
            shares=_capped(shares),
        )
    rates = group_rates(frame, attribute, p["label"], p["positive"], min_count=p["min_count"])
    summary = ", ".join(f"{g}: {r:.2%}" for g, r in list(rates.rates.items())[:10])
    if check.kind == "positive_rate_parity":
        diff = rates.difference
        passed = diff <= p["max_difference"]
        return _result(
            check,
            passed,
            round(diff, 6),
            p["max_difference"],
            f"Positive rate ({p['label']} = {p['positive']!r}) differs by {diff:.2%} "
            f"across {attribute} groups ({summary}).",
            rates=_capped(rates.rates),
            counts=_capped(rates.counts),
        )
    privileged = p["privileged"]
    if privileged is not None and str(privileged) not in rates.rates:
        return _result(
            check,
            False,
            None,
            p["threshold"],
            f"The privileged group {privileged!r} has no rows in {attribute}.",
        )
    ratio = rates.impact_ratio(None if privileged is None else str(privileged))
    passed = ratio >= p["threshold"]
    over = f" over {privileged!r}" if privileged is not None else ""
    return _result(
        check,
        passed,
        round(ratio, 6) if math.isfinite(ratio) else None,
        p["threshold"],
        f"Disparate-impact ratio{over} is {ratio:.3f} (rates: {summary}); "
        f"at least {p['threshold']} required.",
        rates=_capped(rates.rates),
        counts=_capped(rates.counts),
    )


def _capped(values: Mapping[str, Any]) -> dict[str, Any]:
    return dict(list(values.items())[:_MAX_GROUPS])


class _Redactor:
    """Turns failing rows into JSON-safe dicts with personal data replaced by a marker."""

    def __init__(self, frame: pl.DataFrame, sensitive: set[str]) -> None:
        self._frame = frame
        self._sensitive = sensitive
        self._classification: Classification | None = None

    def _labels(self) -> Classification:
        if self._classification is None:
            from keel.data._classify import classify_frame

            self._classification = classify_frame(self._frame, sample_size=10_000)
        return self._classification

    def rows(self, failing: pl.DataFrame, first: Sequence[str]) -> tuple[dict[str, Any], ...]:
        from keel.data._detectors import Sensitivity, detect_value

        labels = self._labels()
        personal = set(labels.columns_at_least(Sensitivity.CONFIDENTIAL)) | self._sensitive
        index = failing.columns[0]  # the row number
        ordered = [*dict.fromkeys([index, *first, *failing.columns])][:_MAX_SHOWN_COLUMNS]
        out = []
        for row in failing.head(MAX_FAILING_ROWS).select(ordered).iter_rows(named=True):
            clean: dict[str, Any] = {}
            for name, value in row.items():
                if value is None or name == index:
                    clean[name] = value
                elif name in personal:
                    cats = labels.columns[name].categories if name in labels.columns else ()
                    clean[name] = f"[redacted: {', '.join(cats) or 'sensitive'}]"
                elif (found := detect_value(value)) is not None:
                    clean[name] = f"[redacted: {found.category}]"
                else:
                    clean[name] = _json_safe(value)
            out.append(clean)
        return tuple(out)


def _json_safe(value: object) -> Any:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value.isoformat() if isinstance(value, date | datetime) else str(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"
