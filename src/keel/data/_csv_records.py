"""CSV records read by Keel's own rules (RFC 4180 quoting, as ``_csv`` describes): where a chunk
may be cut, where quotes stand in a piece (a quote inside an unquoted field, a quoted field that
never closes, a record over its limit), whole records split from a piece, however long a field,
for the header, the detection and the record-by-record reader, and that reader itself.

The record-by-record reader (``parse_records``) reads a piece Polars cannot be trusted with: it
splits the records in Python, makes the malformed ones rejects, and has Polars' CSV parser read
the values of the others into their column types, so that a value gets the same value (or is a
reject) whichever reader its piece went to, as the same file must give the same rows whatever
its chunk size. Spaces and tabs around a value of a column that is not text are not part of it
(``1, 5`` is ``(1, 5)``; Polars alone takes them before a number or a date but not after one,
nor around a boolean or a date-time); text keeps them. A blank line is no row.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from keel.data._csv_quotes import MalformedError
from keel.data._model import Reject

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "SAMPLE",
    "SNIFF_CAP",
    "SNIFF_RECORDS",
    "blank_rows",
    "count_newlines",
    "drain",
    "drop_blank_lines",
    "leading_blank_end",
    "leading_records",
    "no_cr",
    "parse_records",
    "quoted_record",
    "records_as_csv",
    "sample_end",
    "split_lines",
    "split_records",
]

SAMPLE = 64 * 1024
SNIFF_RECORDS = 5
SNIFF_CAP = 1024 * 1024


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


def leading_blank_end(data: bytes) -> int:
    """Where the blank lines (LF or CRLF alone) at the start of ``data`` end (Polars takes a
    piece's first line for its width, so a piece must not start with one)."""
    pos = 0
    while True:
        if data.startswith(b"\n", pos):
            pos += 1
        elif data.startswith(b"\r\n", pos):
            pos += 2
        else:
            return pos


def blank_rows(data: bytes, short: pl.Series, delimiter: str, width: int) -> list[int] | None:
    """Which of the rows whose last field is empty (``short``) are blank lines, which Polars
    reads as rows of nulls; None when one of the others is a short line (fewer fields than
    ``width``), not a row whose last field is empty. For a piece without a quote, which Polars
    reads a row a line (the n-th row is the n-th line). Vectorised with NumPy."""
    try:
        import numpy as np
    except ImportError:  # Polars does not need NumPy
        return _blank_rows_one_by_one(data, short, delimiter, width)
    if len(delimiter.encode()) != 1:
        return _blank_rows_one_by_one(data, short, delimiter, width)
    array = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(array == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))  # the last line, unterminated
    rows = short.arg_true().to_numpy().astype(np.int64)  # (unsigned: rows - 1 would wrap)
    if rows.size and rows[-1] >= ends.size:
        return None
    stops = ends[rows]
    starts = np.where(rows > 0, ends[np.maximum(rows - 1, 0)] + 1, 0)
    size = stops - starts
    blank = (size == 0) | ((size == 1) & (array[np.minimum(starts, len(data) - 1)] == 13))
    separators = np.flatnonzero(array == ord(delimiter))
    fields = np.searchsorted(separators, stops) - np.searchsorted(separators, starts) + 1
    if not np.all(blank | (fields == width)):
        return None
    found: list[int] = rows[blank].tolist()
    return found


def _blank_rows_one_by_one(
    data: bytes, short: pl.Series, delimiter: str, width: int
) -> list[int] | None:
    """``blank_rows`` without NumPy."""
    lines = data.split(b"\n")
    sep = delimiter.encode()
    blank: list[int] = []
    for index in short.arg_true().to_list():
        if index >= len(lines) - data.endswith(b"\n"):
            return None
        if lines[index] in (b"", b"\r"):
            blank.append(index)
        elif lines[index].count(sep) != width - 1:
            return None
    return blank


def drop_blank_lines(data: bytes, quote: bytes) -> bytes | None:
    """``data`` without its blank lines (LF or CRLF alone) outside quoted fields, or None when it
    has none. ``data`` starts at a record start, not at a blank line, and its quotes tell where
    quoted fields are by their count (as ``open_quote`` checked)."""
    cuts: list[tuple[int, int]] = []  # the bytes of each blank line, after the LF before it
    for pattern in (b"\n\n", b"\n\r\n"):
        at = data.find(pattern)  # memmem-fast
        while at >= 0:
            cuts.append((at + 1, at + len(pattern)))
            at = data.find(pattern, at + 1)
    if not cuts:
        return None
    kept: list[bytes] = []
    pos = counted = quotes = 0
    for start, end in sorted(cuts):
        quotes += data.count(quote, counted, start)
        counted = start
        if quotes % 2 == 0:  # (else inside a quoted field: text)
            kept.append(data[pos:start])
            pos = end
    if not kept:
        return None
    kept.append(data[pos:])
    return b"".join(kept)


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


# --- the record-by-record reader --------------------------------------------------------------

_MAX_TEXT = 200
_ESCAPED = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, surrogate-escaped
_SPACES = " \t"  # around a value of a column that is not text: not part of the value


