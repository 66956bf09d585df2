"""Drift statistics as pure NumPy functions: PSI, KS, chi-square, Jensen-Shannon, Wasserstein.

Each takes arrays the caller extracted (no NaN; numbers already floats) and returns plain
floats. The statistics equal SciPy's reference implementations (``scipy.stats.ks_2samp``,
``chi2_contingency``, ``scipy.spatial.distance.jensenshannon``, ``wasserstein_distance``);
SciPy is used only for the p-values' distribution functions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from keel.data._stats import PSI_FLOOR, quantile_edges, separate_atoms

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.int64]

__all__ = [
    "PSI_FLOOR",
    "bin_counts",
    "chi_square",
    "jensen_shannon",
    "ks_wasserstein",
    "psi",
    "quantile_edges",
    "separate_atoms",
]

#: Cells of the uniform grid that speeds up binning of large arrays.
_GRID = 4096
_FAST_BINNING_ROWS = 20_000
_COMPARE_EDGES = 32
#: Above this effective sample size the KS p-value uses the limiting (Kolmogorov) distribution.
_EXACT_P = 10_000


def bin_counts(values: FloatArray, edges: FloatArray) -> IntArray:
    """Counts of ``values`` per bin of the sorted inner ``edges`` (``len(edges) + 1`` bins).

    Equal to ``bincount(searchsorted(edges, values, side="right"))``. For large arrays, a few
    edges are counted with one vectorised comparison each; many edges go through a uniform
    grid first, and only values in grid cells that contain an edge are searched.
    """
    import numpy as np

    k = edges.size
    if k and k <= _COMPARE_EDGES and values.size >= _FAST_BINNING_ROWS:
        # one vectorised comparison per edge: count(x >= e) for each edge, then differences
        at_least = np.array([np.count_nonzero(values >= e) for e in edges], dtype=np.int64)
        by_compare = np.empty(k + 1, dtype=np.int64)
        by_compare[0] = values.size - at_least[0]
        by_compare[1:k] = at_least[:-1] - at_least[1:]
        by_compare[k] = at_least[-1]
        return by_compare
    if values.size < _FAST_BINNING_ROWS or k == 0:
        found: IntArray = np.bincount(
            np.searchsorted(edges, values, side="right"), minlength=k + 1
        ).astype(np.int64)
        return found
    lo, hi = float(edges[0]), float(edges[-1])
    width = max(hi - lo, abs(hi) * 1e-9, 1e-300)
    cells = _GRID
    step = width / cells
    g_lo, g_hi = lo - step, hi + step  # margins: below g_lo is bin 0, above g_hi is bin k
    scale = (cells + 2) / (g_hi - g_lo)
    # cell 0: x < g_lo; cells 1..cells+2: the grid; cell cells+3: x >= g_hi (and +inf)
    position = np.subtract(values, g_lo)
    np.multiply(position, scale, out=position)
    np.clip(position, -1.0, cells + 2.0, out=position)
    position += 1.0
    cell = position.astype(np.intp)
    bounds = g_lo + np.arange(cells + 3) / scale
    slack = 4 * np.spacing(np.maximum(np.abs(bounds), abs(g_lo) + abs(g_hi)))
    low_bin = np.searchsorted(edges, bounds[:-1] - slack[:-1], side="right")
    high_bin = np.searchsorted(edges, bounds[1:] + slack[1:], side="right")
    # each cell's bin; a cell holding an edge maps to the extra bin k + 1 ("look closer")
    table = np.empty(cells + 4, dtype=np.intp)
    table[0], table[-1] = 0, k
    table[1:-1] = np.where(low_bin == high_bin, low_bin, k + 1)
    binned = table[cell]
    counts = np.bincount(binned, minlength=k + 2).astype(np.int64)
    if counts[k + 1]:
        closer = values[binned == k + 1]
        counts[: k + 1] += np.bincount(
            np.searchsorted(edges, closer, side="right"), minlength=k + 1
        )
    result: IntArray = counts[: k + 1]
    return result


def psi(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over bin shares.

    Shares below ``PSI_FLOOR`` (empty bins) count as ``PSI_FLOOR`` so the index stays finite.
    """
    import numpy as np

    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return 0.0
    e = np.maximum(r / r.sum(), PSI_FLOOR)
    a = np.maximum(c / c.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def chi_square(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike
) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors (a 2 x k contingency table).

    Bins empty in both samples are dropped. Equals
    ``scipy.stats.chi2_contingency([ref, cur], correction=False)[:2]``; one bin left gives
    ``(0.0, 1.0)``.
    """
    import numpy as np

    table = np.vstack(
        [np.asarray(reference_counts, np.float64), np.asarray(current_counts, np.float64)]
    )
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return 0.0, 1.0
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    from scipy.stats import chi2  # type: ignore[import-untyped,unused-ignore]

    dof = table.shape[1] - 1
    return stat, float(chi2.sf(stat, dof))


def jensen_shannon(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count or share vectors.

    Equals ``scipy.spatial.distance.jensenshannon(ref, cur, base=2)``.
    """
    import numpy as np

    p = np.asarray(reference_counts, dtype=np.float64)
    q = np.asarray(current_counts, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0

    def _kl(x: FloatArray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    divergence = max((_kl(p) + _kl(q)) / 2.0, 0.0)
    return math.sqrt(divergence)


def ks_wasserstein(
    sorted_reference: FloatArray,
    sorted_current: FloatArray,
    *,
    reference_size: int | None = None,
) -> tuple[float, float, float]:
    """Two-sample KS statistic, its p-value, and the Wasserstein-1 distance.

    Both inputs must be sorted and free of NaN. One merge of the two samples gives both
    empirical CDFs; the KS statistic is their largest gap (taken after each group of ties),
    the Wasserstein distance the area between them. The p-value is the asymptotic one of
    ``ks_2samp(method="asymp")`` (beyond an effective size of 10,000, its limit, the
    Kolmogorov distribution).

    ``reference_size`` is the size of the sample ``sorted_reference`` stands for when it is
    its order statistics at a coarser resolution (a profile keeps 100,000 of them): they
    give the same empirical CDF to within one part in their number, so the p-value is the
    one of the whole reference, not of a sample that small.
    """
    import numpy as np

    n, m = sorted_reference.size, sorted_current.size
    if n == 0 or m == 0:
        raise ValueError("both samples need at least one value")
    pooled = np.concatenate([sorted_reference, sorted_current])
    order = np.argsort(pooled, kind="stable")  # merges two sorted runs in linear time
    values = pooled[order]
    in_ref = np.cumsum(order < n)
    gap = np.abs(in_ref / n - (np.arange(1, n + m + 1) - in_ref) / m)
    last_of_ties = np.empty(n + m, dtype=bool)
    last_of_ties[:-1] = values[1:] != values[:-1]
    last_of_ties[-1] = True
    ks = float(gap[last_of_ties].max())
    wasserstein = float(np.sum(gap[:-1] * np.diff(values)))
    from scipy.stats import kstwo  # type: ignore[import-untyped,unused-ignore]

    size = max(reference_size or n, n)
    effective = round(size * m / (size + m))
    if effective < 1:  # one value on each side: no evidence either way
        return ks, 1.0, wasserstein
    if effective > _EXACT_P:  # the limiting distribution: same to many digits, far cheaper
        from scipy.stats import kstwobign  # type: ignore[import-untyped,unused-ignore]

        p_value = float(kstwobign.sf(ks * math.sqrt(effective)))
    else:
        p_value = float(kstwo.sf(ks, effective))
    p_value = min(max(p_value, 0.0), 1.0)
    return ks, p_value, wasserstein
