"""Distribution statistics for checks against a reference: PSI and the two-sample KS statistic.

Pure NumPy over arrays the caller extracted; no I/O, no clock, no globals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["PSI_FLOOR", "ks_statistic", "psi_categorical", "psi_numeric", "quantile_edges"]

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


def quantile_edges(reference: npt.ArrayLike, bins: int) -> npt.NDArray[np.float64]:
    """Inner bin edges at the reference's quantiles (duplicates removed)."""
    import numpy as np

    values = np.asarray(reference, dtype=np.float64)
    if values.size == 0:
        return np.zeros(0)
    inner = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    edges: npt.NDArray[np.float64] = np.unique(inner)
    return edges


def _psi(expected: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]) -> float:
    import numpy as np

    e = np.maximum(expected / max(expected.sum(), 1.0), PSI_FLOOR)
    a = np.maximum(actual / max(actual.sum(), 1.0), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_numeric(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``, binned at the
    reference's deciles (or ``bins`` quantiles); empty bins count as ``PSI_FLOOR``.
    """
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    edges = quantile_edges(ref, bins)
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
