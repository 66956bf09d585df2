"""The CSV source: encoding, delimiter and header detection, and malformed rows as rejects.

The file is read in chunks of about 16 MiB cut at a line end outside quotes, so memory stays
bounded, and parsed chunks are gathered into batches of about 32 MiB of CSV (the first batch
is the first chunk alone, so that encoding starts while the rest is parsed). Each chunk is
parsed by Polars against the schema fixed from the first chunk (with the user's overrides); a
chunk that does not parse is re-read line by line, and the lines that do not fit (wrong number
of fields, a value that is not of its column's type, bytes that are not text in the encoding)
become rejects with their line numbers and reasons.

The header and the detection read whole records (csv module semantics, so a quoted newline in
a name is kept), however long the first one is, up to ``_MAX_FIRST_RECORD``. Bytes that are
not text in a non-UTF-8 encoding are carried through the UTF-8 pieces as encoded lone
surrogates (never valid UTF-8), so Polars refuses that piece and the record-by-record reader
rejects the rows that hold them, naming the encoding and the byte.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from keel.data._model import Reject
from keel.data._parts import parse_dtype
from keel.data._sources import BlobSink, SourceBatch, open_binary
from keel.errors import InvalidInputError
from keel.settings import redact_url

if TYPE_CHECKING:
    import polars as pl

__all__ = ["CsvSource", "detect_encoding"]

CHUNK_BYTES = 16 * 1024 * 1024
BATCH_BYTES = 32 * 1024 * 1024
_SAMPLE = 64 * 1024
_SNIFF_RECORDS = 5
_SNIFF_CAP = 1024 * 1024
_MAX_FIRST_RECORD = 32 * 1024 * 1024
_MAX_TEXT = 200
_MARK_ERRORS = "keel-csv-mark-undecodable"
_ENCODING_HINT = "Pass the file's encoding with encoding=... (the CLI's --encoding)"
_ESCAPED = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, surrogate-escaped


def detect_encoding(sample: bytes) -> str:
    """The encoding of ``sample``: a BOM's, else UTF-16 or UTF-32 told by where its NUL bytes
    fall, else UTF-8 if it decodes, else cp1252 or latin-1.

    NUL bytes are valid UTF-8, so without the NUL test a BOM-less UTF-16 file would be read as
    UTF-8 with a NUL between every two characters (and a NUL in every column name).
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"  # before UTF-16: the UTF-32-LE BOM starts with the UTF-16-LE one
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in sample:
        wide = _wide_encoding(sample)
        if wide is not None:
            return wide
    cut = sample.rfind(b"\n")
    body = sample[: cut + 1] if cut > 0 else sample
    for candidate in ("utf-8", "cp1252"):
        try:
            body.decode(candidate)
        except UnicodeDecodeError:
            continue
        return candidate
    return "latin-1"


