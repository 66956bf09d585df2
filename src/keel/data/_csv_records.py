"""CSV records read by Keel's own rules (RFC 4180 quoting, as ``_csv`` describes): where a chunk
may be cut, where quotes stand in a piece (a quote inside an unquoted field, a quoted field that
never closes, a record over its limit), and whole records split from a piece, however long a
field, for the header, the detection and the record-by-record reader."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

__all__ = [
    "MalformedError",
    "RecordTooLongError",
    "SAMPLE",
    "SNIFF_CAP",
    "SNIFF_RECORDS",
    "drain",
    "leading_records",
    "count_newlines",
    "no_cr",
    "open_quote",
    "quoted_record",
    "quotes_open_fields",
    "records_as_csv",
    "sample_end",
    "scan_quotes",
    "short_rows_are_fine",
    "size_text",
    "split_lines",
    "split_point",
    "split_records",
    "stray_problem",
]

SAMPLE = 64 * 1024
SNIFF_RECORDS = 5
SNIFF_CAP = 1024 * 1024


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


def count_newlines(data: bytes) -> int:
    """How many newline bytes ``data`` holds (NumPy: about 3x faster than ``bytes.count``)."""
    try:
        import numpy as np
    except ImportError:  # Polars does not need NumPy
        return data.count(b"\n")
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")))


def drain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def short_rows_are_fine(data: bytes, short: Any, delimiter: str, width: int) -> bool:
    """Whether rows whose last field is empty really have every field (not a short line);
    for a piece without a quote (a quoted newline would shift rows against lines)."""
    lines = data.split(b"\n")
    sep = delimiter.encode()
    for index in short.arg_true().to_list():
        if index >= len(lines) or lines[index].rstrip(b"\r").count(sep) != width - 1:
            return False
    return True


def sample_end(data: bytes, quote: bytes | None = b'"') -> int:
    """Where the sample to detect the delimiter and header in ends: after whole records (the
    quotes before it balanced), the first record whatever its length, then more while the
    sample is under ``SAMPLE`` bytes or ``SNIFF_RECORDS`` records, up to ``SNIFF_CAP``."""
    end = records = quotes = pos = 0
    size = len(data)
    while pos < size and not (records and pos > SNIFF_CAP):
        newline = data.find(b"\n", pos)
        stop = size if newline < 0 else newline + 1
        if quote is not None:
            quotes += data.count(quote, pos, stop)
        pos = stop
        if quotes % 2 or (records and stop > SNIFF_CAP):
            continue
        end, records = stop, records + 1
        if end >= SAMPLE and records >= SNIFF_RECORDS:
            break
    return end if records else size


def leading_records(
    sample: str, delimiter: str, quote: str | None = '"', limit: int = 50
) -> tuple[list[list[str]], int]:
    """The first (non-blank) records of ``sample`` (a quoted field may span lines, and be
    any length), and the offset in ``sample`` where the first of them ends.

    Records end at LF only, as in the chunked parse (a CR alone stays in its value). Bytes
    that are not UTF-8 (surrogate-escaped in ``sample``) become U+FFFD. Raises
    ``MalformedError`` when the first record cannot be read.
    """
    records: list[list[str]] = []
    first_end = 0
    for line, _, _, end, record in split_records(sample, delimiter, quote):
        if isinstance(record, str):  # sniff what there is before a malformed record
            if records:
                break
            raise MalformedError(line, f"cannot be read as CSV: {record}.")
        if not record:
            continue  # a blank line (before the header, it is not the header)
        if not records:
            first_end = end
        records.append(
            [
                (field or "").encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                for field in record
            ]
        )
        if len(records) >= limit:
            break
    return records, first_end


def split_records(
    text: str, delimiter: str, quote: str | None
) -> Iterator[tuple[int, int, int, int, list[str | None] | str]]:
    """The records of ``text`` as Polars reads them: (first line, last line, start, end,
    fields), lines counted from 0, ``fields`` what is wrong with the record when it is
    malformed (a text, not a list).

    Records end at LF; a CR at the end of a field (before a delimiter, LF or the end of the
    text) goes, a CR elsewhere stays in its value. A quote at the start of a field opens a
    quoted field, which runs over delimiters and line ends to the next quote not doubled (a
    doubled quote is one quote); a quote inside an unquoted field is text. An empty field is
    None, an empty quoted field "" (as Polars reads them); a blank line is a record of no
    field.
    """
    if quote is None:
        yield from split_lines(text, delimiter)
        return
    # The csv module reads the same records in C, but for a field over its size limit, a CR
    # at the end of a field, and an empty quoted field (read as an empty one): where those
    # may be (or where it raises), the record is read again by ``quoted_record``.
    buffer = io.StringIO(text, newline="\n")  # lines end at LF only; a CR stays
    reader = csv.reader(buffer, delimiter=delimiter, quotechar=quote, strict=True)
    carriage = "\r" in text
    base = 0  # the lines read before ``reader`` started
    while True:
        start, first = buffer.tell(), base + reader.line_num
        try:
            fields: list[str] | None = next(reader)
        except StopIteration:
            return
        except csv.Error:
            fields = None
        end = buffer.tell()
        if fields is not None and not (
            (carriage and text.find("\r", start, end) >= 0)
            or ("" in fields and text.find(quote * 2, start, end) >= 0)
        ):
            yield first, base + reader.line_num - 1, start, end, [f or None for f in fields]
            continue
        outcome, end, last = quoted_record(text, start, delimiter, quote, first)
        yield first, last, start, min(end, len(text)), outcome
        buffer.seek(min(end, len(text)))
        reader = csv.reader(buffer, delimiter=delimiter, quotechar=quote, strict=True)
        base = last + 1


def split_lines(text: str, delimiter: str) -> Iterator[tuple[int, int, int, int, list[str | None]]]:
    """``split_records`` for a file that quotes no field: a record a line."""
    size = len(text)
    pos = line = 0
    while pos < size:
        newline = text.find("\n", pos)
        stop = size if newline < 0 else newline
        body = text[pos:stop]
        fields: list[str | None] = []
        if "\r" in body:
            fields = [no_cr(f) or None for f in body.split(delimiter)] if body != "\r" else []
        elif body:
            fields = [f or None for f in body.split(delimiter)]
        yield line, line, pos, min(stop + 1, size), fields
        pos, line = stop + 1, line + 1


def no_cr(field: str) -> str:
    """``field`` without one CR at its end (Polars drops it before a delimiter or line end)."""
    return field[:-1] if field.endswith("\r") else field


def quoted_record(
    text: str, pos: int, delimiter: str, quote: str, line: int
) -> tuple[list[str | None] | str, int, int]:
    """The record of ``text`` from ``pos``: its fields (none for a blank line) or what is
    wrong with it, where the next record starts, and the line it ends on."""
    size = len(text)
    fields: list[str | None] = []
    line_end = text.find("\n", pos)
    line_end = size if line_end < 0 else line_end
    if text[pos:line_end] in ("", "\r"):  # a blank line
        return [], line_end + 1, line
    while True:
        if not text.startswith(quote, pos):  # an unquoted field, to a delimiter or line end
            found = text.find(delimiter, pos, line_end)
            if found >= 0:
                fields.append(no_cr(text[pos:found]) or None)
                pos = found + 1
                continue
            fields.append(no_cr(text[pos:line_end]) or None)
            return fields, line_end + 1, line
        parts: list[str] = []
        start = pos + 1
        while True:
            close = text.find(quote, start)
            if close < 0:
                line += text.count("\n", pos, size - 1)
                return "a quoted field is not closed before the end of the file", size, line
            parts.append(text[start:close])
            if not text.startswith(quote, close + 1):
                break
            parts.append(quote)
            start = close + 2
        line += text.count("\n", pos, close)
        fields.append("".join(parts))
        pos = close + 1
        if pos > line_end:
            line_end = text.find("\n", pos)
            line_end = size if line_end < 0 else line_end
        if text.startswith("\r", pos) and (
            pos + 1 in (line_end, size) or text.startswith(delimiter, pos + 1)
        ):
            pos += 1
        if text.startswith(delimiter, pos):
            pos += 1
            continue
        if pos >= line_end:
            return fields, pos + 1, line
        problem = (
            f"{text[pos]!r} after the closing quote of field {len(fields)} (quote the whole "
            "field and double the quotes in it)"
        )
        return problem, line_end + 1, line


def records_as_csv(sample: bytes, delimiter: str, quote: str | None, width: int) -> bytes:
    """The first 10,000 records of ``sample`` with ``width`` fields, written again as plain
    CSV quoted with '"' (the malformed ones, rejects later, left out)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quotechar='"', lineterminator="\n")
    count = 0
    text = sample.decode("utf-8", errors="surrogateescape")
    for _, _, _, _, record in split_records(text, delimiter, quote):
        if isinstance(record, list) and len(record) == width:
            writer.writerow(["" if field is None else field for field in record])
            count += 1
            if count == 10_000:
                break
    return out.getvalue().encode("utf-8", errors="surrogateescape")
