"""Distribution and bias statistics: KS matches SciPy, PSI matches its definition."""

from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from keel.data._bias import group_rates, group_shares
from keel.data._stats import PSI_FLOOR, ks_statistic, psi_categorical, psi_numeric

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=200)


@given(samples, samples)
@settings(max_examples=200, deadline=None)
def test_ks_statistic_matches_scipy(a: list[float], b: list[float]) -> None:
    with warnings.catch_warnings():  # SciPy's p-value may warn on tiny samples; D is exact
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = stats.ks_2samp(a, b, method="asymp").statistic
    assert ks_statistic(a, b) == pytest.approx(expected, abs=1e-12)


@given(st.lists(st.integers(-5, 5), min_size=1, max_size=100))
@settings(deadline=None)
def test_ks_of_a_sample_with_itself_is_zero(a: list[int]) -> None:
    assert ks_statistic(a, a) == 0.0


def _psi_reference(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / expected.sum(), PSI_FLOOR)
    a = np.maximum(actual / actual.sum(), PSI_FLOOR)
    return float(sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True)))


@given(
    st.lists(st.integers(0, 1000), min_size=2, max_size=12).flatmap(
        lambda ref: st.tuples(
            st.just(ref), st.lists(st.integers(0, 1000), min_size=len(ref), max_size=len(ref))
        )
    )
)
@settings(deadline=None)
def test_categorical_psi_matches_its_definition(counts: tuple[list[int], list[int]]) -> None:
    ref, cur = counts
    if sum(ref) == 0 or sum(cur) == 0:
        return
    got = psi_categorical(list(range(len(ref))), ref, cur)
    assert got == pytest.approx(_psi_reference(np.array(ref, float), np.array(cur, float)))
    assert got >= 0


def test_numeric_psi_bins_at_reference_deciles() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 20_000)
    assert psi_numeric(ref, ref) == 0.0
    assert psi_numeric(ref, rng.normal(0, 1, 20_000)) < 0.01
    shifted = psi_numeric(ref, rng.normal(1, 1, 20_000))
    ordered = np.sort(ref)  # the "lower" deciles: reference values, as monitoring bins them
    edges = ordered[(np.arange(1, 10) * ordered.size) // 10]
    cur = rng.normal(1, 1, 20_000)
    expected = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10)
    actual = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10)
    assert psi_numeric(ref, cur) == pytest.approx(_psi_reference(expected, actual))
    assert shifted > 0.25  # a one-sigma shift is a major shift by the usual reading


def test_a_heavy_tie_gets_a_bin_of_its_own() -> None:
    # before: a spike (a zero-inflated column's 0, a default) shared its bin with the values
    # just above it, so moving all of it to a neighbouring value went unseen (PSI 0.001)
    rng = np.random.default_rng(3)
    ref = np.concatenate([np.full(5_500, 5.0), rng.uniform(5.0, 10.0, 4_500)])
    moved = np.concatenate([np.full(5_500, 5.2), rng.uniform(5.0, 10.0, 4_500)])
    assert psi_numeric(ref, moved) > 1.0
    assert psi_numeric(ref, ref) == 0.0


def test_group_shares_and_rates() -> None:
    frame = pl.DataFrame({"g": ["x", "x", "y", None], "label": [1, 0, 1, 1]})
    assert group_shares(frame, "g") == {"x": 0.5, "y": 0.25, None: 0.25}
    rates = group_rates(frame, "g", "label", 1)
    assert rates.rates == {"x": 0.5, "y": 1.0, None: 1.0}
    assert rates.difference == 0.5
    assert rates.impact_ratio() == 0.5
    assert rates.impact_ratio("y") == 0.5
    assert group_rates(frame, "g", "label", 1, min_count=2).rates == {"x": 0.5}