def _wide_encoding(sample: bytes) -> str | None:
    """UTF-16 or UTF-32 (LE or BE) without a BOM, from where the NUL bytes of ``sample`` fall.

    A CSV is mostly ASCII (digits, delimiters, line ends), whose characters in UTF-16-LE are a
    byte and a NUL; so nearly every NUL falls on one parity of offsets (in UTF-32, on three of
    the four offsets modulo 4), which UTF-8 text with a stray NUL in it does not do.
    """
    size = len(sample) - len(sample) % 4
    if size < 4:
        return None
    nuls = [sample[i:size:4].count(0) for i in range(4)]
    quarter = size // 4
    if min(nuls[1:]) >= 0.5 * quarter and nuls[0] <= 0.1 * quarter:
        return "utf-32-le"
    if min(nuls[:3]) >= 0.5 * quarter and nuls[3] <= 0.1 * quarter:
        return "utf-32-be"
    odd, even = nuls[1] + nuls[3], nuls[0] + nuls[2]
    if odd >= 0.2 * quarter * 2 and even * 10 <= odd:
        return "utf-16-le"
    if even >= 0.2 * quarter * 2 and odd * 10 <= even:
        return "utf-16-be"
    return None


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    """Each byte that is not text in the encoding as U+DC00 + the byte (cf. surrogateescape,
    which cannot carry bytes below 0x80); re-encoded with ``surrogatepass`` these are three
    bytes that are never valid UTF-8, so the row holding them becomes a reject."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(chr(0xDC00 + b) for b in exc.object[exc.start : exc.end]), exc.end


def _mark_errors() -> str:
    """The name of the error handler that marks undecodable bytes (registered on first use,
    not at import: ``import keel`` has no side effects)."""
    try:
        codecs.lookup_error(_MARK_ERRORS)
    except LookupError:
        codecs.register_error(_MARK_ERRORS, _mark_undecodable)
    return _MARK_ERRORS


def _split_point(data: bytes, *, quotes: int = 0) -> int:
    """The end of the last complete line of ``data`` whose quotes are balanced (or -1).

    ``quotes`` is the number of quote characters before ``data`` (in a carried-over tail).
    """
    cut = data.rfind(b"\n")
    if cut < 0:
        return -1
    if quotes % 2 == 0 and data.find(b'"', 0, cut) < 0:
        return cut + 1  # no quote at all (the common case): find is memchr-fast, count is not
    inside = (quotes + data.count(b'"', 0, cut)) % 2
    while cut >= 0:
        if inside == 0:
            return cut + 1
        previous = data.rfind(b"\n", 0, cut)
        inside = (inside + data.count(b'"', previous + 1, cut)) % 2
        cut = previous
    return -1


class CsvSource:
    """A CSV file (local path or fsspec URL).

    Args:
        url: where the file is.
        delimiter: the field separator; detected from a sample when None.
        header: whether the first record names the columns; detected when None (not when
            it holds a number).
        encoding: the text encoding; detected (BOM, UTF-16 or UTF-32 by their NUL bytes,
            UTF-8, cp1252, latin-1) when None. Bytes that are not text in it make their rows
            rejects.
        schema: column → type name (``"int64"``, ``"string"``, ``"datetime"`` …) overriding
            the inferred types.
        chunk_bytes: bytes parsed at a time (bounds memory). 16 MiB stays below the size
            at which the C allocator maps fresh pages for every buffer, which costs more
            system time than the parse saves with larger pieces.
        batch_bytes: parsed pieces are gathered into batches (and so parts) of about this
            many bytes of CSV; the first piece is a batch of its own. 32 MiB: on two cores
            smaller batches start encoding sooner and leave less to encode once the whole
            file is parsed (about 5% faster than 64 MiB); below that, the cost per part grows.
    """

    def __init__(
        self,
        url: str,
        *,
        delimiter: str | None = None,
        header: bool | None = None,
        encoding: str | None = None,
        schema: Mapping[str, str] | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        if delimiter is not None and len(delimiter) != 1:
            raise InvalidInputError(f"The delimiter must be one character, got {delimiter!r}.")
        if encoding is not None:
            try:
                info = codecs.lookup(encoding)
            except LookupError:
                raise InvalidInputError(f"Unknown encoding {encoding!r}.") from None
            if not info._is_text_encoding:  # zlib, base64, rot13: not bytes to text
                raise InvalidInputError(
                    f"{encoding!r} is not a text encoding; pass one such as 'utf-8', "
                    "'cp1252' or 'utf-16-le'.",
                    encoding=encoding,
                )
        self._url = url
        self._delimiter = delimiter
        self._header = header
        self._encoding = encoding
        self._overrides = dict(schema or {})
        for dtype in self._overrides.values():
            parse_dtype(dtype)
        self._chunk_bytes = max(chunk_bytes, 1024)
        self._batch_bytes = max(batch_bytes, 1)
        self.detected: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {"kind": "csv", "url": redact_url(self._url), **self.detected}

    # --- reading ---------------------------------------------------------------------------

    def _utf8_chunks(self, handle: BinaryIO, encoding: str) -> Iterator[bytes]:
        """UTF-8 bytes, cut at line ends outside quotes (the last piece may be unterminated).

        Bytes that are not text in ``encoding`` are marked (see ``_mark_undecodable``) so that
        their rows become rejects; the first record may not be longer than
        ``_MAX_FIRST_RECORD`` (a header that long, or more likely a quote never closed, would
        otherwise read the whole file into memory before anything is parsed).
        """
        decoder = (
            None
            if encoding in ("utf-8", "utf-8-sig")
            else codecs.getincrementaldecoder(encoding)(errors=_mark_errors())
        )
        pending = b""
        first = True
        yielded = False
        while True:
            raw = handle.read(self._chunk_bytes)
            if decoder is not None:
                try:
                    raw = decoder.decode(raw, final=not raw).encode("utf-8", "surrogatepass")
                except UnicodeError as exc:  # not a byte's fault: e.g. UTF-16 without a BOM
                    raise InvalidInputError(
                        f"{redact_url(self._url)!r} cannot be read as {encoding}: {exc}. "
                        f"{_ENCODING_HINT}, e.g. 'utf-16-le' for UTF-16 without a byte order "
                        "mark.",
                        url=redact_url(self._url),
                        encoding=encoding,
                    ) from None
            elif first and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            first = False
            if not raw:
                if pending:
                    yield pending
                return
            cut = _split_point(raw, quotes=pending.count(b'"'))
            if cut <= 0:
                pending += raw
                if not yielded and len(pending) > _MAX_FIRST_RECORD:
                    raise InvalidInputError(
                        f"The first record of {redact_url(self._url)!r} does not end within its "
                        f"first {_MAX_FIRST_RECORD // 2**20} MiB: a quote that is never closed "
                        "(a quoted field runs to the next quote, across line ends), or a header "
                        "that long. Check the file's quoting, or pass its delimiter and "
                        "encoding if they were detected wrongly.",
                        url=redact_url(self._url),
                    )
                continue
            # One copy of the chunk (the join); the tail after the cut is a part of a line.
            chunk = b"".join((pending, memoryview(raw)[:cut])) if pending else raw[:cut]
            pending = raw[cut:]
            yielded = True
            yield chunk

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        with open_binary(self._url) as handle:
            head = handle.read(_SAMPLE)
            if not head.strip():
                raise InvalidInputError(
                    f"{self._url!r} is empty: there is no header and no row to ingest.",
                    url=self._url,
                )
            encoding = self._encoding or detect_encoding(head)
            handle.seek(0)
            yield from self._read(handle, encoding)

    def _read(self, handle: BinaryIO, encoding: str) -> Iterator[SourceBatch]:
        import polars as pl

        chunks = self._utf8_chunks(handle, encoding)
        first = next(chunks, b"")  # whole records (cut where quotes are balanced)
        sample = first[: _sample_end(first)].decode("utf-8", errors="surrogateescape")
        delimiter = self._delimiter or _sniff_delimiter(sample)
        try:
            records, header_end = _leading_records(sample, delimiter)
        except csv.Error as exc:  # e.g. a field over the csv module's size limit
            raise InvalidInputError(
                f"The first record of {redact_url(self._url)!r} cannot be read as CSV: {exc}.",
                url=redact_url(self._url),
            ) from None
        if not records:
            raise InvalidInputError(
                f"{redact_url(self._url)!r} is empty: there is no header and no row to ingest.",
                url=redact_url(self._url),
            )
        header = self._header if self._header is not None else _sniff_header(records)
        names = _column_names(records[0], header)
        line = 1
        if header:
            self._check_names(names, encoding)
            # Drop the header by where its record ends (a quoted name may span lines).
            end = len(sample[:header_end].encode("utf-8", errors="surrogateescape"))
            line += first.count(b"\n", 0, end)
            first = first[end:]
        # Types are inferred from the rows of the first chunk; when a long header left less
        # than half a chunk of them, from the chunks after it too (held, then parsed as usual).
        ahead: list[bytes] = []
        rows = first
        if len(first) < self._chunk_bytes // 2:
            for piece in chunks:
                ahead.append(piece)
                if len(first) + sum(map(len, ahead)) >= self._chunk_bytes // 2:
                    break
            rows = b"".join((first, *ahead))
        schema = self._infer(rows, names, delimiter)
        del rows
        self.detected = {
            "encoding": encoding,
            "delimiter": delimiter,
            "header": header,
            "schema": {k: str(v) for k, v in schema.items()},
        }
        yielded = False
        frames: list[pl.DataFrame] = []
        rejects: list[Reject] = []
        size = 0
        for piece in _drain([first, *ahead], chunks):
            if not piece or piece.isspace():  # (no copy, unlike strip)
                line += _newlines(piece)
                continue
            frame, bad, one_row_a_line = self._parse(piece, schema, delimiter, line, encoding)
            # The line after this piece. Counting newlines costs a pass over the bytes; a
            # piece Polars read whole with no quote in it (no field spans lines) has exactly
            # one row per line: an empty line is a row of nulls there, and a CR alone does
            # not end a line (it stays in the value).
            if one_row_a_line:
                line += frame.height
            else:
                line += _newlines(piece) + (0 if piece.endswith(b"\n") else 1)
            frames.append(frame)
            rejects.extend(bad)
            size += len(piece)
            if size >= self._batch_bytes or not yielded:
                yielded = True
                yield SourceBatch(pl.concat(frames, how="vertical"), tuple(rejects), size)
                frames, rejects, size = [], [], 0
        if frames:
            yield SourceBatch(pl.concat(frames, how="vertical"), tuple(rejects), size)
        elif not yielded:
            yield SourceBatch(pl.DataFrame(schema=schema))

    def _check_names(self, names: list[str], encoding: str) -> None:
        """Refuse a NUL in a column name: it is not text in a header (the ingest ended in a Rust
        panic on it), and mostly means the file is in another encoding than it was read in."""
        for name in names:
            if "\x00" in name:
                raise InvalidInputError(
                    f"Column name {name[:40]!r} of {redact_url(self._url)!r} holds a NUL byte: "
                    f"the file is not text in {encoding} (UTF-16 or UTF-32 without a byte "
                    f"order mark, or not a CSV at all). {_ENCODING_HINT}, e.g. 'utf-16-le'.",
                    url=redact_url(self._url),
                    encoding=encoding,
                )

    def _infer(self, data: bytes, names: list[str], delimiter: str) -> dict[str, pl.DataType]:
        import polars as pl

        sample = data[: 4 * 1024 * 1024]
        cut = _split_point(sample) if len(sample) < len(data) else len(sample)
        sample = sample[: cut if cut > 0 else len(sample)]
        schema: dict[str, pl.DataType]
        try:
            frame = pl.read_csv(
                sample,
                has_header=False,
                separator=delimiter,
                infer_schema_length=10_000,
                truncate_ragged_lines=True,
                n_rows=10_000,
                # a byte that is not text makes its row a reject later, not every column text
                encoding="utf8-lossy",
            )
            frame = frame.with_columns(_temporal(frame.get_column(c)) for c in frame.columns)
            inferred = list(frame.schema.values())
            schema = {name: inferred[i] for i, name in enumerate(names) if i < len(inferred)}
        except pl.exceptions.PolarsError:
            schema = {name: pl.String() for name in names}
        for name in names:
            schema.setdefault(name, pl.String())
        unknown = sorted(set(self._overrides) - set(names))
        if unknown:
            raise InvalidInputError(
                f"The schema names columns {unknown} that {self._url!r} does not have; its "
                f"columns are {names[:20]}.",
                columns=unknown,
            )
        for name, dtype in self._overrides.items():
            schema[name] = parse_dtype(dtype)
        return {name: schema[name] for name in names}

    def _parse(
        self,
        data: bytes,
        schema: dict[str, pl.DataType],
        delimiter: str,
        first_line: int,
        encoding: str,
    ) -> tuple[pl.DataFrame, list[Reject], bool]:
        """The rows of ``data``, its rejects, and whether each of its lines is one row."""
        import polars as pl

        # Without a quote in the piece (memchr-fast), Polars splits fields without tracking
        # quotes (about 4% less CPU); the rows are the same.
        quoted = b'"' in data
        try:  # the lazy reader parses about 1.5x faster than read_csv on the same bytes
            frame = pl.scan_csv(
                data,
                has_header=False,
                schema=schema,
                separator=delimiter,
                quote_char='"' if quoted else None,
            ).collect()
        except pl.exceptions.PolarsError:
            return (*_parse_slowly(data, schema, delimiter, first_line, encoding), False)
        if frame.height and schema:
            last = next(reversed(schema))
            short = frame.get_column(last).is_null()
            if short.any() and (
                quoted or not _short_rows_are_fine(data, short, delimiter, len(schema))
            ):
                return (*_parse_slowly(data, schema, delimiter, first_line, encoding), False)
        return frame, [], not quoted


def _temporal(column: pl.Series) -> pl.Series:
    """A text column whose every value is a date (or a date-time) as that type."""
    import polars as pl

    if column.dtype != pl.String:
        return column
    values = column.drop_nulls()
    if values.is_empty() or not values.str.contains(r"^\d{4}-\d\d-\d\d").all():
        return column
    try:
        return column.str.to_date(format="%Y-%m-%d", strict=True)
    except pl.exceptions.PolarsError:
        pass
    try:
        return column.str.to_datetime(time_unit="us", strict=True)
    except pl.exceptions.PolarsError:
        return column


def _newlines(data: bytes) -> int:
    """How many newline bytes ``data`` holds (NumPy: about 3x faster than ``bytes.count``)."""
    try:
        import numpy as np
    except ImportError:  # Polars does not need NumPy
        return data.count(b"\n")
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")))


def _drain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _short_rows_are_fine(data: bytes, short: Any, delimiter: str, width: int) -> bool:
    """Whether rows whose last field is empty really have every field (not a short line)."""
    if b'"' in data:
        return False  # quoted newlines would shift rows against lines: check line by line
    lines = data.split(b"\n")
    sep = delimiter.encode()
    for index in short.arg_true().to_list():
        if index >= len(lines) or lines[index].rstrip(b"\r").count(sep) != width - 1:
            return False
    return True


def _sample_end(data: bytes) -> int:
    """Where the sample to detect the delimiter and header in ends: after whole records (the
    quotes before it balanced), the first record whatever its length, then more while the
    sample is under ``_SAMPLE`` bytes or ``_SNIFF_RECORDS`` records, up to ``_SNIFF_CAP``."""
    end = records = quotes = pos = 0
    size = len(data)
    while pos < size and not (records and pos > _SNIFF_CAP):
        newline = data.find(b"\n", pos)
        stop = size if newline < 0 else newline + 1
        quotes += data.count(b'"', pos, stop)
        pos = stop
        if quotes % 2 or (records and stop > _SNIFF_CAP):
            continue
        end, records = stop, records + 1
        if end >= _SAMPLE and records >= _SNIFF_RECORDS:
            break
    return end if records else size


def _leading_records(sample: str, delimiter: str, limit: int = 50) -> tuple[list[list[str]], int]:
    """The first (non-blank) records of ``sample`` parsed as the csv module does (a quoted
    field may span lines), and the offset in ``sample`` where the first of them ends.

    Records end at LF only, as in the chunked parse (a CR alone stays in its value). Bytes
    that are not UTF-8 (surrogate-escaped in ``sample``) become U+FFFD.
    """
    hidden, lone_cr = _hide_lone_cr(sample)
    ends: list[int] = []

    def lines() -> Iterator[str]:
        pos = 0
        while pos < len(hidden):
            newline = hidden.find("\n", pos)
            stop = len(hidden) if newline < 0 else newline + 1
            ends.append(stop)
            yield hidden[pos:stop]
            pos = stop

    records: list[list[str]] = []
    first_end = 0
    reader = csv.reader(lines(), delimiter=delimiter)
    while len(records) < limit:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error:  # e.g. a field over the csv module's size limit: sniff what we have
            if records:
                break
            raise
        if not record:
            continue  # a blank line (before the header, it is not the header)
        if not records:
            first_end = ends[-1]
        records.append(
            [
                (field.replace(lone_cr, "\r") if lone_cr else field)
                .encode("utf-8", "surrogateescape")
                .decode("utf-8", "replace")
                for field in record
            ]
        )
    return records, first_end


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _sniff_header(rows: list[list[str]]) -> bool:
    """Whether the first of ``rows`` names the columns.

    Not when it holds a number (the test comes first, so a one-line file of numbers is a row,
    not a header with nothing under it); else when some column is numeric below it, or when
    its values are all distinct and non-empty.
    """
    first, rest = rows[0], rows[1:]

    def numeric(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    if any(numeric(cell) for cell in first if cell):
        return False
    if not rest:
        return True
    # A header when some column is numeric below the first line, or names are all distinct.
    for col in range(len(first)):
        values = [r[col] for r in rest if col < len(r) and r[col]]
        if values and all(numeric(v) for v in values):
            return True
    return len(set(first)) == len(first) and all(first)


def _column_names(record: list[str], header: bool) -> list[str]:
    if not header:
        return [f"column_{i + 1}" for i in range(len(record))]
    names: list[str] = []
    for i, raw in enumerate(record):
        name = raw.strip() or f"column_{i + 1}"
        while name in names:
            name = f"{name}_{i + 1}"
        names.append(name)
    return names


def _cast(series: pl.Series, dtype: pl.DataType) -> pl.Series:
    import polars as pl

    if dtype == pl.String:
        return series
    if dtype == pl.Boolean:
        lowered = series.str.to_lowercase()
        return lowered.replace_strict(
            {"true": True, "false": False, "1": True, "0": False},
            default=None,
            return_dtype=pl.Boolean,
        )
    if dtype == pl.Date:
        return series.str.to_date(strict=False)
    if isinstance(dtype, pl.Datetime):
        return series.str.to_datetime(strict=False, time_unit=dtype.time_unit or "us")
    return series.cast(dtype, strict=False)


def _hide_lone_cr(text: str) -> tuple[str, str]:
    """``text`` with each CR not followed by LF replaced by a character the text lacks (the
    csv module would end a record there), and that character ("" when there was no such CR)."""
    if "\r" not in text.replace("\r\n", ""):
        return text, ""
    mark = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in text)
    return re.sub("\r(?!\n)", mark, text), mark


def _undecodable(field: str, encoding: str) -> str | None:
    """The first byte of ``field`` that is not text in ``encoding`` (as ``0x90``), or None.

    In a UTF-8 file such a byte is surrogate-escaped in ``field`` as itself; in another
    encoding it was marked as U+DC00 + the byte (``_mark_undecodable``), whose three UTF-8
    bytes are surrogate-escaped here one by one.
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


