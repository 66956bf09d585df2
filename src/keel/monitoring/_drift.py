"""Drift of a window against a reference: every statistic per feature, a status per feature.

Pure: frames (or a precomputed ReferenceProfile) in, a DriftResult out; no I/O, no clock.
Bad input never crashes and never yields NaN: a feature absent from the reference or the
window, an all-null window, a constant column or too few rows each get an explicit status.

A distance (PSI, Jensen-Shannon, chi-square, KS, Wasserstein) has no notion of sample size:
a window of 20 values from the reference's own distribution has a PSI near 1. So a distance
beyond its limit counts only when the matching test finds the difference significant (as
Evidently switches to tests on small samples and NannyML sizes its thresholds to the chunk):
the chi-square test over the same bins or categories for PSI, Jensen-Shannon and chi-square,
the KS test for KS and Wasserstein, at ``significance`` (0.05).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError
from keel.monitoring._drift_model import (
    DRIFT_METRICS,
    NUMERIC_ONLY,
    DriftResult,
    DriftThreshold,
    FeatureDrift,
    Status,
    parse_thresholds,
)
from keel.monitoring._profile import (
    OTHER,
    SAMPLE_ROWS,
    ColumnProfile,
    ReferenceProfile,
    as_frame,
    categorical_counts,
    numeric_values,
    profile_reference,
)
from keel.monitoring._stats import (
    bin_counts,
    chi_square,
    jensen_shannon,
    ks_wasserstein,
    psi,
)

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DRIFT_METRICS",
    "DriftResult",
    "DriftThreshold",
    "FeatureDrift",
    "compute_drift",
    "parse_thresholds",
]


#: The test that decides whether a distance beyond its limit is more than sampling noise.
_TEST_OF = {
    "psi": "chi2_pvalue",
    "js": "chi2_pvalue",
    "chi2": "chi2_pvalue",
    "ks": "ks_pvalue",
    "wasserstein": "ks_pvalue",
}
_BOOLEAN_NAMES = {"1": "true", "0": "false"}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _decide(
    threshold: DriftThreshold, stats: Mapping[str, float | None], significance: float | None
) -> tuple[Status, str]:
    """The threshold's status, unless a distance beyond it is within sampling noise."""
    value = stats[threshold.metric]
    if value is None:
        return "ok", ""
    status = threshold.status(value)
    test = _TEST_OF.get(threshold.metric)
    p_value = stats.get(test) if test else None
    if status == "ok" or significance is None or p_value is None or p_value < significance:
        return status, ""
    return "ok", (
        f"{threshold.metric} {value:.4g} is beyond the {status} limit, but the window is too "
        f"small to tell it from sampling noise ({test} {p_value:.3g}, not below "
        f"{significance:g})."
    )


def _shares(counts: Any) -> list[float]:
    total = float(sum(counts))
    return [round(float(c) / total, 6) if total else 0.0 for c in counts]


def _numeric(
    ref: ColumnProfile,
    series: pl.Series,
    threshold: DriftThreshold,
    min_rows: int,
    significance: float | None,
) -> FeatureDrift:
    import numpy as np
    import polars as pl

    base: dict[str, Any] = {"reference_rows": ref.valid, "current_rows": series.len()}
    found = numeric_values(series)
    if found is None:
        examples = series.drop_nulls().cast(pl.String).unique().head(3).to_list()
        return FeatureDrift(
            ref.name,
            "numeric",
            "type_mismatch",
            f"Numeric in the reference, but the window holds {series.dtype} values (e.g. "
            f"{', '.join(map(repr, examples))[:120]}); redacted or mistyped inputs cannot be "
            "compared.",
            **base,
        )
    values, nulls = found
    base["current_nulls"] = nulls
    if values.size == 0:
        return FeatureDrift(
            ref.name, "numeric", "all_null", "Every value in the window is missing.", **base
        )
    if ref.valid == 0:
        return FeatureDrift(
            ref.name, "numeric", "all_null", "Every value in the reference is missing.", **base
        )
    if values.size < min_rows:
        return FeatureDrift(
            ref.name,
            "numeric",
            "insufficient_data",
            f"{values.size} values in the window; at least {min_rows} are needed.",
            **base,
        )
    counts = bin_counts(values, ref.edges)
    sampled = values.size > SAMPLE_ROWS
    if sampled:
        step = math.ceil(values.size / SAMPLE_ROWS)
        sample = np.sort(values[::step])
    else:
        sample = np.sort(values)
    ks, ks_p, wasserstein = ks_wasserstein(ref.ordered, sample, reference_size=ref.valid)
    chi2, chi2_p = chi_square(ref.counts, counts)
    stats: dict[str, float | None] = {
        "psi": psi(ref.counts, counts),
        "ks": ks,
        "ks_pvalue": ks_p,
        "chi2": chi2,
        "chi2_pvalue": chi2_p,
        "js": jensen_shannon(ref.counts, counts),
        "wasserstein": wasserstein,
        "mean": float(values.mean()),
        "reference_null_share": ref.nulls / ref.rows if ref.rows else 0.0,
        "null_share": nulls / series.len() if series.len() else 0.0,
    }
    stats = {k: (_finite(v) if v is not None else None) for k, v in stats.items()}
    value = stats[threshold.metric]
    status, message = _decide(threshold, stats, significance)
    constant = ref.constant_value
    if constant is not None:
        if sample[0] == sample[-1] == constant:
            status, message = "constant", f"Constant ({constant:g}) in the reference and window."
        else:
            status = "drift"
            message = f"Constant ({constant:g}) in the reference; the window varies."
    display = np.diff(
        np.searchsorted(sample, ref.display_edges[1:-1], side="left"), prepend=0, append=sample.size
    )
    return FeatureDrift(
        ref.name,
        "numeric",
        status,
        message,
        metric=threshold.metric,
        value=value,
        threshold=threshold,
        stats=stats,
        sampled=sampled,
        histogram={
            "edges": [float(e) for e in ref.display_edges],
            "reference": _shares(ref.display_counts),
            "current": _shares(display),
        },
        **base,
    )


