"""The outcome of each kind of check, as a ``CheckResult`` with a message that reads well.

Bias checks report what was measured even when they fail on degenerate data: the threshold,
the groups' rates (or shares) and the rows they were measured over, for at most ``LISTED``
groups, the most unequal (``unequal_groups``: the lowest and highest rates or shares, and the
groups the result names), with ``unlisted`` counting the others, each named at most
``NAME_WIDTH`` characters (``keel.data._bias``; the null group is ``(null)``), and the groups
left out of the rates with why. A failure on an attribute of many groups of about one row each
says that it is most likely an identifier (``identifier_note``). No row of the data is
shown, only the groups of the sensitive attribute, counts, and a few of the label's values
(with personal data redacted) when ``positive`` matches none of them.

With a privileged group the disparate-impact ratio is two-sided (``GroupRates.impact_ratio``):
the most unequal pair of the privileged group and another, smaller rate over larger, so a
privileged group whose positive rate is 0 while another group's is not fails with observed 0.0,
the widest disparity there is, as a check must: an infinite ratio would pass a one-sided rule,
and an empty observed value would read as "not measured". A compliance officer reading the
report sees a failed measurement with a number to set against the threshold; the details say
which ratio was reported (``measure``) and name the least and the most favoured groups, and the
message says that the privileged group is the one never selected (most likely a swapped
'privileged' or 'positive').
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.data._bias import (
    LISTED,
    GroupRates,
    Redact,
    find_group,
    group_name,
    group_names,
    group_rates,
    group_shares,
    identifier_note,
    listed,
    shown_rates,
    unequal_groups,
)
from keel.data._checks import Check, CheckResult, as_datetime, human_age
from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

    from keel.data._redact import Redactor

__all__ = [
    "bias_result",
    "bias_threshold",
    "dtype_matches",
    "frame_check",
    "freshness",
    "result",
    "row_result",
]


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


def bias_threshold(check: Check) -> Any:
    """The bound a bias check compares with: ``min_share``, ``max_difference`` or
    ``threshold``."""
    key = {"representation": "min_share", "positive_rate_parity": "max_difference"}
    return check.params[key.get(check.kind, "threshold")]


def bias_result(frame: pl.DataFrame, check: Check, redact: Redact | None = None) -> CheckResult:
    """A bias check's outcome. With nothing to measure (no rows, fewer than two groups to
    compare, no row with the positive label) it fails with the reason: a parity that holds
    only because nothing was measured must not pass a gate. Every failure shows the check's
    threshold and, as far as they were measured, the groups' rates and counts, and says when
    the attribute is most likely an identifier; ``redact`` (``Redactor.values``) replaces
    personal data among the label values a message names."""
    outcome = _bias_outcome(frame, check, redact)
    if outcome.passed:
        return outcome
    note = identifier_note(check.column or "", _groups_met(frame, check.column or ""), frame.height)
    return replace(outcome, message=outcome.message + note) if note else outcome


def _groups_met(frame: pl.DataFrame, attribute: str) -> int:
    import polars as pl

    try:
        return int(frame.get_column(attribute).n_unique())
    except pl.exceptions.PolarsError:  # a column of lists, say: no groups (see _bias._groups)
        return 0


def _bias_outcome(frame: pl.DataFrame, check: Check, redact: Redact | None) -> CheckResult:
    p = check.params
    attribute = check.column or ""
    try:
        if check.kind == "representation":
            return _representation(frame, check)
        rates = group_rates(
            frame, attribute, p["label"], p["positive"], min_count=p["min_count"], redact=redact
        )
    except InvalidInputError as exc:
        return _not_measured(check, frame.height, exc)
    limit = bias_threshold(check)
    key, also = None, []
    try:
        if check.kind == "disparate_impact" and p["privileged"] is not None:
            # None: no such group (the null group is never the privileged one)
            key = find_group(p["privileged"], frame.schema[attribute], rates.rows)
            if key in rates.rates and len(rates.rates) > 1:
                also = [key, rates.most_unequal(key)]
    except InvalidInputError as exc:  # a privileged value of the wrong kind: with the groups
        names = _names(rates, [])
        return result(check, False, None, limit, exc.message, **_rate_details(rates, names))
    names = _names(rates, also)
    extra = _rate_details(rates, names)
    if (reason := _unmeasurable(check, frame.height, rates)) is not None:
        return result(check, False, None, limit, reason, **extra)
    label, positive = f"{p['label']:.40}", f"{p['positive']!r:.30}"
    if check.kind == "positive_rate_parity":
        diff = rates.difference
        return result(
            check,
            diff <= limit,
            round(diff, 6),
            limit,
            f"Positive rate ({label} = {positive}) differs by {diff:.2%} across "
            f"{attribute:.40} groups ({shown_rates(rates.rates)}); at most {limit:.2%} allowed.",
            **extra,
        )
    if p["privileged"] is not None:
        if not also:
            return result(
                check, False, None, limit, _privileged_missing(check, key, rates), **extra
            )
        top = also[1]
        if rates.rates[key] == 0 and rates.rates[top] > 0:
            return _privileged_never_positive(check, key, top, rates, extra, names)
        extra["privileged"] = names[key]
    ratio = rates.impact_ratio(key)
    between = ""
    if key is not None:
        other = also[1]
        favoured = key if rates.rates[key] > rates.rates[other] else other
        between = (
            f" between the privileged group {group_name(key)} and {group_name(other)}, the "
            f"most unequal pair{'' if ratio == 1 else f' ({group_name(favoured)} favoured)'},"
        )
        both_ways = f" (either way round: within {limit:g}-{1 / limit:.3g} times)" if limit else ""
    else:
        both_ways = ""
    return result(
        check,
        ratio >= limit,
        round(ratio, 6),
        limit,
        f"Disparate-impact ratio{between} is {ratio:.3f} (rates: "
        f"{shown_rates(rates.rates)}); at least {limit} required{both_ways}.",
        **extra,
    )


def _representation(frame: pl.DataFrame, check: Check) -> CheckResult:
    attribute, limit = check.column or "", check.params["min_share"]
    shares = group_shares(frame, attribute)
    if not shares:
        return result(
            check,
            False,
            None,
            limit,
            f"No rows to measure the representation of {attribute:.40} in.",
        )
    lowest = min(shares.values())
    under = sorted((g for g, s in shares.items() if s < limit), key=lambda g: shares[g])
    message = (
        f"Every group of {attribute:.40} holds at least {limit:.1%} of the rows."
        if not under
        else f"Groups of {attribute:.40} under {limit:.1%} of the rows: "
        + listed(under, lambda g: f"{group_name(g)} ({shares[g]:.2%})")
        + "."
    )
    rows = {g: round(s * frame.height) for g, s in shares.items()}
    return result(check, not under, round(lowest, 6), limit, message, **_share_details(rows))


def _share_details(rows: Mapping[Any, int]) -> dict[str, Any]:
    total = sum(rows.values())
    shares = {g: n / total for g, n in rows.items()}
    names = group_names(unequal_groups(shares))
    return {
        "shares": _table(shares, names),
        "counts": _table(rows, names),
        "groups": len(rows),
        **_unlisted(rows, names),
    }


def _unlisted(groups: Mapping[Any, Any], names: Mapping[Any, str]) -> dict[str, int]:
    """``{"unlisted": n}``: the groups met that a report's tables do not list, if any."""
    unlisted = sum(1 for g in groups if g not in names)
    return {"unlisted": unlisted} if unlisted else {}


