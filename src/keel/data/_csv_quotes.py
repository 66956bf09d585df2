"""Where quotes stand in CSV bytes, by RFC 4180 as ``_csv`` reads it: where a chunk may be cut,
where a quoted field left open starts, and the errors for a quote inside an unquoted field and
a record over its limit."""

from __future__ import annotations

__all__ = [
    "MalformedError",
    "RecordTooLongError",
    "open_quote",
    "quotes_open_fields",
    "scan_quotes",
    "size_text",
    "split_point",
    "stray_problem",
]


def split_point(data: bytes, quote: bytes | None = b'"', *, quotes: int = 0) -> int:
    """The end of the last complete line of ``data`` whose quotes are balanced (or -1).

    ``quotes`` is the number of quote characters before ``data`` (in a carried-over tail).
    Balanced by count, as Polars splits a file: the checks of ``open_quote`` make it exact.
    """
    cut = data.rfind(b"\n")
    if cut < 0:
        return -1
    if quote is None or (quotes % 2 == 0 and data.find(quote, 0, cut) < 0):
        return cut + 1  # no quote at all (the common case): find is memchr-fast, count is not
    inside = (quotes + data.count(quote, 0, cut)) % 2
    while cut >= 0:
        if inside == 0:
            return cut + 1
        previous = data.rfind(b"\n", 0, cut)
        inside = (inside + data.count(quote, previous + 1, cut)) % 2
        cut = previous
    return -1


class MalformedError(Exception):
    """What is wrong at a line of a piece of CSV (``newlines`` after where the piece starts)."""

    def __init__(self, newlines: int, problem: str) -> None:
        super().__init__(problem)
        self.newlines = newlines
        self.problem = problem


class RecordTooLongError(Exception):
    """A record (from the start of ``data``) that goes on past ``limit`` bytes."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__(f"a record longer than {limit} bytes")
        self.data = data
        self.limit = limit


def open_quote(data: bytes, delimiter: int, quote: int) -> int:
    """Where the quoted field still open at the end of ``data`` opens (-1 when none).

    ``data`` starts at a record start. Raises ``MalformedError`` at the first unquoted field
    that holds an odd number of quotes: there the count of quotes, which cuts the chunks (and
    by which Polars splits and parses them), stops telling where records end.
    """
    paired = quotes_open_fields(data, delimiter, quote)
    return paired if paired is not None else scan_quotes(data, delimiter, quote)


def quotes_open_fields(data: bytes, delimiter: int, quote: int) -> int | None:
    """Where the quote left open at the end of ``data`` stands (-1 when none), when every
    quote that opens by count (the first, the third ...) starts a field (after a delimiter, a
    line end or a closing quote, whose doubling it is); None when one does not (or without
    NumPy), for ``scan_quotes`` to decide. Vectorised: about a quarter of the CPU of Polars'
    parse of the same bytes when every field is quoted (and ``_read`` skips it for a piece
    without a quote)."""
    try:
        import numpy as np
    except ImportError:  # Polars does not need NumPy
        return None
    array = np.frombuffer(data, dtype=np.uint8)
    at = np.flatnonzero(array == quote)
    opening = at[0::2]
    before = array[opening - 1]  # (before a quote at offset 0: the last byte, set below)
    doubled = before == quote
    starts = doubled | (before == delimiter) | (before == 10)
    if opening.size and opening[0] == 0:
        starts[0], doubled[0] = True, False  # data starts at a record start
    if not starts.all():
        return None
    if at.size % 2 == 0:
        return -1
    return int(opening[np.flatnonzero(~doubled)[-1]])  # (not a doubled quote inside it)


def scan_quotes(data: bytes, delimiter: int, quote: int) -> int:
    """``open_quote`` field by field: each quote outside a quoted field either opens one (at
    a field start) or stands in an unquoted field, whose quotes must pair up there."""
    mark, separator = bytes((quote,)), bytes((delimiter,))
    size = len(data)
    pos = 0
    while True:
        at = data.find(mark, pos)
        if at < 0:
            return -1
        before = data[at - 1] if at else 10
        if before in (delimiter, 10):  # a quoted field: to a quote that is not doubled
            close = at
            while True:
                close = data.find(mark, close + 1)
                if close < 0:
                    return at
                if close + 1 < size and data[close + 1] == quote:
                    close += 1
                    continue
                break
            pos = close + 1
            continue
        line_end = data.find(b"\n", at)
        line_end = size if line_end < 0 else line_end
        end = data.find(separator, at, line_end)
        end = line_end if end < 0 else end
        if data.count(mark, at, end) % 2:
            start = max(data.rfind(separator, 0, at), data.rfind(b"\n", 0, at)) + 1
            field = data[start:end].rstrip(b"\r").decode("utf-8", "replace")
            raise MalformedError(data.count(b"\n", 0, at), stray_problem(field, chr(quote)))
        pos = end


def stray_problem(field: str, quote: str) -> str:
    shown = field if len(field) <= 60 else field[:57] + "..."
    fixed = quote + shown.replace(quote, quote * 2) + quote
    return (
        f"has a quote inside an unquoted field ({shown!r}), which readers read differently "
        "(Polars runs a quoted section from it to the next quote, across delimiters and line "
        f"ends). Quote the whole field and double the quotes in it ({fixed}), or pass "
        "quote_char=None (the CLI's --quote-char none) if no field of the file is quoted."
    )


def size_text(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 1024} KiB"