def _categorical(
    ref: ColumnProfile,
    series: pl.Series,
    threshold: DriftThreshold,
    min_rows: int,
    significance: float | None,
) -> FeatureDrift:
    if threshold.metric in NUMERIC_ONLY:
        raise InvalidInputError(
            f"Feature {ref.name!r:.60} is categorical; {threshold.metric} applies to numeric "
            "features. Use psi, js, chi2 or chi2_pvalue for it."
        )
    counted, nulls = categorical_counts(series)
    if series.dtype.is_numeric() and set(ref.categories) <= {"true", "false"}:
        counted = {_BOOLEAN_NAMES.get(k, k): v for k, v in counted.items()}  # 1/0 for a boolean
    base: dict[str, Any] = {
        "reference_rows": ref.valid,
        "current_rows": series.len(),
        "current_nulls": nulls,
    }
    if not counted:
        return FeatureDrift(
            ref.name, "categorical", "all_null", "Every value in the window is missing.", **base
        )
    if ref.valid == 0:
        return FeatureDrift(
            ref.name, "categorical", "all_null", "Every value in the reference is missing.", **base
        )
    total = sum(counted.values())
    if total < min_rows:
        return FeatureDrift(
            ref.name,
            "categorical",
            "insufficient_data",
            f"{total} values in the window; at least {min_rows} are needed.",
            **base,
        )
    top = set(ref.categories)
    if OTHER in top:  # the reference's tail is "other"; a category it never had is new
        seen = ref.known
        new = [c for c in counted if c not in top and seen is not None and c not in seen]
    else:
        new = [c for c in counted if c not in top]
    fresh = set(new)
    tail = sum(v for c, v in counted.items() if c not in top and c not in fresh)
    categories = list(ref.categories) + new
    reference = [int(c) for c in ref.counts] + [0] * len(new)
    current = [counted.get(c, 0) for c in ref.categories] + [counted[c] for c in new]
    if tail:  # window categories in the reference's tail count as "other" on both sides
        current[ref.categories.index(OTHER)] += tail
    chi2, chi2_p = chi_square(reference, current)
    stats: dict[str, float | None] = {
        "psi": psi(reference, current),
        "ks": None,
        "ks_pvalue": None,
        "chi2": chi2,
        "chi2_pvalue": chi2_p,
        "js": jensen_shannon(reference, current),
        "wasserstein": None,
        "new_categories": float(len(new)),
        "reference_null_share": ref.nulls / ref.rows if ref.rows else 0.0,
        "null_share": nulls / series.len() if series.len() else 0.0,
    }
    stats = {k: (_finite(v) if v is not None else None) for k, v in stats.items()}
    value = stats[threshold.metric]
    status, noise = _decide(threshold, stats, significance)
    listed = f"New categories: {', '.join(new[:10])[:200]}." if new else ""
    message = " ".join(m for m in (listed, noise) if m)
    if ref.distinct == 1 and len(counted) == 1 and next(iter(counted)) == ref.categories[0]:
        status, message = "constant", f"Constant ({ref.categories[0][:60]}) in both."
    shown = 30
    return FeatureDrift(
        ref.name,
        "categorical",
        status,
        message,
        metric=threshold.metric,
        value=value,
        threshold=threshold,
        stats=stats,
        histogram={
            "categories": categories[:shown],
            "reference": _shares(reference)[:shown],
            "current": _shares(current)[:shown],
        },
        **base,
    )


