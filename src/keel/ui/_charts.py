"""Chart data computed on the server: aligned, downsampled metric curves and SVG histograms.

Curves of many runs are put on one shared x axis so a browser chart (uPlot) can overlay them.
When the steps fit, the axis is the union of the logged steps; otherwise the step range is cut
into equal buckets and each run keeps, per bucket, its minimum and its maximum in the order
they were logged (two points per bucket): spikes stay visible and a 10,000-step curve becomes
at most ``2 * buckets`` points whatever its length. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Bar", "Curves", "align_curves", "histogram_bars", "value_histogram"]


@dataclass(frozen=True, slots=True)
class Curves:
    """Series of several runs over one x axis (``None`` where a run has no point)."""

    x: list[float]
    series: dict[str, list[float | None]]
    downsampled: bool
    points_in: int

    def to_dict(self) -> dict[str, object]:
        return {"x": self.x, "series": self.series, "downsampled": self.downsampled}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def align_curves(
    histories: Mapping[str, Sequence[tuple[int, float]]], *, buckets: int = 500
) -> Curves:
    """Overlay ``{label: [(step, value), ...]}`` on one x axis, at most ``2 * buckets`` long.

    Args:
        histories: each run's points, in logging order.
        buckets: how many step buckets a long curve is cut into.
    """
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    points_in = sum(len(points) for points in histories.values())
    steps = {step for points in histories.values() for step, _ in points}
    if len(steps) <= 2 * buckets:
        x = sorted(steps)
        index = {step: i for i, step in enumerate(x)}
        series: dict[str, list[float | None]] = {}
        for label, points in histories.items():
            row: list[float | None] = [None] * len(x)
            for step, value in points:
                row[index[step]] = _finite(value)
            series[label] = row
        return Curves([float(s) for s in x], series, False, points_in)
    low, high = min(steps), max(steps)
    width = (high - low) / buckets
    grid: list[float] = []
    for b in range(buckets):
        start = low + b * width
        grid.extend((start, start + width / 2))
    series = {}
    for label, points in histories.items():
        lows: list[tuple[int, float] | None] = [None] * buckets
        highs: list[tuple[int, float] | None] = [None] * buckets
        for order, (step, value) in enumerate(points):
            if not math.isfinite(value):
                continue
            b = min(int((step - low) / width), buckets - 1)
            current_low, current_high = lows[b], highs[b]
            if current_low is None or value < current_low[1]:
                lows[b] = (order, value)
            if current_high is None or value > current_high[1]:
                highs[b] = (order, value)
        row = []
        for b in range(buckets):
            first, second = lows[b], highs[b]
            if first is None or second is None:
                row.extend((None, None))
            elif first[0] <= second[0]:
                row.extend((first[1], second[1]))
            else:
                row.extend((second[1], first[1]))
        series[label] = row
    return Curves(grid, series, True, points_in)


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of an SVG histogram (coordinates in the viewBox)."""

    x: float
    y: float
    width: float
    height: float
    label: str
    series: int


def histogram_bars(
    labels: Sequence[str],
    groups: Sequence[Sequence[float]],
    *,
    width: float = 400,
    height: float = 140,
) -> list[Bar]:
    """Bars for side-by-side histograms: ``groups[g][i]`` is series g's share in bin i.

    Two series (reference and current) draw as pairs of bars per bin, scaled to the tallest.
    """
    bins = len(labels)
    if bins == 0 or not groups:
        return []
    tallest = max((v for group in groups for v in group if math.isfinite(v)), default=0.0)
    scale = (height - 4) / tallest if tallest > 0 else 0.0
    slot = width / bins
    bar = slot * 0.8 / len(groups)
    bars = []
    for g, group in enumerate(groups):
        for i, value in enumerate(group[:bins]):
            h = max(value, 0.0) * scale if math.isfinite(value) else 0.0
            bars.append(
                Bar(
                    x=round(i * slot + slot * 0.1 + g * bar, 2),
                    y=round(height - h, 2),
                    width=round(bar, 2),
                    height=round(h, 2),
                    label=f"{labels[i]}: {value:.4g}",
                    series=g,
                )
            )
    return bars


def value_histogram(values: Sequence[float], *, bins: int = 20) -> tuple[list[str], list[float]]:
    """Bin labels and shares (summing to 1) of ``values`` over equal-width bins."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [], []
    low, high = min(finite), max(finite)
    if high == low:
        return [f"{low:.4g}"], [1.0]
    width = (high - low) / bins
    counts = [0] * bins
    for v in finite:
        counts[min(int((v - low) / width), bins - 1)] += 1
    labels = [f"{low + i * width:.4g} to {low + (i + 1) * width:.4g}" for i in range(bins)]
    return labels, [c / len(finite) for c in counts]