def _not_measured(check: Check, rows: int, exc: InvalidInputError) -> CheckResult:
    """A bias check failed on what its data cannot measure (one group, every label null, no
    positive label, a label of another type): the reason, the threshold, and the groups as
    far as they were counted."""
    extra: dict[str, Any] = {}
    measured = exc.details.get("measured")
    counted = exc.details.get("rows")
    if isinstance(measured, GroupRates):
        extra = _rate_details(measured, _names(measured))
    elif isinstance(counted, dict) and rows:
        extra = _share_details(counted)
    return result(check, False, None, bias_threshold(check), exc.message, **extra)


def _names(rates: GroupRates, also: Sequence[Any] = ()) -> dict[Any, str]:
    """One distinct name per group shown (the most unequal groups measured, with ``also``,
    the groups a result names, and the first groups left out), the same in every mapping of a
    report."""
    shown = [*unequal_groups(rates.rates, LISTED, also), *list(rates.left_out)[:LISTED], *also]
    return group_names(dict.fromkeys(shown))


def _rate_details(rates: GroupRates, names: Mapping[Any, str]) -> dict[str, Any]:
    """Per group listed (those ``names`` names): its positive rate and the rows with a known
    label it was measured over; the groups left out, with their rows and labelled rows; how
    many groups are not listed; the rows with no label."""
    extra: dict[str, Any] = {
        "rates": _table(rates.rates, names),
        "counts": _table(rates.counts, names),
        "groups": len(rates.rates),
        **_unlisted(rates.rows, names),
    }
    if rates.unlabelled:
        extra["unlabelled"] = rates.unlabelled
    if left := rates.left_out:
        rows = rates.rows
        extra["left_out"] = _table(
            {g: {"rows": rows.get(g, 0), "labelled": n} for g, n in left.items()}, names
        )
    return extra