def parse_records(
    data: bytes,
    schema: dict[str, pl.DataType],
    delimiter: str,
    first_line: int,
    encoding: str = "utf-8",
    quote: str | None = '"',
) -> tuple[pl.DataFrame, list[Reject]]:
    """Read ``data`` record by record; return the good rows and the rejects (in line order).

    A record is a reject when it is malformed, holds a byte that is not text in ``encoding``,
    has another number of fields than ``schema`` columns, or a value that is not of its
    column's type; a blank line is no record.
    """
    import polars as pl

    width = len(schema)
    text = data.decode("utf-8", errors="surrogateescape")
    ascii_only = text.isascii()  # (a surrogate-escaped byte is not ASCII)
    good: list[list[str | None]] = []
    lines: list[int] = []
    spans: list[tuple[int, int]] = []  # where each good record's text is, for its reject
    rejects: list[Reject] = []
    for first, last, start, end, record in split_records(text, delimiter, quote):
        if not record:
            continue  # a blank line
        number = first_line + first
        if isinstance(record, str):
            reason = f"malformed CSV: {record}"
        elif not ascii_only and (bad_byte := _bad_byte(record, encoding)) is not None:
            reason = f"byte {bad_byte} is not text in the file's encoding ({encoding})"
        elif len(record) != width:
            reason = f"{len(record)} fields where the header has {width}"
        else:
            good.append(record)
            lines.append(number)
            spans.append((start, end))
            continue
        if last > first:  # a record over several lines is one reject: name them all
            reason += f" (lines {number}-{first_line + last}: a quoted field spans them)"
        rejects.append(Reject(number, reason, _shown(text[start:end])))
    strings = pl.DataFrame(good, schema=dict.fromkeys(schema, pl.String), orient="row")
    frame, reasons = _typed(strings, schema)
    for index, why in enumerate(reasons):
        if why is not None:
            rejects.append(Reject(lines[index], why, _shown(text[slice(*spans[index])])))
    rejects.sort(key=lambda r: r.line)
    if any(why is not None for why in reasons):
        frame = frame.filter(pl.Series([why is None for why in reasons], dtype=pl.Boolean))
    return frame, rejects


def _typed(
    strings: pl.DataFrame, schema: dict[str, pl.DataType]
) -> tuple[pl.DataFrame, list[str | None]]:
    """``strings`` (every column text) in the types of ``schema``, and for each row why it is a
    reject (None when it is not): the first value that is not of its column's type.

    The values are read by Polars' CSV parser (``ignore_errors``: a value it cannot read is
    null), written to it as a CSV of the columns that are not text, every value quoted,
    without the spaces around it; so a value gets the type and the value the fast path gives
    it. Polars' string casts differ: ``str.to_datetime`` fails the whole piece when the first
    value has no format it knows, and keeps the time zone of ``...Z`` in a column without one.
    A boolean may also be 1 or 0 (Polars' parser takes only true and false, in any case).
    """
    import polars as pl

    reasons: list[str | None] = [None] * strings.height
    if not strings.height:
        return pl.DataFrame(schema=schema), reasons
    # Worked on as c0, c1 ...: Polars takes a name such as '*' or '^a.*$' in a Series method
    # for a pattern of names.
    typed = {f"c{i}": name for i, (name, dtype) in enumerate(schema.items()) if dtype != pl.String}
    if not typed:
        return strings, reasons
    bare: list[pl.Series] = []
    for key, name in typed.items():
        column = strings.get_column(name).alias(key).str.strip_chars(_SPACES).fill_null("")
        if schema[name] == pl.Boolean:
            column = column.replace({"1": "true", "0": "false"})
        bare.append(column)
    buffer = io.BytesIO()
    pl.DataFrame(bare).write_csv(buffer, include_header=False, quote_style="always")
    values = pl.scan_csv(
        buffer.getvalue(),
        has_header=False,
        schema={key: schema[name] for key, name in typed.items()},
        quote_char='"',
        ignore_errors=True,
    ).collect()
    for column in bare:
        failed = values.get_column(column.name).is_null() & (column != "")
        if not failed.any():
            continue
        name = typed[column.name]
        original = strings.get_column(name)
        for index in failed.arg_true().to_list():
            if reasons[index] is None:
                shown = str(original[index])[:40]
                reasons[index] = f"column '{name}': cannot read {shown!r} as {schema[name]}"
    read = {name: key for key, name in typed.items()}
    frame = pl.DataFrame(
        values.get_column(read[name]).alias(name) if name in read else strings.get_column(name)
        for name in schema
    )
    return frame, reasons


def _undecodable(field: str, encoding: str) -> str | None:
    """The first byte of ``field`` that is not text in ``encoding`` (as ``0x90``), or None.

    In a UTF-8 file such a byte is surrogate-escaped in ``field`` as itself; in another
    encoding it was marked as U+DC00 + the byte (``_csv_detect.mark_errors``), whose three
    UTF-8 bytes are surrogate-escaped here one by one.
    """
    found = _ESCAPED.search(field)
    if found is None:
        return None
    tail = [ord(c) - 0xDC00 for c in field[found.start() : found.start() + 3]]
    marked = (
        encoding not in ("utf-8", "utf-8-sig")
        and len(tail) == 3
        and tail[0] == 0xED
        and 0xB0 <= tail[1] <= 0xB3
        and 0x80 <= tail[2] <= 0xBF
    )
    if marked:
        code = 0xD000 | (tail[1] & 0x3F) << 6 | tail[2] & 0x3F
        return f"0x{code - 0xDC00:02x}"
    return f"0x{tail[0]:02x}"


def _shown(text: str) -> str:
    """The start of a record's text as a reject shows it (bytes not UTF-8 as U+FFFD)."""
    text = text[:_MAX_TEXT].rstrip("\r\n")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _bad_byte(record: list[str | None], encoding: str) -> str | None:
    """The first byte in ``record`` that is not text in ``encoding`` (see ``_undecodable``)."""
    for field in record:
        if field is not None and not field.isascii():
            found = _undecodable(field, encoding)
            if found is not None:
                return found
    return None
