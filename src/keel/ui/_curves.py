"""Metric curves of several runs for a chart, from ``RunService.metric_curves``.

Short curves come back point by point and are aligned here on the union of their steps; long
ones are reduced by the tracking layer in the database to min/max per step bucket (one grouped
query), and are laid out here as two points per bucket, as ``align_curves`` does in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from keel.ui._charts import Curves, align_curves

if TYPE_CHECKING:
    from keel.tracking import Run
    from keel.ui._web import Viewer

__all__ = ["curves_of"]

BUCKETS = 500


def curves_of(viewer: Viewer, runs: Sequence[Run], key: str, *, buckets: int = BUCKETS) -> Curves:
    """The curves of ``key`` for ``runs`` on one x axis, at most ``2 * buckets`` points each."""
    ids = [r.id for r in runs if key in r.metrics]
    if not ids:
        return align_curves({})
    curves = viewer.ui.services.runs.metric_curves(viewer.ctx, ids, key, buckets=buckets)
    if not curves.reduced:
        return align_curves(curves.history, buckets=buckets)
    grid: list[float] = []
    for b in range(buckets):
        start = curves.low + b * curves.width
        grid.extend((start, start + curves.width / 2))
    series: dict[str, list[float | None]] = {}
    for run_id, pairs in curves.buckets.items():
        row: list[float | None] = []
        for pair in pairs:
            row.extend(pair if pair is not None else (None, None))
        series[run_id] = row
    return Curves(grid, series, True, curves.points)