def _parse_slowly(
    data: bytes,
    schema: dict[str, pl.DataType],
    delimiter: str,
    first_line: int,
    encoding: str = "utf-8",
) -> tuple[pl.DataFrame, list[Reject]]:
    """Read ``data`` record by record; return the good rows and the rejects."""
    import polars as pl

    width = len(schema)
    text, lone_cr = _hide_lone_cr(data.decode("utf-8", errors="surrogateescape"))
    # Records end at LF (or CRLF) only, as in Polars' parse: a CR alone stays in its value.
    reader = csv.reader(io.StringIO(text, newline="\n"), delimiter=delimiter, strict=True)
    good: list[list[str | None]] = []
    lines: list[int] = []
    raw_text: list[str] = []
    rejects: list[Reject] = []
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rejects.append(Reject(first_line + start - 1, f"malformed CSV: {exc}", ""))
            start = reader.line_num + 1
            continue
        number = first_line + start - 1
        start = reader.line_num + 1
        if lone_cr:
            record = [field.replace(lone_cr, "\r") for field in record]
        shown = (
            delimiter.join(record)[:_MAX_TEXT]
            .encode("utf-8", "surrogateescape")
            .decode("utf-8", "replace")
        )
        if not record:
            continue
        bad_byte = None
        if not all(field.isascii() for field in record):  # (a surrogate is not ASCII)
            bad_byte = next(filter(None, (_undecodable(f, encoding) for f in record)), None)
        if bad_byte is not None:
            reason = f"byte {bad_byte} is not text in the file's encoding ({encoding})"
            rejects.append(Reject(number, reason, shown))
            continue
        if len(record) != width:
            rejects.append(
                Reject(number, f"{len(record)} fields where the header has {width}", shown)
            )
            continue
        good.append([cell if cell != "" else None for cell in record])
        lines.append(number)
        raw_text.append(shown)
    names = list(schema)
    strings = pl.DataFrame(good, schema=dict.fromkeys(names, pl.String), orient="row")
    columns: dict[str, pl.Series] = {}
    bad = pl.Series([False] * strings.height, dtype=pl.Boolean)  # typed when empty
    reasons: list[str | None] = [None] * strings.height
    for name, dtype in schema.items():
        original = strings.get_column(name)
        cast = _cast(original, dtype)
        failed = original.is_not_null() & cast.is_null()
        if failed.any():
            for index in failed.arg_true().to_list():
                if reasons[index] is None:
                    reasons[index] = (
                        f"column '{name}': cannot read {str(original[index])[:40]!r} as {dtype}"
                    )
            bad = bad | failed
        columns[name] = cast.alias(name)
    frame = pl.DataFrame(columns) if columns else strings
    for index in bad.arg_true().to_list():
        rejects.append(Reject(lines[index], str(reasons[index]), raw_text[index]))
    rejects.sort(key=lambda r: r.line)
    return frame.filter(~bad), rejects
