"""Distribution statistics for checks against a reference: PSI and the two-sample KS statistic,
and the quantile bins monitoring shares.

Pure NumPy over arrays the caller extracted; no I/O, no clock, no globals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "PSI_FLOOR",
    "ks_statistic",
    "psi_categorical",
    "psi_numeric",
    "quantile_edges",
    "separate_atoms",
]

#: Share given to an empty bin so that PSI stays finite (a common convention).
PSI_FLOOR = 1e-4


def ks_statistic(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """The two-sample Kolmogorov-Smirnov statistic ``sup |F_ref(x) - F_cur(x)|``.

    Equal to ``scipy.stats.ks_2samp(reference, current).statistic``; NaNs must be removed first.
    """
    import numpy as np

    a = np.sort(np.asarray(reference, dtype=np.float64))
    b = np.sort(np.asarray(current, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        return 0.0 if a.size == b.size else 1.0
    pooled = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, pooled, side="right") / a.size
    cdf_b = np.searchsorted(b, pooled, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def quantile_edges(sorted_reference: npt.NDArray[np.float64], bins: int) -> npt.NDArray[np.float64]:
    """Inner bin edges at the quantiles of a sorted reference (duplicates removed).

    ``bins`` quantile bins need ``bins - 1`` inner edges; a value ``x`` falls in bin
    ``searchsorted(edges, x, side="right")``.
    """
    import numpy as np

    if sorted_reference.size == 0 or bins < 2:
        return np.zeros(0)
    n = sorted_reference.size
    # the "lower" quantile of a sorted array: an actual reference value, no interpolation
    positions = (np.arange(1, bins) * n) // bins
    edges: npt.NDArray[np.float64] = np.unique(sorted_reference[np.clip(positions, 0, n - 1)])
    return edges


def separate_atoms(
    sorted_reference: npt.NDArray[np.float64], edges: npt.NDArray[np.float64], bins: int
) -> npt.NDArray[np.float64]:
    """``edges`` with each heavy tie of the reference in a bin of its own.

    A value held by at least one bin's share of the reference (``n / bins`` rows: a spike
    such as a zero-inflated column's 0, a cap, a default) collapses several quantile edges
    into one, and its bin ``[value, next edge)`` then mixes the spike with the values just
    above it: mass moving from the spike to its neighbours goes unseen. The spike gets the
    bin ``[value - tol, value + tol)`` alone, ``tol`` a millionth of the value (the smallest
    positive float for 0): wide enough that the same value rounded to float32 on its way
    through a model server (``0.1`` logged as ``0.10000000149``) stays in its bin, as a
    ``[value, next float)`` bin would not (every such value would look moved).
    """
    import numpy as np

    n = sorted_reference.size
    if n == 0 or edges.size == 0:
        return edges
    ties = np.searchsorted(sorted_reference, edges, side="right") - np.searchsorted(
        sorted_reference, edges, side="left"
    )
    is_heavy = ties * bins >= n
    heavy = edges[is_heavy]
    if heavy.size == 0:
        return edges
    tol = np.maximum(np.abs(heavy) * _ATOM_WIDTH, np.finfo(np.float64).tiny)
    separated: npt.NDArray[np.float64] = np.unique(
        np.concatenate([edges[~is_heavy], heavy - tol, heavy + tol])
    )
    return separated


#: Half the width of a heavy tie's own bin, relative to its value: about 16 times float32's
#: rounding (2**-24), far below any real step between values.
_ATOM_WIDTH = 2.0**-20


def _psi(expected: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]) -> float:
    import numpy as np

    e = np.maximum(expected / max(expected.sum(), 1.0), PSI_FLOOR)
    a = np.maximum(actual / max(actual.sum(), 1.0), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_numeric(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``, binned at the
    reference's deciles (or ``bins`` quantiles; a heavy tie in a bin of its own, as monitoring
    bins it); empty bins count as ``PSI_FLOOR``.
    """
    import numpy as np

    ref = np.sort(np.asarray(reference, dtype=np.float64))
    cur = np.asarray(current, dtype=np.float64)
    edges = separate_atoms(ref, quantile_edges(ref, bins), bins)
    expected = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    actual = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    return _psi(expected.astype(np.float64), actual.astype(np.float64))


def psi_categorical(
    categories: Sequence[object],
    reference_counts: Sequence[int],
    current_counts: Sequence[int],
) -> float:
    """Population stability index over categories (counts aligned with ``categories``)."""
    import numpy as np

    if len(categories) != len(reference_counts) or len(categories) != len(current_counts):
        raise ValueError("categories and both count lists must have the same length")
    return _psi(
        np.asarray(reference_counts, dtype=np.float64),
        np.asarray(current_counts, dtype=np.float64),
    )
