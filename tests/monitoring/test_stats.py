"""The drift statistics equal SciPy's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from keel.monitoring import (
    bin_counts,
    chi_square,
    jensen_shannon,
    ks_wasserstein,
    psi,
    quantile_edges,
)

samples = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_ks_and_wasserstein_equal_scipy(a: list[float], b: list[float]) -> None:
    ks, p, w = ks_wasserstein(np.sort(a), np.sort(b))
    assert w == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-6)
    if round(len(a) * len(b) / (len(a) + len(b))) < 1:
        assert p == 1.0  # SciPy divides by zero here
        return
    expected = stats.ks_2samp(a, b, method="asymp")
    assert ks == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    assert w == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-6)


def test_ks_with_ties_and_unequal_sizes() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 5, 3000).astype(float)
    b = rng.integers(0, 6, 1700).astype(float)
    ks, p, w = ks_wasserstein(np.sort(a), np.sort(b))
    expected = stats.ks_2samp(a, b, method="asymp")
    assert ks == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)
    assert w == pytest.approx(stats.wasserstein_distance(a, b))


counts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=2, max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_chi_square_equals_chi2_contingency(data: st.DataObject) -> None:
    ref = data.draw(counts)
    cur = data.draw(st.lists(st.integers(0, 10_000), min_size=len(ref), max_size=len(ref)))
    stat, p = chi_square(ref, cur)
    table = np.array([ref, cur], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        assert (stat, p) == (0.0, 1.0)
        return
    expected = stats.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert p == pytest.approx(expected.pvalue, rel=1e-7, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_jensen_shannon_equals_scipy(data: st.DataObject) -> None:
    ref = data.draw(counts)
    cur = data.draw(st.lists(st.integers(0, 10_000), min_size=len(ref), max_size=len(ref)))
    if sum(ref) == 0 or sum(cur) == 0:
        assert jensen_shannon(ref, cur) == 0.0
        return
    expected = jensenshannon(np.array(ref, float), np.array(cur, float), base=2)
    assert jensen_shannon(ref, cur) == pytest.approx(expected, abs=1e-7)
    assert 0.0 <= jensen_shannon(ref, cur) <= 1.0


def test_psi_matches_its_formula_and_floors_empty_bins() -> None:
    ref, cur = [50, 30, 20], [20, 30, 50]
    e, a = np.array(ref) / 100, np.array(cur) / 100
    assert psi(ref, cur) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert psi(ref, ref) == 0.0
    assert np.isfinite(psi([10, 0], [0, 10]))
    assert psi([0, 0], [1, 2]) == 0.0  # nothing to compare with: no shift measured


@pytest.mark.parametrize("bins", [10, 200])
@pytest.mark.parametrize("rows", [100, 50_000, 300_000])
def test_fast_binning_equals_searchsorted(rows: int, bins: int) -> None:
    rng = np.random.default_rng(rows)
    reference = np.sort(rng.standard_t(3, size=20_000))
    edges = quantile_edges(reference, bins)
    values = np.concatenate([rng.standard_t(3, size=rows), edges, [np.inf, -np.inf]])
    expected = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    assert bin_counts(values, edges).tolist() == expected.tolist()


@pytest.mark.parametrize("edges", [np.array([5.0]), np.linspace(4.99, 5.01, 60)])
def test_fast_binning_with_heavy_duplicates(edges: np.ndarray) -> None:
    values = np.concatenate([np.full(40_000, 5.0), np.full(10_000, 4.999999), [6.0] * 5])
    expected = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    assert bin_counts(values, edges).tolist() == expected.tolist()


def test_quantile_edges_of_a_constant_reference_collapse() -> None:
    assert quantile_edges(np.full(100, 3.0), 10).tolist() == [3.0]
    assert quantile_edges(np.zeros(0), 10).size == 0
