"""Group statistics for bias checks on a declared sensitive attribute.

Representation share per group, positive-label rate per group, their largest difference
(statistical parity) and the disparate-impact ratio (lowest rate over the highest, or over a
declared privileged group; the four-fifths rule asks for at least 0.8).

The attribute and the label are read under fixed names of their own (``group``, ``label``) so
that no column name, ``n`` say, can collide with the names of the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from keel.data._checks import temporal_value

if TYPE_CHECKING:
    import polars as pl

__all__ = ["GroupRates", "group_rates", "group_shares"]


def _key(value: Any) -> str:
    if value is None:
        return "(null)"
    # ISO, as ``parse_suite`` keeps a date given as ``privileged``
    return value.isoformat() if isinstance(value, date) else str(value)


def group_shares(frame: pl.DataFrame, attribute: str) -> dict[str, float]:
    """Each group's share of the rows (null is a group of its own), largest first."""
    import polars as pl

    if frame.height == 0:
        return {}
    counts = (
        frame.select(pl.col(attribute).alias("group"))
        .group_by("group")
        .agg(pl.len().alias("n"))
        .sort("n", descending=True)
    )
    total = frame.height
    return {
        _key(g): n / total
        for g, n in zip(counts.get_column("group"), counts.get_column("n"), strict=True)
    }


@dataclass(frozen=True, slots=True)
class GroupRates:
    """Positive-label rate per group, and the parity measures derived from them."""

    rates: dict[str, float]
    counts: dict[str, int]
    #: rows with the positive label, over the groups kept
    positives: int = 0

    @property
    def difference(self) -> float:
        """Largest minus smallest rate (0 when fewer than two groups)."""
        if len(self.rates) < 2:
            return 0.0
        return max(self.rates.values()) - min(self.rates.values())

    def impact_ratio(self, privileged: str | None = None) -> float:
        """Lowest rate divided by the highest (or by the privileged group's rate).

        1.0 when every group has the same rate, including when all rates are zero; a check
        fails before asking when there are fewer than two groups or no positive row.
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

    Groups with fewer than ``min_count`` rows are left out (their rates are noise). Raises
    ValueError when ``positive`` cannot be compared with the label column (``1`` against a
    column of ``yes``/``no``).
    """
    import polars as pl

    data = frame.select(pl.col(attribute).alias("group"), pl.col(label).alias("label"))
    dtype = data.schema["label"]
    target = temporal_value(positive, dtype)
    try:
        stats = (
            data.group_by("group")
            .agg(
                pl.len().alias("n"),
                (pl.col("label") == pl.lit(target)).fill_null(False).sum().alias("positives"),
            )
            .filter(pl.col("n") >= min_count)
            .sort("group", nulls_last=True)
        )
    except pl.exceptions.PolarsError as exc:
        raise ValueError(
            f"the positive label {positive!r} cannot be compared with {label} ({dtype}): "
            "set 'positive' to one of the label's values."
        ) from exc
    groups = [_key(g) for g in stats.get_column("group").to_list()]
    counts = [int(n) for n in stats.get_column("n")]
    hits = [int(h) for h in stats.get_column("positives")]
    return GroupRates(
        rates=dict(zip(groups, (h / n for h, n in zip(hits, counts, strict=True)), strict=True)),
        counts=dict(zip(groups, counts, strict=True)),
        positives=sum(hits),
    )
