"""Time in one place: timezone-aware UTC datetimes and epoch milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["from_millis", "now", "now_millis", "to_millis"]


def now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def now_millis() -> int:
    """The current time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def to_millis(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def from_millis(millis: int) -> datetime:
    """The aware UTC datetime of a count of milliseconds since the epoch."""
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