def _one(
    name: str,
    profile: ReferenceProfile,
    frame: pl.DataFrame,
    threshold: DriftThreshold,
    min_rows: int,
    significance: float | None,
) -> FeatureDrift:
    ref = profile.columns.get(name)
    if ref is None:
        return FeatureDrift(
            name,
            "unknown",
            "missing_in_reference",
            f"The reference has no column {name!r:.60}; add it to the reference dataset or "
            "drop it from the monitor's features.",
            current_rows=frame.height,
        )
    if name not in frame.columns:
        return FeatureDrift(
            name,
            ref.kind,
            "missing_in_current",
            f"The window has no values for {name!r:.60}.",
            reference_rows=ref.valid,
        )
    series = frame.get_column(name)
    if ref.kind == "numeric":
        return _numeric(ref, series, threshold, min_rows, significance)
    return _categorical(ref, series, threshold, min_rows, significance)


def compute_drift(
    reference: Any,
    current: Any,
    *,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    thresholds: Mapping[str, DriftThreshold | Mapping[str, Any]] | None = None,
    default: DriftThreshold | None = None,
    prediction: str | None = None,
    reference_prediction: str | None = None,
    min_rows: int = 10,
    significance: float | None = 0.05,
    workers: int = 1,
) -> DriftResult:
    """Drift of ``current`` against ``reference`` for each feature, and prediction drift.

    Args:
        reference: a frame (Polars, pandas, Arrow, mapping of arrays) or a ReferenceProfile
            made by ``profile_reference`` (profile once, compare many windows).
        current: the window, as a frame.
        features: the columns compared (default: every column of ``current`` except
            ``prediction``).
        categorical: columns compared as categories even if they hold numbers.
        thresholds: per-feature DriftThreshold (or its dict form).
        default: the threshold of features not in ``thresholds`` (PSI 0.2, warning 0.1).
        prediction: the window's prediction column, compared with ``reference_prediction``
            (a reference column: the target or earlier predictions) as prediction drift.
        min_rows: fewer values than this give ``insufficient_data``.
        significance: a distance threshold (psi, js, chi2, ks, wasserstein) beyond its limit
            counts only when the matching test's p-value is below this (the chi-square test
            for psi, js and chi2, the KS test for ks and wasserstein); None lets the distance
            decide alone, however small the window.
        workers: threads comparing features at once (NumPy releases the GIL).
    """
    if significance is not None and not 0.0 < significance < 1.0:
        raise InvalidInputError(
            f"significance must be a p-value between 0 and 1 (0.05 is usual), or None; "
            f"got {significance!r:.40}."
        )
    frame = as_frame(current)
    chosen = default or DriftThreshold()
    per = parse_thresholds(thresholds)
    names = (
        list(features) if features is not None else [c for c in frame.columns if c != prediction]
    )
    unknown = set(per) - set(names) - {prediction, reference_prediction}
    if unknown:
        raise InvalidInputError(
            f"Thresholds name features that are not monitored: {', '.join(sorted(unknown))[:200]}."
        )
    if isinstance(reference, ReferenceProfile):
        profile = reference
    else:
        wanted = [*names, *([reference_prediction] if reference_prediction else [])]
        ref_frame = as_frame(reference)
        profile = profile_reference(
            ref_frame,
            features=[n for n in wanted if n in ref_frame.columns],
            categorical=categorical,
        )

    def run(name: str) -> FeatureDrift:
        return _one(name, profile, frame, per.get(name, chosen), min_rows, significance)

    if workers > 1 and len(names) > 1 and frame.height >= 50_000:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = tuple(pool.map(run, names))
    else:
        results = tuple(run(n) for n in names)
    predicted = None
    if prediction is not None and reference_prediction is not None:
        if prediction not in frame.columns:
            predicted = FeatureDrift(
                prediction, "unknown", "missing_in_current", "The window has no predictions."
            )
        else:
            ref_col = profile.columns.get(reference_prediction)
            series = frame.get_column(prediction)
            threshold = per.get(prediction, chosen)
            if ref_col is None:
                predicted = FeatureDrift(
                    prediction,
                    "unknown",
                    "missing_in_reference",
                    f"The reference has no column {reference_prediction!r:.60} to compare "
                    "predictions with.",
                    current_rows=frame.height,
                )
            elif ref_col.kind == "numeric":
                predicted = _numeric(ref_col, series, threshold, min_rows, significance)
            else:
                predicted = _categorical(ref_col, series, threshold, min_rows, significance)
            predicted = _renamed(predicted, prediction)
    return DriftResult(results, frame.height, predicted)


def _renamed(found: FeatureDrift, name: str) -> FeatureDrift:
    from dataclasses import replace

    return replace(found, feature=name)
