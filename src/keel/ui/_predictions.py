"""Summaries of a deployment's prediction logs: traffic, latency, and shadow agreement."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

    from keel.ui._web import Viewer

__all__ = ["MAX_HOURS", "PredictionSummary", "VariantSummary", "summarize_predictions"]

#: the most rows a page summarizes (the newest); reading stops once it has this many
MAX_ROWS = 200_000
#: the longest look-back a page may ask for (a week)
MAX_HOURS = 168


@dataclass(frozen=True, slots=True)
class VariantSummary:
    variant: str
    version: int
    requests: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class PredictionSummary:
    """What the logs of the last ``hours`` say."""

    hours: int
    rows: int
    variants: list[VariantSummary]
    #: shadow / canary: requests answered by both variants, and how many agreed
    paired: int = 0
    agreed: int = 0
    #: per hour: (ISO hour, requests, p95 latency in ms)
    hourly: list[tuple[str, int, float | None]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.paired if self.paired else None


def _summarize(frame: pl.DataFrame, hours: int) -> PredictionSummary:
    import polars as pl

    if frame.height == 0:
        return PredictionSummary(hours, 0, [])
    frame = frame.tail(MAX_ROWS)
    grouped = (
        frame.group_by("variant", "version")
        .agg(
            pl.len().alias("n"),
            pl.col("latency_ms").quantile(0.5).alias("p50"),
            pl.col("latency_ms").quantile(0.95).alias("p95"),
            pl.col("latency_ms").quantile(0.99).alias("p99"),
        )
        .sort("variant", "version")
    )
    variants = [
        VariantSummary(r["variant"], int(r["version"]), int(r["n"]), r["p50"], r["p95"], r["p99"])
        for r in grouped.iter_rows(named=True)
    ]
    hourly = (
        frame.group_by(pl.col("timestamp").dt.truncate("1h").alias("hour"))
        .agg(pl.len().alias("n"), pl.col("latency_ms").quantile(0.95).alias("p95"))
        .sort("hour")
    )
    series = [
        (r["hour"].strftime("%Y-%m-%d %H:00"), int(r["n"]), r["p95"])
        for r in hourly.iter_rows(named=True)
    ]
    paired = agreed = 0
    names = set(frame["variant"].unique().to_list())
    if {"primary", "candidate"} <= names:
        left = frame.filter(pl.col("variant") == "primary").select("request_id", "prediction")
        right = frame.filter(pl.col("variant") == "candidate").select(
            "request_id", pl.col("prediction").alias("other")
        )
        joined = left.join(right, on="request_id", how="inner")
        paired = joined.height
        agreed = int((joined["prediction"] == joined["other"]).sum()) if paired else 0
    latencies = [float(v) for v in frame["latency_ms"].drop_nulls().to_list()]
    return PredictionSummary(hours, frame.height, variants, paired, agreed, series, latencies)


def _windows(hours: int) -> list[tuple[int, int]]:
    """``(start, end)`` minutes ago, newest first, each twice as long as the one after it: a
    busy deployment fills ``MAX_ROWS`` within the newest minutes, so the summary shows them
    (each window's read keeps its oldest rows)."""
    spans, end, length, total = [], 0, 1, hours * 60
    while end < total:
        start = min(end + length, total)
        spans.append((start, end))
        end, length = start, length * 2
    return spans


def summarize_predictions(viewer: Viewer, deployment: str, *, hours: int = 24) -> PredictionSummary:
    """Summarize the newest prediction logs of ``deployment`` within the last ``hours``.

    The logs are read newest first in windows (1 min, then 2, 4, ...) and reading stops once
    ``MAX_ROWS`` rows are in hand, so a busy deployment costs about ``MAX_ROWS`` rows whatever
    ``hours`` a viewer asks for; ``hours`` itself is capped at ``MAX_HOURS``.
    """
    import polars as pl

    if not 1 <= hours <= MAX_HOURS:
        raise InvalidInputError(f"hours must be between 1 and {MAX_HOURS}; got {hours}.")
    now = clock.now()
    frames: list[Any] = []
    held = 0
    for start, end in _windows(hours):
        frame: Any = viewer.ui.deployments.read_predictions(
            viewer.ctx,
            deployment,
            since=now - timedelta(minutes=start),
            until=now - timedelta(minutes=end) if end else None,
            limit=MAX_ROWS - held,
        )
        if frame.height:
            frames.append(frame)
            held += frame.height
        if held >= MAX_ROWS:
            break
    if not frames:
        return PredictionSummary(hours, 0, [])
    together = pl.concat(list(reversed(frames)), how="diagonal_relaxed").sort("timestamp")
    return _summarize(together, hours)
