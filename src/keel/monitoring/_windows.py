"""Monitoring windows over prediction logs: the last N predictions, or the last period.

Reads only the log batches the window needs (newest first for a count window), expands the
logged inputs (JSON) into one column per feature, and decodes the predictions. A classifier's
logged scores become ``SCORE`` / ``SCORES`` (null where the log predates them).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError
from keel.monitoring._rules import parse_duration
from keel.store import DeploymentRepository

if TYPE_CHECKING:
    import polars as pl
    from sqlalchemy.orm import Session

    from keel.blobs import BlobStore

__all__ = ["PREDICTION", "SCORE", "SCORES", "Window", "expand_log", "parse_window", "read_window"]

#: Column of the decoded predictions in a window frame.
PREDICTION = "_prediction"
#: A binary classifier's positive-class probability (log column ``score``).
SCORE = "_score"
#: A multiclass classifier's class probabilities, JSON ``{label: p}`` (log column ``scores``).
SCORES = "_scores"
_COUNT = re.compile(r"^\s*(?:count:)?\s*(\d+)\s*$")
MAX_COUNT = 10_000_000


@dataclass(frozen=True, slots=True)
class Window:
    """The last ``size`` predictions (``kind="count"``) or seconds (``kind="time"``)."""

    kind: str
    size: float

    def __str__(self) -> str:
        if self.kind == "count":
            return f"count:{int(self.size)}"
        seconds = self.size
        for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= span and seconds % span == 0:
                return f"time:{int(seconds // span)}{unit}"
        return f"time:{seconds:g}s"


def parse_window(text: str) -> Window:
    """``count:5000`` or ``5000`` (predictions), ``time:1h`` or ``1h`` (a period)."""
    match = _COUNT.match(text)
    if match is not None:
        size = int(match.group(1))
        if not 1 <= size <= MAX_COUNT:
            raise InvalidInputError(f"A count window holds 1 to {MAX_COUNT} predictions.")
        return Window("count", float(size))
    body = text.strip().removeprefix("time:")
    try:
        seconds = parse_duration(body, what="window")
    except InvalidInputError:
        raise InvalidInputError(
            f"Invalid window {text[:40]!r}: write count:5000 (the last 5000 predictions) or "
            "time:1h (the last hour; s, m, h, d)."
        ) from None
    if seconds <= 0:
        raise InvalidInputError("A time window must be longer than 0 seconds.")
    return Window("time", seconds)


def expand_log(frame: pl.DataFrame) -> pl.DataFrame:
    """Logged rows with their inputs as feature columns and the prediction decoded."""
    import polars as pl

    frame = _with_scores(frame)
    if frame.height == 0:
        return frame.drop("inputs", "prediction").with_columns(
            pl.lit(None, dtype=pl.String).alias(PREDICTION)
        )
    inputs = frame.get_column("inputs").str.json_decode(infer_schema_length=None)
    features = inputs.struct.unnest() if isinstance(inputs.dtype, pl.Struct) else pl.DataFrame()
    try:
        predicted = frame.get_column("prediction").str.json_decode(infer_schema_length=None)
    except Exception:  # mixed types: keep the text
        predicted = frame.get_column("prediction")
    if isinstance(predicted.dtype, pl.List | pl.Struct | pl.Array):
        predicted = frame.get_column("prediction")
    base = frame.drop("inputs", "prediction")
    clashing = [c for c in features.columns if c in base.columns or c == PREDICTION]
    if clashing:
        features = features.rename({c: f"input.{c}" for c in clashing})
    return pl.concat([base, features], how="horizontal").with_columns(predicted.alias(PREDICTION))


def _with_scores(frame: pl.DataFrame) -> pl.DataFrame:
    """``score``/``scores`` renamed to ``SCORE``/``SCORES`` (null columns when absent), so a
    feature named ``score`` never clashes with them."""
    import polars as pl

    added = []
    for logged, column, dtype in (("score", SCORE, pl.Float64), ("scores", SCORES, pl.String)):
        if logged in frame.columns:
            added.append(pl.col(logged).cast(dtype).alias(column))
        else:
            added.append(pl.lit(None, dtype=dtype).alias(column))
    dropped = [c for c in ("score", "scores") if c in frame.columns]
    return frame.with_columns(added).drop(dropped)


def read_window(
    session: Session,
    blobs: BlobStore,
    project_id: str,
    deployments: Sequence[str],
    window: Window,
    *,
    now: datetime,
) -> tuple[pl.DataFrame, datetime | None, datetime | None]:
    """The window's logged predictions of ``deployments`` (expanded), and its time span."""
    import polars as pl

    repo = DeploymentRepository(session, project_id)
    since = now - timedelta(seconds=window.size) if window.kind == "time" else None
    batches: list[Any] = []
    for name in deployments:
        batches.extend(repo.log_batches(name, since=since, until=now))
    batches.sort(key=lambda b: (b.last_at, b.id), reverse=True)
    if window.kind == "count":
        chosen, total = [], 0
        for batch in batches:
            if total >= window.size:
                break
            chosen.append(batch)
            total += batch.rows
        batches = chosen
    digests = [b.digest for b in batches]
    frames = [pl.read_parquet(io.BytesIO(blobs.get_bytes(d, scope=project_id))) for d in digests]
    if not frames:
        from keel.serving._predlog import _to_table

        empty: Any = pl.from_arrow(_to_table([]))
        return expand_log(empty), since, now
    # logs written before the score columns existed lack them: they read as null
    frame = pl.concat(frames, how="diagonal_relaxed").sort("timestamp")
    frame = frame.filter(pl.col("timestamp") < now)
    if since is not None:
        frame = frame.filter(pl.col("timestamp") >= since)
    else:
        frame = frame.tail(int(window.size))
    start = frame.get_column("timestamp").min() if frame.height else since
    end = frame.get_column("timestamp").max() if frame.height else now
    return expand_log(frame), start, end  # type: ignore[return-value]
