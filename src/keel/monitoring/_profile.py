"""Reference profiles: what drift needs from a reference column, computed once.

A numeric column keeps its quantile bin edges and counts (PSI, chi-square, Jensen-Shannon),
its order statistics at a fixed resolution (KS and Wasserstein) and a display histogram; a
categorical column keeps its category counts. A monitor profiles its reference dataset
version once and compares every window against the profile.

Values are compared by what they mean, not how they are stored: dates, date-times, times and
durations as seconds (whatever their time unit), booleans as 0 and 1 against numbers, and a
category ``1.0`` of a float column as ``1``; NaN and infinities are missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import InvalidInputError
from keel.monitoring._stats import bin_counts, quantile_edges, separate_atoms

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import polars as pl

__all__ = [
    "ColumnProfile",
    "ReferenceProfile",
    "as_frame",
    "categorical_counts",
    "category_names",
    "is_categorical",
    "numeric_values",
    "profile_reference",
    "temporal_seconds",
]

Kind = Literal["numeric", "categorical"]
#: Order statistics kept per numeric reference column (its quantiles at this resolution).
REFERENCE_POINTS = 100_000
#: Rows of a window beyond which KS and Wasserstein are estimated on an even sample of this
#: size (PSI, chi-square and Jensen-Shannon always count every row).
SAMPLE_ROWS = 50_000
MAX_CATEGORIES = 200
#: Categories whose names a profile keeps, to tell a window's new categories from the tail
#: folded into ``OTHER`` (beyond this many, every category outside the top ones is "other").
MAX_KNOWN = 100_000
OTHER = "__other__"
DISPLAY_BINS = 20


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """One reference column: counts, edges, order statistics (see module docstring)."""

    name: str
    kind: Kind
    rows: int
    nulls: int
    edges: Any = None  # numeric: inner quantile edges (float64 array)
    counts: Any = None  # numeric: counts per quantile bin; categorical: per category
    ordered: Any = None  # numeric: sorted order statistics (float64 array)
    display_edges: Any = None  # numeric: equal-width edges of the report's histogram
    display_counts: Any = None
    categories: tuple[str, ...] = ()
    distinct: int = 0
    known: frozenset[str] | None = None  # categorical: every category (up to MAX_KNOWN)

    @property
    def valid(self) -> int:
        return self.rows - self.nulls

    @property
    def constant_value(self) -> Any:
        """The single value of a constant column, else None."""
        if self.distinct != 1:
            return None
        if self.kind == "categorical":
            return self.categories[0]
        return float(self.ordered[0])


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """Profiles of a reference's columns by name."""

    columns: Mapping[str, ColumnProfile] = field(default_factory=dict)
    rows: int = 0

    def __contains__(self, name: object) -> bool:
        return name in self.columns


def as_frame(data: Any) -> pl.DataFrame:
    """A Polars frame from a Polars/pandas frame, an Arrow table, or a mapping of arrays."""
    import polars as pl

    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, Mapping):
        return pl.DataFrame({str(k): v for k, v in data.items()})
    try:
        converted = (
            pl.from_arrow(data)
            if hasattr(data, "schema") and hasattr(data, "num_rows")
            else pl.from_pandas(data)
        )
    except (TypeError, ValueError, ImportError) as exc:
        raise InvalidInputError(
            f"Cannot read {type(data).__name__} as a table: give a Polars or pandas frame, an "
            "Arrow table, or a mapping of column name to values."
        ) from exc
    assert isinstance(converted, pl.DataFrame)
    return converted


def is_categorical(series: pl.Series) -> bool:
    """Strings, categoricals, enums and booleans are categorical; numbers are numeric."""
    import polars as pl

    dtype = series.dtype
    return dtype in (pl.String, pl.Categorical, pl.Boolean) or isinstance(dtype, pl.Enum)


def temporal_seconds(series: pl.Series) -> pl.Series:
    """Dates, date-times, times and durations as float seconds, whatever their time unit.

    Date-times count from the Unix epoch (an aware one as its UTC instant), dates from the
    epoch at midnight, times from midnight; a ``datetime[ns]`` window thus meets a
    ``datetime[us]`` or ``date`` reference on one scale.
    """
    import polars as pl

    dtype = series.dtype
    if dtype == pl.Time:
        return series.to_physical().cast(pl.Float64) / 1e9
    if isinstance(dtype, pl.Duration):
        return series.dt.total_microseconds().cast(pl.Float64) / 1e6
    return series.dt.epoch("us").cast(pl.Float64) / 1e6


def numeric_values(series: pl.Series) -> tuple[npt.NDArray[np.float64], int] | None:
    """Finite values as float64 and the count of missing ones, or None if not numeric.

    Missing values are nulls, NaN and infinities, each counted once. Temporal values are
    seconds (``temporal_seconds``), booleans 0 and 1.
    """
    import numpy as np
    import polars as pl

    dtype = series.dtype
    if dtype == pl.Null:
        return np.zeros(0), series.len()
    if dtype.is_temporal():
        series = temporal_seconds(series)
    elif not dtype.is_numeric() and dtype != pl.Boolean:
        return None
    values = series.cast(pl.Float64).to_numpy()  # a null becomes NaN
    finite = np.isfinite(values)
    if finite.all():
        return values, 0
    kept: npt.NDArray[np.float64] = values[finite]
    return kept, int(values.size - kept.size)


