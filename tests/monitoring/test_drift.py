"""compute_drift: every statistic per feature, explicit statuses for bad input, never NaN."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from keel.errors import InvalidInputError
from keel.monitoring import DriftThreshold, bin_counts, compute_drift, profile_reference


def _frames(shift: float = 0.0, rows: int = 3000) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(7)
    reference = pl.DataFrame(
        {
            "x": rng.normal(size=rows),
            "y": rng.exponential(size=rows),
            "colour": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
        }
    )
    current = pl.DataFrame(
        {
            "x": rng.normal(shift, 1.0, size=rows),
            "y": rng.exponential(size=rows),
            "colour": rng.choice(["red", "green", "blue"], rows, p=[0.2, 0.3, 0.5])
            if shift
            else rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
        }
    )
    return reference, current


def _strict_json(value: object) -> str:
    return json.dumps(value, allow_nan=False)  # raises on NaN or infinity


def test_numeric_and_categorical_statistics_equal_scipy() -> None:
    reference, current = _frames(shift=0.5)
    result = compute_drift(reference, current)
    x = next(f for f in result.features if f.feature == "x")
    ks = stats.ks_2samp(reference["x"].to_numpy(), current["x"].to_numpy(), method="asymp")
    assert x.kind == "numeric"
    assert x.stats["ks"] == pytest.approx(ks.statistic)
    assert x.stats["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-6, abs=1e-300)
    assert x.stats["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(reference["x"].to_numpy(), current["x"].to_numpy())
    )
    colour = next(f for f in result.features if f.feature == "colour")
    assert colour.kind == "categorical"
    assert colour.stats["ks"] is None and colour.stats["wasserstein"] is None
    ref_counts = reference["colour"].value_counts().sort("colour")
    cur_counts = current["colour"].value_counts().sort("colour")
    table = np.array([ref_counts["count"].to_list(), cur_counts["count"].to_list()], float)
    expected = stats.chi2_contingency(table, correction=False)
    assert colour.stats["chi2"] == pytest.approx(expected.statistic)
    assert colour.stats["chi2_pvalue"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    assert colour.stats["js"] == pytest.approx(jensenshannon(table[0], table[1], base=2))
    assert set(result.drifted) == {"x", "colour"}
    assert result.status == "drift"
    assert 0.0 < result.share_drifted < 1.0


def test_no_shift_is_ok_and_thresholds_are_per_feature() -> None:
    reference, current = _frames(shift=0.0)
    result = compute_drift(reference, current)
    assert result.status == "ok", [f.to_dict() for f in result.features if f.status != "ok"]
    strict = compute_drift(
        reference,
        current,
        thresholds={"y": {"metric": "ks_pvalue", "drift": 1.01, "warning": None}},
    )
    y = next(f for f in strict.features if f.feature == "y")
    assert (y.metric, y.status) == ("ks_pvalue", "drift")  # a p-value drifts *below* the limit
    assert {f.feature: f.status for f in strict.features}["x"] == "ok"


def test_a_profile_gives_the_same_result_as_the_frame() -> None:
    reference, current = _frames(shift=0.3)
    profile = profile_reference(reference)
    assert compute_drift(profile, current).to_dict() == compute_drift(reference, current).to_dict()


def test_bad_input_gets_explicit_statuses_never_nan() -> None:
    reference = pl.DataFrame(
        {
            "x": np.arange(100, dtype=float),
            "flat": np.full(100, 3.0),
            "flat_cat": ["a"] * 100,
            "gone": np.arange(100, dtype=float),
            "secret": np.arange(100, dtype=float),
        }
    )
    current = pl.DataFrame(
        {
            "x": [None] * 50,
            "flat": [3.0] * 50,
            "flat_cat": ["a"] * 50,
            "extra": np.arange(50, dtype=float),
            "secret": ["[REDACTED]"] * 50,
        },
        schema_overrides={"x": pl.Float64},
    )
    result = compute_drift(
        reference, current, features=["x", "flat", "flat_cat", "gone", "extra", "secret"]
    )
    statuses = {f.feature: f.status for f in result.features}
    assert statuses == {
        "x": "all_null",
        "flat": "constant",
        "flat_cat": "constant",
        "gone": "missing_in_current",
        "extra": "missing_in_reference",
        "secret": "type_mismatch",
    }
    assert all(f.message for f in result.features if f.status != "ok")
    text = _strict_json(result.to_dict())
    assert "NaN" not in text
    assert result.status == "ok"  # nothing compared drifted


def test_constant_reference_against_a_varying_window_is_drift() -> None:
    reference = pl.DataFrame({"v": np.full(500, 1.0)})
    current = pl.DataFrame({"v": np.linspace(0, 2, 500)})
    found = compute_drift(reference, current).features[0]
    assert found.status == "drift"
    assert "Constant" in found.message
    _strict_json(found.to_dict())


def test_nan_and_infinite_values_count_as_missing() -> None:
    reference = pl.DataFrame({"v": np.random.default_rng(0).normal(size=500)})
    current = pl.DataFrame({"v": [float("nan")] * 20 + [float("inf")] * 5 + [0.1] * 30})
    found = compute_drift(reference, current).features[0]
    assert found.current_nulls == 25
    assert found.status in ("ok", "warning", "drift")
    _strict_json(found.to_dict())


def test_too_few_values_and_an_empty_window() -> None:
    reference, _ = _frames()
    few = compute_drift(reference, reference.head(3), min_rows=10)
    assert {f.status for f in few.features} == {"insufficient_data"}
    empty = compute_drift(reference, reference.head(0))
    assert empty.status == "no_data"
    assert {f.status for f in empty.features} == {"all_null"}


def test_new_categories_are_named_and_counted() -> None:
    reference = pl.DataFrame({"c": ["a", "b"] * 200})
    current = pl.DataFrame({"c": ["a", "b", "zzz", "<script>"] * 100})
    found = compute_drift(reference, current).features[0]
    assert found.stats["new_categories"] == 2.0
    assert "zzz" in found.message and found.status == "drift"
    assert found.histogram is not None and "zzz" in found.histogram["categories"]


def test_numbers_can_be_compared_as_categories() -> None:
    reference = pl.DataFrame({"code": [1, 2, 3] * 100})
    current = pl.DataFrame({"code": [3, 3, 3] * 100})
    found = compute_drift(reference, current, categorical=["code"]).features[0]
    assert found.kind == "categorical" and found.status == "drift"


def test_prediction_drift_against_the_reference_target() -> None:
    reference = pl.DataFrame({"x": np.zeros(200), "label": [0, 1] * 100})
    current = pl.DataFrame({"x": np.zeros(200), "pred": [1] * 190 + [0] * 10})
    result = compute_drift(
        reference, current, features=["x"], prediction="pred", reference_prediction="label"
    )
    assert result.prediction is not None
    assert result.prediction.feature == "pred" and result.prediction.status == "drift"
    assert result.status == "drift"


def test_threshold_mistakes_are_explained() -> None:
    reference, current = _frames()
    with pytest.raises(InvalidInputError, match="categorical"):
        compute_drift(reference, current, thresholds={"colour": {"metric": "ks", "drift": 0.1}})
    with pytest.raises(InvalidInputError, match="Unknown drift metric"):
        DriftThreshold(metric="nope")
    with pytest.raises(InvalidInputError, match="not monitored"):
        compute_drift(reference, current, features=["x"], thresholds={"y": {"drift": 0.1}})


def test_large_windows_are_sampled_for_ks_only() -> None:
    rng = np.random.default_rng(1)
    reference = pl.DataFrame({"v": rng.normal(size=250_000)})
    current = pl.DataFrame({"v": rng.normal(0.05, 1, size=250_000)})
    found = compute_drift(reference, current, workers=2).features[0]
    exact = stats.ks_2samp(reference["v"].to_numpy(), current["v"].to_numpy())
    assert found.sampled
    assert found.stats["ks"] == pytest.approx(exact.statistic, abs=0.01)
    assert found.current_rows == 250_000


def test_discrete_values_are_binned_alike_in_reference_and_window() -> None:
    rng = np.random.default_rng(4)
    reference = pl.DataFrame({"label": rng.integers(0, 2, 4000), "n": rng.integers(0, 7, 4000)})
    same = pl.DataFrame({"label": rng.integers(0, 2, 3000), "n": rng.integers(0, 7, 3000)})
    profile = profile_reference(reference)
    for name in ("label", "n"):
        column = profile.columns[name]
        values = reference[name].to_numpy().astype(float)
        assert column.counts.tolist() == bin_counts(values, column.edges).tolist()
    result = compute_drift(profile, same)
    assert {f.feature: f.status for f in result.features} == {"label": "ok", "n": "ok"}
    assert all(f.stats["psi"] is not None and f.stats["psi"] < 0.01 for f in result.features)
