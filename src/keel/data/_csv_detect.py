"""What a CSV file is, read off its first bytes and records: its encoding (a BOM, UTF-16/32 by
where NUL bytes fall, UTF-8, cp1252, latin-1), delimiter, whether its first record is a header,
its column names, and which text columns are dates; and the error handler that carries bytes
that are not text in the encoding through to the rejects."""

from __future__ import annotations

import codecs
import csv
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "column_names",
    "detect_encoding",
    "mark_errors",
    "sniff_delimiter",
    "sniff_header",
    "spaced_column",
    "temporal_column",
]

_MARK_ERRORS = "keel-csv-mark-undecodable"


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


def mark_errors() -> str:
    """The name of the error handler that marks undecodable bytes (registered on first use,
    not at import: ``import keel`` has no side effects)."""
    try:
        codecs.lookup_error(_MARK_ERRORS)
    except LookupError:
        codecs.register_error(_MARK_ERRORS, _mark_undecodable)
    return _MARK_ERRORS


def spaced_column(column: pl.Series) -> pl.Series:
    """A text column whose values are numbers or dates written after spaces (``id, 5`` — a
    delimiter followed by a space, as hand-written CSV often is) as that type; Polars' own
    inference takes `` 5`` for text. Only leading spaces and tabs: Polars' parser reads those
    before a number or a date, so every chunk of the file still takes the fast path (and the
    record-by-record reader ignores them too). Anything else is returned as it is."""
    import polars as pl

    if column.dtype != pl.String:
        return column
    values = column.drop_nulls()
    if values.is_empty() or not values.str.contains(r"^[ \t]").any():
        return column
    if values.str.contains(r"[ \t]$").any():
        return column
    stripped = column.str.strip_chars_start(" \t")
    for dtype in (pl.Int64, pl.Float64):
        try:
            return stripped.cast(dtype, strict=True)
        except pl.exceptions.PolarsError:
            continue
    dated = temporal_column(stripped)
    return dated if dated.dtype == pl.Date else column


def temporal_column(column: pl.Series) -> pl.Series:
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


def sniff_delimiter(sample: str, quote: str | None = '"') -> str:
    candidates = ",;\t|".replace(quote, "") if quote else ",;\t|"
    try:
        return csv.Sniffer().sniff(sample, delimiters=candidates).delimiter
    except csv.Error:
        return candidates[0]


def sniff_header(rows: list[list[str]]) -> bool:
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


def column_names(record: list[str], header: bool) -> list[str]:
    if not header:
        return [f"column_{i + 1}" for i in range(len(record))]
    names: list[str] = []
    for i, raw in enumerate(record):
        name = raw.strip() or f"column_{i + 1}"
        while name in names:
            name = f"{name}_{i + 1}"
        names.append(name)
    return names