def category_names(series: pl.Series) -> pl.Series:
    """The values as category names: ``"1"`` for a float ``1.0`` (as an integer column
    writes it), NaN and infinities as null; other values as their text."""
    import polars as pl

    if not series.dtype.is_float():
        return series.cast(pl.String)
    v = pl.col("v")
    whole = v.is_finite() & (v == v.round(0)) & (v.abs() < 2.0**53)
    named = pl.DataFrame({"v": series.cast(pl.Float64)}).select(
        pl.when(whole)
        .then(v.cast(pl.Int64).cast(pl.String))
        .when(v.is_finite())
        .then(v.cast(pl.String))
        .alias("v")
    )
    return named.get_column("v").alias(series.name)


def categorical_counts(series: pl.Series) -> tuple[dict[str, int], int]:
    """Counts per category (named by ``category_names``) and the count of missing values."""
    import polars as pl

    if series.dtype.is_float():
        series = category_names(series)
    nulls = series.null_count()
    if series.len() == nulls:
        return {}, nulls
    # a group-by count (on a categorical's codes) costs less than value_counts under load
    counted = (
        pl.DataFrame({"v": series})
        .group_by("v")
        .len()
        .with_columns(pl.col("v").cast(pl.String))
        .sort(["len", "v"], descending=[True, False])  # ties by name: the same profile each time
    )
    names = counted.get_column("v").to_list()
    numbers = counted.get_column("len").to_list()
    return {str(k): int(v) for k, v in zip(names, numbers, strict=True) if k is not None}, nulls


def _numeric_profile(name: str, series: pl.Series, bins: int) -> ColumnProfile | None:
    import numpy as np

    found = numeric_values(series)
    if found is None:
        return None
    values, nulls = found
    if values.size == 0:
        return ColumnProfile(name, "numeric", series.len(), series.len())
    ordered = np.sort(values)
    edges = separate_atoms(ordered, quantile_edges(ordered, bins), bins)
    # bin i holds the values with i edges at or below them (as bin_counts counts the window)
    counts = np.diff(np.searchsorted(ordered, edges, side="left"), prepend=0, append=ordered.size)
    distinct = 1 if ordered[0] == ordered[-1] else 2
    lo, hi = float(ordered[0]), float(ordered[-1])
    if ordered.size > REFERENCE_POINTS:
        picks = np.arange(REFERENCE_POINTS) + 0.5
        picks = (picks * ordered.size / REFERENCE_POINTS).astype(np.intp)
        ordered = ordered[picks]
    display = np.linspace(lo, hi if hi > lo else lo + 1.0, DISPLAY_BINS + 1)
    display_counts = np.diff(
        np.searchsorted(ordered, display[1:-1], side="left"), prepend=0, append=ordered.size
    )
    return ColumnProfile(
        name,
        "numeric",
        series.len(),
        nulls,
        edges=edges,
        counts=counts.astype(np.int64),
        ordered=ordered,
        display_edges=display,
        display_counts=display_counts * (values.size / ordered.size),
        distinct=distinct,
    )


def _categorical_profile(name: str, series: pl.Series) -> ColumnProfile:
    import numpy as np

    counts, nulls = categorical_counts(series)
    top = list(counts.items())[:MAX_CATEGORIES]
    rest = sum(counts.values()) - sum(v for _, v in top)
    categories = [k for k, _ in top] + ([OTHER] if rest else [])
    numbers = [v for _, v in top] + ([rest] if rest else [])
    return ColumnProfile(
        name,
        "categorical",
        series.len(),
        nulls,
        counts=np.asarray(numbers, dtype=np.int64),
        categories=tuple(categories),
        distinct=len(counts),
        known=frozenset(counts) if rest and len(counts) <= MAX_KNOWN else None,
    )


def profile_reference(
    reference: Any,
    *,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    bins: int = 10,
) -> ReferenceProfile:
    """Profile the columns of ``reference`` (every column, or ``features``).

    A column is categorical when named in ``categorical`` or when it holds strings,
    categories or booleans; otherwise numeric.
    """
    if bins < 2 or bins > 1000:
        raise InvalidInputError(f"bins must be between 2 and 1000; got {bins}.")
    frame = as_frame(reference)
    names = list(features) if features is not None else list(frame.columns)
    forced = set(categorical)
    columns: dict[str, ColumnProfile] = {}
    for name in names:
        if name not in frame.columns:
            continue
        series = frame.get_column(name)
        made = None
        if name not in forced and not is_categorical(series):
            made = _numeric_profile(name, series, bins)
        columns[name] = made or _categorical_profile(name, series)
    return ReferenceProfile(columns, frame.height)


def profile_counts(profile: ColumnProfile, values: npt.NDArray[np.float64]) -> Any:
    """Counts of ``values`` over the profile's quantile bins."""
    return bin_counts(values, profile.edges)
