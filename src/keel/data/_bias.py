"""Group statistics for bias checks on a declared sensitive attribute.

Representation share per group, positive-label rate per group, their largest difference
(statistical parity) and the disparate-impact ratio (lowest rate over the highest, or over a
declared privileged group; the four-fifths rule asks for at least 0.8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = ["GroupRates", "group_rates", "group_shares"]


def _key(value: Any) -> str:
    return "(null)" if value is None else str(value)


def group_shares(frame: pl.DataFrame, attribute: str) -> dict[str, float]:
    """Each group's share of the rows (null is a group of its own), largest first."""
    import polars as pl

    if frame.height == 0:
        return {}
    counts = frame.group_by(attribute).agg(pl.len().alias("n")).sort("n", descending=True)
    total = frame.height
    return {
        _key(g): n / total
        for g, n in zip(counts.get_column(attribute), counts.get_column("n"), strict=True)
    }


@dataclass(frozen=True, slots=True)
class GroupRates:
    """Positive-label rate per group, and the parity measures derived from them."""

    rates: dict[str, float]
    counts: dict[str, int]

    @property
    def difference(self) -> float:
        """Largest minus smallest rate (0 when fewer than two groups)."""
        if len(self.rates) < 2:
            return 0.0
        return max(self.rates.values()) - min(self.rates.values())

    def impact_ratio(self, privileged: str | None = None) -> float:
        """Lowest rate divided by the highest (or by the privileged group's rate).

        1.0 when every group has the same rate, including when all rates are zero.
        """
        if len(self.rates) < 2:
            return 1.0
        if privileged is not None:
            base = self.rates[privileged]
            others = [r for g, r in self.rates.items() if g != privileged]
            lowest = min(others)
        else:
            base = max(self.rates.values())
            lowest = min(self.rates.values())
        if base == 0:
            return 1.0 if lowest == 0 else float("inf")
        return lowest / base


def group_rates(
    frame: pl.DataFrame, attribute: str, label: str, positive: Any, *, min_count: int = 1
) -> GroupRates:
    """The share of rows whose ``label`` equals ``positive``, per group of ``attribute``.

    Groups with fewer than ``min_count`` rows are left out (their rates are noise).
    """
    import polars as pl

    stats = (
        frame.group_by(attribute)
        .agg(
            pl.len().alias("n"),
            (pl.col(label) == pl.lit(positive)).fill_null(False).mean().alias("rate"),
        )
        .filter(pl.col("n") >= min_count)
        .sort(attribute, nulls_last=True)
    )
    groups = [_key(g) for g in stats.get_column(attribute).to_list()]
    return GroupRates(
        rates=dict(zip(groups, (float(r) for r in stats.get_column("rate")), strict=True)),
        counts=dict(zip(groups, (int(n) for n in stats.get_column("n")), strict=True)),
    )