def _table(values: Mapping[Any, Any], names: Mapping[Any, str]) -> dict[str, Any]:
    """``values`` (keyed by group) of the groups listed (those ``names`` names), keyed by the
    groups' names."""
    return {names[g]: v for g, v in values.items() if g in names}


def _unmeasurable(check: Check, rows: int, rates: GroupRates) -> str | None:
    """Why a parity check has nothing to measure, or None when it has."""
    p = check.params
    attribute = f"{check.column or '':.40}"
    if not rows:
        return f"No rows to measure the positive rate of {p['label']:.40} across {attribute} in."
    left = _left_out(check, rates)
    if len(rates.rates) < 2:
        kept = f" with at least {p['min_count']} rows" if p["min_count"] > 1 else ""
        only = [f"{group_name(g)} ({r:.2%})" for g, r in rates.rates.items()]
        measured = f"only {only[0]} is measured" if only else "none is measured"
        return (
            f"Fewer than two groups of {attribute}{kept}: {measured}, so there is nothing "
            f"to compare{left}."
        )
    if not rates.positives:
        return (
            f"No row of the groups measured has the positive label ({p['label']:.40} = "
            f"{p['positive']!r:.30}): every rate is 0, which measures nothing{left}; set "
            "'positive' to the label's positive value, or lower 'min_count'."
        )
    return None


def _left_out(check: Check, rates: GroupRates) -> str:
    """``; left out: 'm' (every label null, 3 rows), …`` for a message, or nothing."""
    left = list(rates.left_out)
    if not left:
        return ""
    return "; left out: " + listed(left, lambda g: f"{group_name(g)} ({_why(check, g, rates)})")


def _why(check: Check, group: Any, rates: GroupRates) -> str:
    labelled, rows = rates.labelled.get(group, 0), rates.rows.get(group, 0)
    if not labelled:
        return f"every label null, {rows:,} row{'s' * (rows != 1)}"
    of = f" of {rows:,}" if rows != labelled else ""
    return (
        f"{labelled:,} labelled row{'s' * (labelled != 1)}{of}, "
        f"under min_count {check.params['min_count']}"
    )


def _privileged_missing(check: Check, key: Any, rates: GroupRates) -> str:
    """Why the privileged group has no rate: it is not in the data, or was left out (every
    label null, or too few labelled rows for ``min_count``), with the groups there are."""
    p = check.params
    attribute = f"{check.column or '':.40}"
    measured = listed(list(rates.rates))
    if key is None:
        every = listed(list(rates.rows))
        return (
            f"The privileged group {p['privileged']!r:.40} has no rows in {attribute} "
            f"(its groups: {every}); set 'privileged' to one of them."
        )
    labelled = rates.labelled.get(key, 0)
    if not labelled:
        rows = rates.rows.get(key, 0)
        return (
            f"The privileged group {group_name(key)} has {rows:,} row{'s' * (rows != 1)} in "
            f"{attribute} but every one has a null label ({p['label']:.40}), so it has no rate "
            f"to compare the others' with (groups measured: {measured}); check the labels of "
            "that group."
        )
    return (
        f"The privileged group {group_name(key)} has only {labelled:,} row"
        f"{'s' * (labelled != 1)} with a known label, fewer than min_count {p['min_count']}, "
        f"so it was left out of the rates (groups measured: {measured}); lower 'min_count' "
        "or gather more rows of that group."
    )


def _privileged_never_positive(
    check: Check,
    key: Any,
    top: Any,
    rates: GroupRates,
    extra: dict[str, Any],
    names: Mapping[Any, str],
) -> CheckResult:
    """The privileged group's rate is 0 while ``top``'s is not: the check fails as a measured,
    total disparity (see the module docstring)."""
    limit = check.params["threshold"]
    rows = rates.counts[key]
    return result(
        check,
        False,
        0.0,
        limit,
        f"The ratio over the privileged group {group_name(key)} divides by its positive rate, "
        f"0 (none of its {rows:,} rows is positive), while {group_name(top)} has "
        f"{rates.rates[top]:.2%}: the privileged group is the least favoured, the widest "
        f"disparity; reported as 0.000, the lowest rate over the highest (at least {limit} "
        "required). Check 'privileged' and 'positive'.",
        **extra,
        privileged=names[key],
        measure="lowest rate over the highest",
        least_favoured=names[key],
        most_favoured=names[top],
    )
