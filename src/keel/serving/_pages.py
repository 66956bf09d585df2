"""Pages of the prediction logs: the (timestamp, prediction id) order, page tokens that continue
right after a page's last row, and reading only the logged batches a page needs."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "AT",
    "DEFAULT_PREDICTION_ROWS",
    "KEY",
    "MAX_PAGE_TOKEN_CHARS",
    "Cursor",
    "PredictionPage",
    "as_utc",
    "check_prediction_limit",
    "decode_page_token",
    "first_rows",
    "micros",
    "rows_of",
    "token_after",
]

#: Rows one read of the prediction logs returns unless the caller asks for another ``limit``.
DEFAULT_PREDICTION_ROWS = 100_000
#: The longest page token accepted (the tokens handed out are far shorter).
MAX_PAGE_TOKEN_CHARS = 512
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
AT = "__keel_at_us"  # the sort key's timestamp (microseconds since the epoch), while reading
KEY = [AT, "prediction_id"]  # the order of logged predictions (a prediction id is unique)


@dataclass(frozen=True, slots=True)
class PredictionPage:
    """One page of logged predictions, in (timestamp, prediction id) order.

    ``next_page_token`` is None on the last page; otherwise more rows exist, and passing it
    back as ``page_token`` (with the same deployment and window) returns the rows right after
    this page: the pages of a window concatenate to the window, each row exactly once.
    """

    frame: pl.DataFrame
    next_page_token: str | None

    @property
    def has_more(self) -> bool:
        return self.next_page_token is not None


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last row of a page: its timestamp (microseconds since the epoch) and id."""

    at: int
    prediction_id: str

    @property
    def moment(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.at)


def check_prediction_limit(limit: object) -> int | None:
    """``limit`` as rows to return (1 or more), or None: every row of the window."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(
            f"Invalid limit {limit!r:.40}: give the most rows to return as a whole number, 1 or "
            "more (None reads every row of the window into memory; page through a large one "
            "with page_token instead).",
            limit=repr(limit)[:40],
        )
    return limit


def micros(moment: datetime) -> int:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(microseconds=1)


_FIRST_US, _LAST_US = micros(datetime.min), micros(datetime.max)  # what a datetime can hold


def as_utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is UTC (every logged time is)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def token_after(frame: pl.DataFrame) -> str:
    """The page token of the rows after the last row of ``frame`` (in page order)."""
    at, prediction_id = frame.get_column("timestamp")[-1], frame.get_column("prediction_id")[-1]
    raw = json.dumps([1, micros(at), prediction_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page_token(token: str | None) -> Cursor | None:
    """The cursor in a page token made by ``token_after``; a token that is not one is refused."""
    if token is None:
        return None
    bad = InvalidInputError(
        f"Invalid page_token {str(token)[:40]!r}: pass back the next_page_token of the previous "
        "page unchanged (the X-Keel-Next-Page-Token header over REST), or leave it out to start "
        "at the beginning of the window.",
    )
    if not isinstance(token, str) or not token or len(token) > MAX_PAGE_TOKEN_CHARS:
        raise bad
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not (
        isinstance(value, list)
        and len(value) == 3
        and value[0] == 1
        and type(value[1]) is int
        and isinstance(value[2], str)
    ):
        raise bad
    if not _FIRST_US <= value[1] <= _LAST_US:
        raise bad
    return Cursor(value[1], value[2])


def rows_of(
    part: pl.DataFrame,
    *,
    since: datetime | None,
    until: datetime | None,
    after: Cursor | None,
) -> pl.DataFrame:
    """The rows of one stored batch inside the window and after the cursor, with the sort key."""
    import polars as pl

    at = pl.col(AT)
    part = part.with_columns(pl.col("timestamp").dt.epoch("us").alias(AT))
    keep = []
    if since is not None:
        keep.append(at >= micros(since))
    if until is not None:
        keep.append(at < micros(until))
    if after is not None:
        keep.append(
            (at > after.at) | ((at == after.at) & (pl.col("prediction_id") > after.prediction_id))
        )
    return part.filter(*keep) if keep else part


def first_rows(
    batches: Sequence[tuple[int, str]], read: Callable[[str], pl.DataFrame], count: int
) -> pl.DataFrame | None:
    """The first ``count`` rows, in (timestamp, prediction id) order, of stored batches given
    as ``(first_at in microseconds, digest)`` in ``first_at`` order; ``read`` loads one.

    Memory holds ``count`` rows and one batch. Once ``count`` rows are held, a batch adds only
    rows sorting before the last of them, and reading stops at the first batch that begins
    after it: its rows, and those of every later batch, all sort after it.
    """
    import polars as pl

    held: pl.DataFrame | None = None
    last: tuple[int, str] | None = None  # the key of the last held row, once ``count`` are held
    for first_at, digest in batches:
        if last is not None and last[0] < first_at:
            break
        part = read(digest)
        if last is not None:
            at, prediction_id = last
            part = part.filter(
                (pl.col(AT) < at) | ((pl.col(AT) == at) & (pl.col("prediction_id") < prediction_id))
            )
        if part.height:
            both = part if held is None else pl.concat([held, part], how="diagonal_relaxed")
            held = both.sort(KEY).head(count)
            if held.height == count:
                last = (held.get_column(AT)[-1], held.get_column("prediction_id")[-1])
    return held
