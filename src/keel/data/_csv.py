"""The CSV source: encoding, delimiter and header detection, and malformed rows as rejects.

The file is read in chunks of about 16 MiB cut at a line end outside quotes, so memory stays
bounded, and parsed chunks are gathered into batches of about 32 MiB of CSV (the first batch
is the first chunk alone, so that encoding starts while the rest is parsed). Each chunk is
parsed by Polars against the schema fixed from the first chunk (with the user's overrides); a
chunk that does not parse, or has a line with too few fields (which Polars fills with nulls),
is re-read record by record (``_csv_records.parse_records``), and the records that do not fit
(wrong number of fields, a value that is not of its column's type, bytes that are not text in
the encoding) become rejects with their line numbers and reasons. Both readers give the same
rows and rejects for the same records: a blank line is no row (Polars reads one as a row of
nulls, dropped here), and a value of a column that is not text may have spaces around it.

Quoting is RFC 4180's: a quote at the start of a field opens a quoted field, which runs (over
delimiters and line ends) to the next quote not doubled. Chunks are cut where the count of
quotes before a line end is even, as Polars splits a file; that is right as long as every
unquoted field holds an even number of quotes (``O'Neil "Jr"``). A quote alone in an unquoted
field (``5" screen``) is read differently by different readers (Polars runs a quoted section
from it to the next quote, across delimiters and lines), so a chunk holding one fails the
ingest, naming its line and the fix, before anything of it is parsed; so does a quoted field
that never closes or a record longer than ``_MAX_RECORD``. Pieces with a quote in them are
checked by where their quotes fall (vectorised with NumPy, field by field where a quote is
inside a field); pieces without one cost a ``memchr``.

The header, the detection and the record-by-record reader read whole records with the same
rules (a quoted newline in a name is kept), however long a field, the first record up to
``_MAX_FIRST_RECORD``. Bytes that are not text in a non-UTF-8 encoding are carried through
the UTF-8 pieces as encoded lone surrogates (never valid UTF-8), so Polars refuses that piece
and the record-by-record reader rejects the rows that hold them, naming the encoding and the
byte.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from keel.data._csv_detect import (
    column_names,
    detect_encoding,
    mark_errors,
    sniff_delimiter,
    sniff_header,
    spaced_column,
    temporal_column,
)
from keel.data._csv_quotes import (
    MalformedError,
    RecordTooLongError,
    open_quote,
    size_text,
    split_point,
)
from keel.data._csv_records import (
    SAMPLE,
    SNIFF_CAP,
    blank_rows,
    count_newlines,
    drain,
    drop_blank_lines,
    leading_blank_end,
    leading_records,
    parse_records,
    records_as_csv,
    sample_end,
)
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
_MAX_FIRST_RECORD = 32 * 1024 * 1024
_MAX_RECORD = 32 * 1024 * 1024  # any later record: more is a quote never closed (or no CSV)
_ENCODING_HINT = "Pass the file's encoding with encoding=... (the CLI's --encoding)"
_QUOTE_FIX = (
    "A quote at the start of a field opens a quoted field, which ends at the next quote: "
    'double a quote meant as text in a quoted field ("5"" screen"), or pass '
    "quote_char=None (the CLI's --quote-char none) if no field of the file is quoted."
)


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
        quote_char: the character that quotes a field (one ASCII character), or None for a
            file that quotes no field (every quote is then text).
        chunk_bytes: bytes parsed at a time (bounds memory). 16 MiB stays below the size
            at which the C allocator maps fresh pages for every buffer, which costs more
            system time than the parse saves with larger pieces.
        batch_bytes: parsed pieces are gathered into batches (and so parts) of about this
            many bytes of CSV; the first piece is a batch of its own. 32 MiB: on two cores
            smaller batches start encoding sooner and leave less to encode once the whole
            file is parsed (about 5% faster than 64 MiB); below that, the cost per part grows.

    After a read, ``pieces_read`` says how many pieces Polars parsed (``"polars"``) and how
    many were read record by record (``"records"``), and ``detected`` what was detected.
    """

    def __init__(
        self,
        url: str,
        *,
        delimiter: str | None = None,
        header: bool | None = None,
        encoding: str | None = None,
        schema: Mapping[str, str] | None = None,
        quote_char: str | None = '"',
        chunk_bytes: int = CHUNK_BYTES,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        if delimiter is not None and len(delimiter) != 1:
            raise InvalidInputError(f"The delimiter must be one character, got {delimiter!r}.")
        if quote_char is not None and (
            len(quote_char) != 1
            or not quote_char.isascii()
            or quote_char in "\r\n"
            or quote_char == delimiter
        ):
            raise InvalidInputError(
                f"quote_char must be one ASCII character other than a line end and the "
                f"delimiter, or None for a file that quotes no field; got {quote_char!r}.",
                quote_char=quote_char,
            )
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
        self._quote_char = quote_char
        self._quote = quote_char.encode() if quote_char is not None else None
        self._overrides = dict(schema or {})
        for dtype in self._overrides.values():
            parse_dtype(dtype)
        self._chunk_bytes = max(chunk_bytes, 1024)
        self._batch_bytes = max(batch_bytes, 1)
        self.detected: dict[str, Any] = {}
        self.pieces_read = {"polars": 0, "records": 0}

    def describe(self) -> dict[str, Any]:
        return {"kind": "csv", "url": redact_url(self._url), **self.detected}

    # --- reading ---------------------------------------------------------------------------

    def _utf8_chunks(self, handle: BinaryIO, encoding: str) -> Iterator[bytes]:
        """UTF-8 bytes, cut at line ends where the quotes before are balanced by count (the
        last piece may be unterminated); ``_read`` checks that the count tells right.

        Bytes that are not text in ``encoding`` are marked (see ``_csv_detect.mark_errors``) so that
        their rows become rejects. The first record may not be longer than
        ``_MAX_FIRST_RECORD``, any other than ``_MAX_RECORD`` (raised as
        ``RecordTooLongError`` for ``_read`` to tell why): a record that long is more likely
        a quote never closed, and would otherwise read the whole file into memory before
        anything is parsed.
        """
        decoder = (
            None
            if encoding in ("utf-8", "utf-8-sig")
            else codecs.getincrementaldecoder(encoding)(errors=mark_errors())
        )
        quote = self._quote
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
            if first and raw.startswith(codecs.BOM_UTF8):
                # A byte order mark is not text, in whatever encoding it was found (UTF-16 read
                # as utf-16-le keeps it as U+FEFF, here in UTF-8).
                raw = raw[len(codecs.BOM_UTF8) :]
            first = False
            if not raw:
                if pending:
                    yield pending
                return
            quotes = pending.count(quote) if quote is not None and pending else 0
            cut = split_point(raw, quote, quotes=quotes)
            if cut <= 0:
                pending += raw
                if not yielded and len(pending) > _MAX_FIRST_RECORD:
                    raise InvalidInputError(
                        f"The first record of {redact_url(self._url)!r} does not end within its "
                        f"first {_MAX_FIRST_RECORD // 2**20} MiB: a quote that is never closed "
                        "(a quoted field runs to the next quote, across line ends), or a header "
                        "that long. Check the file's quoting (or pass quote_char=None, the "
                        "CLI's --quote-char none, if no field is quoted), or pass its delimiter "
                        "and encoding if they were detected wrongly.",
                        url=redact_url(self._url),
                    )
                if yielded and len(pending) > max(_MAX_RECORD, self._chunk_bytes):
                    raise RecordTooLongError(pending, max(_MAX_RECORD, self._chunk_bytes))
                continue
            # One copy of the chunk (the join); the tail after the cut is a part of a line.
            chunk = b"".join((pending, memoryview(raw)[:cut])) if pending else raw[:cut]
            pending = raw[cut:]
            yielded = True
            yield chunk

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        with open_binary(self._url) as handle:
            head = handle.read(SAMPLE)
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

        quote = self._quote
        chunks = self._utf8_chunks(handle, encoding)
        first = next(chunks, b"")  # whole records (cut where quotes are balanced by count)
        sample = first[: sample_end(first, quote)].decode("utf-8", errors="surrogateescape")
        delimiter = self._delimiter or sniff_delimiter(sample[:SNIFF_CAP], self._quote_char)
        self._check_quotes(first, delimiter, 1)
        try:
            records, header_end = leading_records(sample, delimiter, self._quote_char)
        except MalformedError as exc:
            raise self._malformed(exc, 1) from None
        if not records:
            raise InvalidInputError(
                f"{redact_url(self._url)!r} is empty: there is no header and no row to ingest.",
                url=redact_url(self._url),
            )
        header = self._header if self._header is not None else sniff_header(records)
        names = column_names(records[0], header)
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
            try:
                for piece in chunks:
                    ahead.append(piece)
                    if len(first) + sum(map(len, ahead)) >= self._chunk_bytes // 2:
                        break
            except RecordTooLongError as exc:  # what the pieces before it hold comes first
                for piece in (first, *ahead):
                    self._check_quotes(piece, delimiter, line)
                    line += count_newlines(piece)
                raise self._too_long(exc, delimiter, line) from None
            rows = b"".join((first, *ahead))
        schema = self._infer(rows, names, delimiter)
        del rows
        self.detected = {
            "encoding": encoding,
            "delimiter": delimiter,
            "header": header,
            "quote_char": self._quote_char,
            "schema": {k: str(v) for k, v in schema.items()},
        }
        yielded = False
        frames: list[pl.DataFrame] = []
        rejects: list[Reject] = []
        size = 0
        pieces = drain([first, *ahead], chunks)
        checked = True  # the first piece was checked whole, with its header
        while True:
            try:
                piece = next(pieces)
            except StopIteration:
                break
            except RecordTooLongError as exc:
                raise self._too_long(exc, delimiter, line) from None
            if not checked:
                self._check_quotes(piece, delimiter, line)
            checked = False
            if not piece or piece.isspace():  # (no copy, unlike strip)
                line += count_newlines(piece)
                continue
            frame, bad, lines = self._parse(piece, schema, delimiter, line, encoding)
            # The line after this piece. Counting newlines costs a pass over the bytes; a
            # piece Polars read whole with no quote in it (no field spans lines) has exactly
            # one row per line: a blank line is a row of nulls there (dropped), and a CR alone
            # does not end a line (it stays in the value).
            if lines is not None:
                line += lines
            else:
                line += count_newlines(piece) + (0 if piece.endswith(b"\n") else 1)
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

    def _check_quotes(self, piece: bytes, delimiter: str, line: int) -> None:
        """Refuse a piece (whole records from ``line`` on) whose quotes do not tell where its
        records end the same way to every reader, or whose last quoted field never closes
        (only the last piece of a file can end inside one)."""
        quote = self._quote
        if quote is None or quote not in piece:  # memchr-fast
            return
        try:
            opened = open_quote(piece, delimiter.encode()[-1], quote[0])
        except MalformedError as exc:
            raise self._malformed(exc, line) from None
        if opened < 0:
            return
        taken = piece.count(b"\n", opened) - piece.endswith(b"\n")
        if taken > 0:  # else the record is the last line alone: a reject, as any other
            raise self._malformed(
                MalformedError(
                    piece.count(b"\n", 0, opened),
                    "opens a quoted field that never closes: it runs to the end of the file, "
                    f"taking the {taken} lines after it. {_QUOTE_FIX}",
                ),
                line,
            )

    def _too_long(self, exc: RecordTooLongError, delimiter: str, line: int) -> InvalidInputError:
        """The error for a record from ``line`` on that does not end within ``exc.limit``."""
        quote = self._quote
        opened = -1
        if quote is not None:
            try:
                opened = open_quote(exc.data, delimiter.encode()[-1], quote[0])
            except MalformedError as malformed:
                return self._malformed(malformed, line)
        if opened >= 0:
            problem = (
                f"opens a quoted field that does not close within {size_text(exc.limit)}. "
                + _QUOTE_FIX
            )
            return self._malformed(MalformedError(exc.data.count(b"\n", 0, opened), problem), line)
        problem = (
            f"starts a record that does not end within {size_text(exc.limit)}: check the file's "
            "line ends, and pass its delimiter and encoding if they were detected wrongly."
        )
        return self._malformed(MalformedError(0, problem), line)

    def _malformed(self, exc: MalformedError, line: int) -> InvalidInputError:
        at = line + exc.newlines
        return InvalidInputError(
            f"Line {at} of {redact_url(self._url)!r} {exc.problem}",
            url=redact_url(self._url),
            line=at,
        )

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

        # Whole lines only: not a last line cut short, nor one whose quoted field never closes.
        sample = data[: 4 * 1024 * 1024]
        cut = split_point(sample, self._quote)
        sample = sample[: cut if cut > 0 else len(sample)]
        schema: dict[str, pl.DataType] = {}
        quote = self._quote_char
        for attempt in range(2):
            try:
                frame = pl.read_csv(
                    sample,
                    has_header=False,
                    separator=delimiter,
                    quote_char=quote,
                    infer_schema_length=10_000,
                    truncate_ragged_lines=True,
                    n_rows=10_000,
                    # a byte that is not text makes its row a reject later, not every column text
                    encoding="utf8-lossy",
                )
            except pl.exceptions.PolarsError:
                if attempt:
                    break
                # A malformed record (a character after a closing quote, say) that will be a
                # reject: the types of the others, written again as plain CSV.
                sample = records_as_csv(sample, delimiter, quote, len(names))
                quote = '"'
                continue
            frame = frame.with_columns(
                temporal_column(spaced_column(frame.get_column(c))) for c in frame.columns
            )
            inferred = list(frame.schema.values())
            schema = {name: inferred[i] for i, name in enumerate(names) if i < len(inferred)}
            break
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
    ) -> tuple[pl.DataFrame, list[Reject], int | None]:
        """The rows of ``data``, its rejects, and how many lines it holds when that is known
        without counting (a piece Polars read whole with no quote in it, a row a line)."""
        fast = self._parse_fast(data, schema, delimiter)
        if fast is not None:
            self.pieces_read["polars"] += 1
            return fast[0], [], fast[1]
        self.pieces_read["records"] += 1
        frame, rejects = parse_records(
            data, schema, delimiter, first_line, encoding, self._quote_char
        )
        return frame, rejects, None

    def _parse_fast(
        self, data: bytes, schema: dict[str, pl.DataType], delimiter: str
    ) -> tuple[pl.DataFrame, int | None] | None:
        """The rows of ``data`` as Polars reads them, and how many lines it holds (None: not
        counted); None when Polars refuses it, or its rows cannot be trusted (a line with too
        few fields, which Polars fills with nulls, is a reject).

        Polars reads a blank line (LF or CRLF alone) as a row of nulls, and refuses a piece
        whose first line is blank: those lines are skipped here, as the record-by-record reader
        skips them, so that a blank line does not send its piece there.
        """
        import polars as pl

        skipped = 0
        if data.startswith((b"\n", b"\r\n")):  # (a copy, but only of such a piece)
            start = leading_blank_end(data)
            skipped, data = data.count(b"\n", 0, start), data[start:]
        # Without a quote in the piece (memchr-fast), Polars splits fields without tracking
        # quotes (about 4% less CPU); the rows are the same.
        quoted = self._quote is not None and self._quote in data
        frame = self._scan(data, schema, delimiter, quoted)
        if frame is None:
            return None
        if not frame.height or not schema:
            return frame, None if quoted else skipped + frame.height
        last = next(reversed(schema))
        short = frame.get_column(last).is_null()
        if not short.any():
            return frame, None if quoted else skipped + frame.height
        if not quoted:  # a row a line: the blank ones are dropped, the others must be whole
            blank = blank_rows(data, short, delimiter, len(schema))
            if blank is None:
                return None
            lines = frame.height
            if blank:
                keep = pl.Series([True] * lines, dtype=pl.Boolean).scatter(blank, False)
                frame = frame.filter(keep)
            return frame, skipped + lines
        # Rows do not follow lines here: read again without the blank lines, if that is what
        # the rows of nulls were.
        cleaned = drop_blank_lines(data, self._quote) if self._quote is not None else None
        if cleaned is None:
            return None
        frame = self._scan(cleaned, schema, delimiter, quoted)
        if frame is None or frame.get_column(last).is_null().any():
            return None
        return frame, None

    def _scan(
        self, data: bytes, schema: dict[str, pl.DataType], delimiter: str, quoted: bool
    ) -> pl.DataFrame | None:
        """``data`` read by Polars against ``schema`` (None when it refuses the piece)."""
        import polars as pl

        try:  # the lazy reader parses about 1.5x faster than read_csv on the same bytes
            return pl.scan_csv(
                data,
                has_header=False,
                schema=schema,
                separator=delimiter,
                quote_char=self._quote_char if quoted else None,
            ).collect()
        except pl.exceptions.PolarsError:
            return None
