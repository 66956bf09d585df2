"""Checks of a frame against a reference: distribution shift, null rate, categories, cardinality."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from keel.data._stats import ks_statistic, psi_categorical, psi_numeric

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import polars as pl

    from keel.data._checks import Check

__all__ = ["reference_check"]

_MAX_LISTED = 20

Outcome = tuple[Any, Any, bool, str, dict[str, Any]]
#: (column, values) -> the values as a report may show them
Redact = Callable[[str, Sequence[Any]], list[Any]]


def _numeric(series: pl.Series) -> npt.NDArray[np.float64] | None:
    """Non-null, finite values as float64, or None when the column is not numeric/temporal.

    Dates, date-times, times and durations are seconds whatever their time unit (a date-time
    from the Unix epoch, an aware one as its UTC instant; a date at midnight; a time from
    midnight), so a ``datetime[ns]`` version meets a ``datetime[us]`` or ``date`` reference
    on one scale.
    """
    import numpy as np
    import polars as pl

    dtype = series.dtype
    if dtype == pl.Time:
        series = series.to_physical().cast(pl.Float64) / 1e9
    elif isinstance(dtype, pl.Duration):
        series = series.dt.total_microseconds().cast(pl.Float64) / 1e6
    elif dtype.is_temporal():
        series = series.dt.epoch("us").cast(pl.Float64) / 1e6
    elif not dtype.is_numeric():
        return None
    values = series.drop_nulls().cast(pl.Float64).to_numpy()
    result: npt.NDArray[np.float64] = values[np.isfinite(values)]
    return result


def _categories(series: pl.Series, *, boolean: bool) -> pl.Series:
    """Non-missing values as category names, named alike whatever the column's type: a float
    ``1.0`` as ``"1"`` (as an integer column has it), NaN and infinities dropped, and with
    ``boolean`` (the other side holds booleans) numbers 1 and 0 as ``"true"`` and ``"false"``.
    """
    import polars as pl

    v = pl.col("value")
    name: pl.Expr = v.cast(pl.String)
    if series.dtype.is_float():
        whole = v.is_finite() & (v == v.round(0)) & (v.abs() < 2.0**53)
        name = (
            pl.when(whole)
            .then(v.cast(pl.Int64).cast(pl.String))
            .when(v.is_finite())
            .then(name)
            .otherwise(None)
        )
    if boolean and series.dtype.is_numeric():
        name = (
            pl.when(v == 1).then(pl.lit("true")).when(v == 0).then(pl.lit("false")).otherwise(name)
        )
    named = pl.DataFrame({"value": series}).select(name.alias("value"))
    return named.get_column("value").drop_nulls()


def reference_check(
    frame: pl.DataFrame,
    reference: pl.DataFrame,
    check: Check,
    *,
    redact: Redact | None = None,
) -> Outcome:
    """Run one reference check; returns (observed, threshold, passed, message, details).

    ``redact`` turns the values a check lists (the new categories) into what a report may show:
    a marker in place of personal data (``Redactor.values``). Without it they are listed as is.
    """
    column = check.column or ""
    current, ref = frame.get_column(column), reference.get_column(column)
    p = check.params
    if check.kind == "distribution_shift":
        return _shift(current, ref, p["method"], float(p["max"]), int(p["bins"]))
    if check.kind == "null_rate_change":
        now_rate = current.null_count() / max(current.len(), 1)
        ref_rate = ref.null_count() / max(ref.len(), 1)
        change = abs(now_rate - ref_rate)
        return (
            round(change, 6),
            p["max"],
            change <= p["max"],
            f"Null rate {now_rate:.2%} against {ref_rate:.2%} in the reference "
            f"(change {change:.2%}; at most {p['max']:.2%} allowed).",
            {"null_rate": now_rate, "reference_null_rate": ref_rate},
        )
    if check.kind == "new_categories":
        return _new_categories(current, ref, int(p["max"]), redact)
    # cardinality_change
    n_now, n_ref = current.n_unique(), ref.n_unique()
    ratio = abs(n_now - n_ref) / max(n_ref, 1)
    return (
        round(ratio, 6),
        p["max_ratio"],
        ratio <= p["max_ratio"],
        f"{n_now:,} distinct values against {n_ref:,} in the reference "
        f"(change {ratio:.1%}; at most {p['max_ratio']:.1%} allowed).",
        {"distinct": n_now, "reference_distinct": n_ref},
    )


def _shift(current: pl.Series, ref: pl.Series, method: str, limit: float, bins: int) -> Outcome:
    import polars as pl

    if current.dtype.is_nested() or ref.dtype.is_nested() or current.dtype == pl.Object:
        return (
            None,
            limit,
            False,
            f"A distribution shift is measured on a numeric, date or categorical column; "
            f"{current.name} is {current.dtype}.",
            {},
        )
    a, b = _numeric(ref), _numeric(current)
    present = _present(a, ref), _present(b, current)
    if 0 in present:
        where = "the reference" if present[0] == 0 else "this version"
        return (
            None,
            limit,
            False,
            f"No distribution to compare: every value of {current.name} in {where} is missing "
            "(null, NaN or infinite). Fill the column, or watch it with null_rate_change.",
            {"method": method, "reference_rows": present[0], "rows": present[1]},
        )
    if method == "ks":
        if a is None or b is None:
            return (
                None,
                limit,
                False,
                f"KS needs a numeric column; {current.name} is {current.dtype}. "
                "Use method: psi for categories.",
                {},
            )
        stat = ks_statistic(a, b)
        return (
            round(stat, 6),
            limit,
            stat <= limit,
            f"KS statistic {stat:.4f} against the reference; at most {limit} allowed.",
            {"method": "ks", "reference_rows": int(a.size), "rows": int(b.size)},
        )
    if a is not None and b is not None and current.dtype != pl.Boolean:
        value = psi_numeric(a, b, bins=bins)
        details: dict[str, Any] = {"method": "psi", "bins": bins}
    else:
        # Missing values are left out, as for numbers (null_rate_change watches them). Fixed
        # names, so no column name (``n``, say) collides with the counts'.
        ref_counts = _categories(ref, boolean=current.dtype == pl.Boolean).value_counts(
            name="reference"
        )
        now_counts = _categories(current, boolean=ref.dtype == pl.Boolean).value_counts(
            name="current"
        )
        joined = ref_counts.join(now_counts, on="value", how="full", coalesce=True)
        joined = joined.with_columns(pl.col("reference", "current").fill_null(0))
        value = psi_categorical(
            joined.get_column("value").to_list(),
            joined.get_column("reference").to_list(),
            joined.get_column("current").to_list(),
        )
        details = {"method": "psi", "categories": joined.height}
    return (
        round(value, 6),
        limit,
        value <= limit,
        f"PSI {value:.4f} against the reference; at most {limit} allowed.",
        details,
    )


def _present(values: npt.NDArray[np.float64] | None, series: pl.Series) -> int:
    return int(values.size) if values is not None else series.len() - series.null_count()


def _new_categories(
    current: pl.Series, ref: pl.Series, limit: int, redact: Redact | None
) -> Outcome:
    import polars as pl

    now_values = pl.DataFrame({"v": current.cast(pl.String).unique().drop_nulls()})
    ref_values = pl.DataFrame({"v": ref.cast(pl.String).unique().drop_nulls()})
    new = now_values.join(ref_values, on="v", how="anti").sort("v")
    count = new.height
    listed = new.get_column("v").head(_MAX_LISTED).to_list()
    if redact is not None:
        listed = redact(current.name, listed)
    message = (
        "No category outside the reference."
        if not count
        else f"{count:,} categories not in the reference: {', '.join(map(str, listed))}"
        + (" …" if count > _MAX_LISTED else "")
        + f" (at most {limit} allowed)."
    )
    return count, limit, count <= limit, message, {"new": listed}
