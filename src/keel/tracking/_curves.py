"""Curves of one metric over several runs, reduced to min/max per step bucket when long."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MetricCurves"]


@dataclass(frozen=True)
class MetricCurves:
    """The curves of ``key`` for some runs: every point, or min/max per step bucket.

    When ``reduced`` is false, ``history`` maps each run id to every ``(step, value)`` (NaN for
    a non-finite value), by step. When it is true the database reduced them: bucket ``b``
    covers the steps ``[low + b * width, low + (b + 1) * width)`` (the last one also holds the
    highest step) and ``buckets[run_id][b]`` is the ``(min, max)`` of the run's finite values
    there, or ``None`` when it has none. ``points`` is the number of stored values read.
    """

    key: str
    points: int
    reduced: bool
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    low: float = 0.0
    width: float = 0.0
    buckets: dict[str, list[tuple[float, float] | None]] = field(default_factory=dict)
