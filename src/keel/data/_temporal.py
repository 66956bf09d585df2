"""Times in checks: ISO 8601 text from a suite read back as a column's dates, times, date-times
or durations, compared as instants; durations parsed and printed; ages for humans. Pure."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

__all__ = ["as_datetime", "human_age", "iso_duration", "parse_duration", "temporal_value"]


def temporal_value(value: object, dtype: pl.DataType) -> object:
    """``value`` as a check compares it with a column of ``dtype``.

    On a temporal column an ISO 8601 string (how ``parse_suite`` keeps dates, times and
    durations) becomes a value of the column's kind again: a date or date-time, a time of day
    (``08:30:00``), a duration (``PT1H30M``, ``P2D``; or as Python prints one, ``1 day,
    2:00:00``); a string that is none is returned as is. On a date-time column values are
    compared as instants: an aware value is converted to the column's time zone, a naive value
    is read in the column's zone (and a date is midnight there); a column without a zone is
    read as UTC, as freshness reads it. Anything else is returned as is.
    """
    import polars as pl

    if isinstance(value, str) and dtype.is_temporal():
        text = value.strip()
        try:
            if dtype == pl.Time:
                return time.fromisoformat(text)
            if isinstance(dtype, pl.Duration):
                duration = parse_duration(text)
                return value if duration is None else duration
            value = (datetime if "T" in text or " " in text else date).fromisoformat(text)
        except ValueError:
            return value
    if not isinstance(dtype, pl.Datetime) or not isinstance(value, date):
        return value
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if dtype.time_zone is None:
        return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(dtype.time_zone)
    return value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)


#: an ISO 8601 duration in weeks, days, hours, minutes and seconds (years and months have no
#: fixed length), and a duration as Python prints one (``-1 day, 23:00:00.5``)
_ISO_DURATION = re.compile(
    r"([-+])?P(?!$)(?:([\d.]+)W)?(?:([\d.]+)D)?(?:T(?=[\d.])(?:([\d.]+)H)?(?:([\d.]+)M)?"
    r"(?:([\d.]+)S)?)?",
    re.IGNORECASE,
)
_PRINTED_DURATION = re.compile(r"(?:(-?\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d{1,6})?)")
_MICROSECONDS = (604_800_000_000, 86_400_000_000, 3_600_000_000, 60_000_000, 1_000_000)


def parse_duration(text: str) -> timedelta | None:
    """``PT1H30M``, ``P2D``, ``-PT0.5S`` (ISO 8601, without years or months) or ``1 day,
    2:00:00`` as a ``timedelta``; None when ``text`` is neither, or not a whole number of
    microseconds."""
    if match := _ISO_DURATION.fullmatch(text):
        sign, numbers = match.group(1), match.groups()[1:]
    elif match := _PRINTED_DURATION.fullmatch(text):
        days, *clock = match.groups()
        sign, numbers = None, (None, days or "0", *clock)
    else:
        return None
    try:
        total = sum(Decimal(n) * unit for n, unit in zip(numbers, _MICROSECONDS, strict=True) if n)
    except InvalidOperation:
        return None
    if total != int(total):
        return None
    return timedelta(microseconds=int(total) * (-1 if sign == "-" else 1))


def iso_duration(value: timedelta) -> str:
    """``value`` in ISO 8601 (``PT1H30M``, ``-P1DT0.5S``, ``PT0S``): what ``parse_duration``
    reads back."""
    micros = abs(value) // timedelta(microseconds=1)
    days, micros = divmod(micros, 86_400_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds = Decimal(micros) / 1_000_000
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    text = ("P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")).rstrip("P")
    return ("-" if value < timedelta(0) else "") + (text or "PT0S")


def as_datetime(value: object) -> datetime | None:
    """A Polars temporal scalar as an aware UTC datetime (dates at midnight)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def human_age(seconds: float) -> str:
    """``93784`` → ``1d 2h 3m``."""
    delta = timedelta(seconds=round(seconds))
    days, rest = delta.days, delta.seconds
    parts = [f"{days}d"] if days else []
    parts += [f"{rest // 3600}h"] if rest >= 3600 else []
    parts += [f"{rest % 3600 // 60}m"] if rest % 3600 >= 60 else []
    return " ".join(parts) or f"{round(seconds)}s"
