"""Personal-data detectors: a vectorised pattern over a column, then checksums on the candidates.

Each detector turns a string Series into a boolean Series ("this value is an X"). The pattern
runs as one Polars regular-expression pass; the checksum (Luhn for payment cards and Emirates
IDs, ISO 7064 mod-97 for IBANs, the address parser for IPv6) runs only on the values the
pattern let through, with NumPy where the checksum is arithmetic. Digits written in Arabic-Indic,
Extended Arabic-Indic, Devanagari or fullwidth forms are read as the ASCII digits they stand
for; digits of other scripts never match.

``find_personal_data`` and ``redact_text`` look for the same kinds inside free text ("call me on
050 123 4567"), each finding confirmed like a whole value, so reports can show text safely.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import polars as pl

__all__ = [
    "DETECTORS",
    "IBAN_LENGTHS",
    "Detector",
    "Sensitivity",
    "detect_value",
    "find_personal_data",
    "iban_valid",
    "luhn_valid",
    "luhn_valid_many",
    "redact_text",
]


class Sensitivity(StrEnum):
    """How carefully data must be handled, from least to most (comparable: ``<``, ``max``)."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank >= other.rank


_RANK = {
    Sensitivity.PUBLIC: 0,
    Sensitivity.INTERNAL: 1,
    Sensitivity.CONFIDENTIAL: 2,
    Sensitivity.RESTRICTED: 3,
}

#: IBAN length per country (ISO 13616 registry, the countries most often seen here).
IBAN_LENGTHS: dict[str, int] = {
    "AE": 23, "AT": 20, "BE": 16, "BH": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IT": 27, "JO": 30, "KW": 30, "LB": 28, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MT": 31, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PT": 25, "QA": 29, "RO": 24,
    "SA": 24, "SE": 24, "SI": 19, "SK": 24, "TR": 26, "UA": 29,
}  # fmt: skip

_SEPARATORS = r"[\s\-\.\(\)/]"

# Digits of other scripts that people type for the same numbers (Arabic-Indic, Extended
# Arabic-Indic as in Persian and Urdu, Devanagari, fullwidth): a detector reads them as the
# ASCII digits they stand for, so a value written with them is recognised like any other. The
# patterns use ``[0-9]``, never ``\d`` (Unicode-aware in Polars), so digits of any other script
# simply do not match and never reach the ASCII-only checksums.
_DIGIT_BASES = (0x0660, 0x06F0, 0x0966, 0xFF10)
_OTHER_DIGITS = [chr(base + i) for base in _DIGIT_BASES for i in range(10)]
_ASCII_DIGITS = [str(i) for _ in _DIGIT_BASES for i in range(10)]
_OTHER_DIGIT_CLASS = "[" + "".join(f"{chr(b)}-{chr(b + 9)}" for b in _DIGIT_BASES) + "]"


def luhn_valid(number: str) -> bool:
    """The Luhn (mod 10) check of a string of digits (payment cards, Emirates IDs)."""
    if not number.isdigit() or not number.isascii():
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def luhn_valid_many(digits: pl.Series) -> npt.NDArray[np.bool_]:
    """The Luhn check of every value of a Series of ASCII digit strings, vectorised in NumPy."""
    import numpy as np
    import polars as pl

    if digits.len() == 0:
        return np.zeros(0, dtype=bool)
    width = int(digits.to_frame("d").select(pl.col("d").str.len_bytes().max()).item() or 0)
    padded = digits.str.zfill(width)  # leading zeros do not change a Luhn sum
    raw = np.frombuffer("".join(padded.to_list()).encode("ascii"), dtype=np.uint8)
    matrix = raw.reshape(len(padded), width).astype(np.int16) - 48
    doubled = matrix[:, width - 2 :: -2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = matrix[:, width - 1 :: -2].sum(axis=1) + doubled.sum(axis=1)
    result: npt.NDArray[np.bool_] = (total % 10) == 0
    return result


_IBAN_DIGITS = {ord(c): str(i) for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10)}
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


def iban_valid(text: str) -> bool:
    """ISO 13616 IBAN: country length (where known) and the ISO 7064 mod-97 check equal to 1."""
    iban = "".join(text.split()).upper()
    if not _IBAN_SHAPE.fullmatch(iban):
        return False
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    return int((iban[4:] + iban[:4]).translate(_IBAN_DIGITS)) % 97 == 1


def _ip_valid(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _strip(series: pl.Series) -> pl.Series:
    return series.str.replace_all(_SEPARATORS, "")


def _card_candidates(series: pl.Series) -> pl.Series:
    """Digits 12-19 long whose prefix and length belong to a card scheme (IIN ranges)."""
    import polars as pl

    digits = _strip(series)
    n = digits.str.len_bytes()
    p1 = digits.str.slice(0, 1).cast(pl.Int32, strict=False)
    p2 = digits.str.slice(0, 2).cast(pl.Int32, strict=False)
    p3 = digits.str.slice(0, 3).cast(pl.Int32, strict=False)
    p4 = digits.str.slice(0, 4).cast(pl.Int32, strict=False)
    frame = pl.DataFrame({"n": n, "p1": p1, "p2": p2, "p3": p3, "p4": p4})
    n_, c1, c2, c3, c4 = (pl.col(c) for c in ("n", "p1", "p2", "p3", "p4"))
    scheme = (
        ((c1 == 4) & n_.is_in([13, 16, 19]))  # Visa
        | ((c2.is_between(51, 55) | c4.is_between(2221, 2720)) & (n_ == 16))  # Mastercard
        | (c2.is_in([34, 37]) & (n_ == 15))  # American Express
        | ((c4 == 6011) | c3.is_between(644, 649) | (c2 == 65)) & n_.is_between(16, 19)
        | (c4.is_between(3528, 3589) & n_.is_between(16, 19))  # JCB
        | ((c3.is_between(300, 305) | c2.is_in([36, 38, 39])) & n_.is_between(14, 19))
        | ((c2 == 62) & n_.is_between(16, 19))  # UnionPay
        | ((c2.is_in([50, 56, 57, 58]) | (c1 == 6)) & n_.is_between(12, 19))  # Maestro
    )
    shape = digits.str.contains(r"^[0-9]{12,19}$")
    return frame.select(scheme.fill_null(False)).to_series() & shape.fill_null(False)


def _detect_card(series: pl.Series) -> pl.Series:

    candidates = _card_candidates(series)
    return _checksum(series, candidates, lambda d: luhn_valid_many(_strip(d)))


def _detect_emirates_id(series: pl.Series) -> pl.Series:

    pattern = r"^784[ \-]?(19|20)[0-9]{2}[ \-]?[0-9]{7}[ \-]?[0-9]$"
    shape = series.str.contains(pattern).fill_null(False)
    return _checksum(series, shape, lambda d: luhn_valid_many(_strip(d)))


def _detect_iban(series: pl.Series) -> pl.Series:

    compact = series.str.replace_all(r"\s", "").str.to_uppercase()
    shape = compact.str.contains(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$").fill_null(False)
    return _checksum(compact, shape, _per_value(iban_valid))


def _detect_ip(series: pl.Series) -> pl.Series:

    octet = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    v4 = series.str.contains(rf"^({octet}\.){{3}}{octet}$").fill_null(False)
    v6_shape = series.str.contains(r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[\w.]+)?$").fill_null(False)
    v6 = _checksum(series, v6_shape, _per_value(_ip_valid))
    return v4 | v6


def _per_value(check: Callable[[str], bool]) -> Callable[[pl.Series], npt.NDArray[np.bool_]]:
    """A Python-level check run once per distinct value."""

    def run(values: pl.Series) -> npt.NDArray[np.bool_]:
        import numpy as np

        verdicts = {value: check(value) for value in values.unique().to_list()}
        return np.fromiter((verdicts[v] for v in values.to_list()), dtype=bool, count=len(values))

    return run


def _checksum(
    series: pl.Series,
    candidates: pl.Series,
    check: Callable[[pl.Series], npt.NDArray[np.bool_]],
) -> pl.Series:
    """``candidates`` narrowed by ``check``, which runs only on the candidate values."""
    import numpy as np
    import polars as pl

    mask = candidates.to_numpy()
    result = np.zeros(len(series), dtype=bool)
    if mask.any():
        result[mask] = check(series.filter(candidates))
    return pl.Series(series.name, result, dtype=pl.Boolean)


def _pattern(regex: str, *, trim: bool = False) -> Callable[[pl.Series], pl.Series]:
    def detect(series: pl.Series) -> pl.Series:
        values = series.str.strip_chars() if trim else series
        return values.str.contains(regex).fill_null(False)

    return detect


def _ascii_digits(series: pl.Series) -> pl.Series:
    """``series`` with the digits of the other scripts in ``_OTHER_DIGITS`` made ASCII."""
    if not bool(series.str.contains(_OTHER_DIGIT_CLASS).any()):
        return series
    return series.str.replace_many(_OTHER_DIGITS, _ASCII_DIGITS)


def _normalised(detect: Callable[[pl.Series], pl.Series]) -> Callable[[pl.Series], pl.Series]:
    """``detect`` run on the values with their digits made ASCII (same values, same order)."""

    def run(series: pl.Series) -> pl.Series:
        return detect(_ascii_digits(series))

    return run


def _phone_detector(*, named: bool) -> Callable[[pl.Series], pl.Series]:
    """The phone recogniser. ``named``: the column's name says it holds phones, so bare
    national digits ("0501234567") count too; otherwise they need a ``+``, the UAE
    international form or phone-shaped grouping ("050 123 4567")."""

    def detect(series: pl.Series) -> pl.Series:
        trimmed = series.str.strip_chars()
        digits = _strip(trimmed)
        found = digits.str.contains(_PHONE)
        if not found.any():  # most columns: skip the shape checks
            return found.fill_null(False)
        found &= ~trimmed.str.contains(_NOT_A_PHONE)
        if not named:
            found &= digits.str.contains(_PHONE_BARE) | trimmed.str.contains(_PHONE_GROUPED)
        return found.fill_null(False)

    return detect


_EMAIL_BODY = (
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
_EMAIL = rf"^{_EMAIL_BODY}$"
# E.164 (``+`` or ``00`` then 8-15 digits), UAE numbers in international form without the ``+``
# (971 5X XXX XXXX, 971 [2-4,6,7,9] XXX XXXX), and UAE national formats: mobile 05X XXX XXXX,
# landline 0[2-4,6,7,9] XXX XXXX, toll-free 800…, once spaces, dashes, dots and brackets go.
_PHONE = (
    r"^(?:(?:\+|00)[1-9][0-9]{7,14}|971(?:5[0-9]{8}|[234679][0-9]{7})"
    r"|0(?:5[0-9]{8}|[234679][0-9]{7})|800[0-9]{4,7})$"
)
# What no phone looks like, however its digits read once the separators go: a decimal number
# ("0.13436424", "+441149.88"), a dot that does not sit between two digits, a leading minus.
_NOT_A_PHONE = r"^[+-]?[0-9]+\.[0-9]+$|(?:^|[^0-9])\.|\.(?:[^0-9]|$)|^-"
# The bare digit strings that are phones on their own: with a ``+``, or UAE numbers in
# international form (``971…``, ``00971…``). Other bare digits of the right length ("0098652112",
# "8008441979", "020000013") are as often ids, so without a column name saying phone they need
# the grouping people write phones with (spaces, dashes, dots, slashes, brackets).
_PHONE_BARE = r"^(?:\+[1-9][0-9]{7,14}|(?:00)?971(?:5[0-9]{8}|[234679][0-9]{7}))$"
_PHONE_GROUPED = r"[0-9][\s\-./()]+[0-9]|^\("
_PHONE_INTEGER = r"^(?:5[0-9]{8}|971(?:5[0-9]{8}|[234679][0-9]{7}))$"


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of personal data: its category, its sensitivity, and how to recognise a value."""

    name: str
    category: str
    sensitivity: Sensitivity
    detect: Callable[[pl.Series], pl.Series]
    #: Whether integer columns are inspected too (their values rendered as digits).
    digits_only: bool = False
    #: The recogniser for integer columns when it differs from ``detect`` (a phone stored as
    #: an integer has lost its leading ``0`` or ``+``).
    integer_detect: Callable[[pl.Series], pl.Series] | None = None
    #: The stricter recogniser for a text column whose name does not say it holds this kind,
    #: when it differs from ``detect`` (bare "0098652112" is an id in ``customer_no``, a phone
    #: in ``mobile``). ``detect`` itself is the lenient one: redaction errs towards hiding.
    unnamed_detect: Callable[[pl.Series], pl.Series] | None = None

    def detect_integers(self, digits: pl.Series) -> pl.Series:
        """Which integers, rendered as ASCII digits, are values of this kind."""
        return (self.integer_detect or self.detect)(digits)

    def detect_column(self, values: pl.Series, *, named: bool) -> pl.Series:
        """Which values of a text column are of this kind; ``named`` says whether the
        column's name says it holds this kind (a column named ``mobile`` for phones)."""
        return self.detect(values) if named else (self.unnamed_detect or self.detect)(values)


DETECTORS: tuple[Detector, ...] = (
    Detector(
        "email", "contact.email", Sensitivity.CONFIDENTIAL, _normalised(_pattern(_EMAIL, trim=True))
    ),
    Detector(
        "phone",
        "contact.phone",
        Sensitivity.CONFIDENTIAL,
        _normalised(_phone_detector(named=True)),
        digits_only=True,
        integer_detect=_pattern(_PHONE_INTEGER),
        unnamed_detect=_normalised(_phone_detector(named=False)),
    ),
    Detector(
        "emirates_id",
        "national_id",
        Sensitivity.RESTRICTED,
        _normalised(_detect_emirates_id),
        digits_only=True,
    ),
    Detector("iban", "financial.iban", Sensitivity.RESTRICTED, _normalised(_detect_iban)),
    Detector(
        "payment_card",
        "financial.payment_card",
        Sensitivity.RESTRICTED,
        _normalised(_detect_card),
        True,
    ),
    Detector("ip_address", "online.ip_address", Sensitivity.CONFIDENTIAL, _normalised(_detect_ip)),
)


def detect_value(value: object) -> Detector | None:
    """The first detector that recognises one value (used to redact single cells)."""
    import polars as pl

    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        series = pl.Series("v", [str(value)])
        for detector in DETECTORS:
            if detector.digits_only and bool(detector.detect_integers(series)[0]):
                return detector
        return None
    if isinstance(value, str):
        series = pl.Series("v", [value[:200]])
    else:
        return None
    for detector in DETECTORS:
        if bool(detector.detect(series)[0]):
            return detector
    return None


_SEP = r"[ \-./()]{0,2}"  # "050 123 4567", "(050) 123-4567", "050/123/4567", "+971 (50) …"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Unanchored forms of the patterns above, to find personal data inside free text. Each finding
# is then confirmed like a whole value (checksums, card schemes) before it is redacted.
_IN_TEXT: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("emirates_id", re.compile(r"(?<![0-9])784[ \-]?(?:19|20)[0-9]{2}[ \-]?[0-9]{7}[ \-]?[0-9]")),
    ("payment_card", re.compile(r"(?<![0-9])[0-9](?:[ \-]?[0-9]){11,18}(?![0-9])")),
    ("iban", re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}", re.IGNORECASE)),
    ("email", re.compile(_EMAIL_BODY)),
    (
        "phone",
        re.compile(
            rf"(?<![0-9+])(?:(?:\+|00)[1-9](?:{_SEP}[0-9]){{7,14}}"
            rf"|971{_SEP}(?:5(?:{_SEP}[0-9]){{8}}|[234679](?:{_SEP}[0-9]){{7}})"
            rf"|0(?:5(?:{_SEP}[0-9]){{8}}|[234679](?:{_SEP}[0-9]){{7}})"
            rf"|800(?:{_SEP}[0-9]){{4,7}})(?![0-9])"
        ),
    ),
    ("ip_address", re.compile(rf"(?<![0-9.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\.?[0-9])")),
)
_TRANSLATE_DIGITS = str.maketrans(dict(zip(_OTHER_DIGITS, _ASCII_DIGITS, strict=True)))


def _iban_span(match: re.Match[str]) -> tuple[int, int]:
    """The span of an IBAN found in text, cut at its country's length: the pattern may run on
    into a following word or number ("AE07 0331 2345 6789 0123 456 THANKS")."""
    start, end = match.span()
    expected = IBAN_LENGTHS.get(match.group(0)[:2].upper())
    if expected is None:
        return start, end
    seen = 0
    for offset, char in enumerate(match.group(0)):
        if not char.isspace():
            seen += 1
            if seen == expected:
                return start, start + offset + 1
    return start, end


def find_personal_data(text: str) -> list[tuple[int, int, Detector]]:
    """The spans of ``text`` that hold a value some detector recognises, as ``(start, end,
    detector)``, in order and never overlapping (the first kind listed wins an overlap)."""
    import polars as pl

    ascii_text = text.translate(_TRANSLATE_DIGITS)  # one character for one: spans line up
    by_name = {d.name: d for d in DETECTORS}
    found: list[tuple[int, int, Detector]] = []
    for name, pattern in _IN_TEXT:
        detector = by_name[name]
        spans = [
            _iban_span(m) if name == "iban" else m.span() for m in pattern.finditer(ascii_text)
        ]
        if not spans:
            continue
        verdicts = detector.detect(pl.Series("v", [ascii_text[a:b] for a, b in spans])).to_list()
        for (start, end), ok in zip(spans, verdicts, strict=True):
            if not ok and name == "payment_card":  # digits run on past the card ("… 123")
                end = _card_prefix(detector, ascii_text, start, end)
                ok = end > start
            if ok and not any(start < b and a < end for a, b, _ in found):
                found.append((start, end, detector))
    return sorted(found, key=lambda item: item[0])


def _card_prefix(detector: Detector, text: str, start: int, end: int) -> int:
    """The end of the longest card number (12 to 19 digits) that the digits found at
    ``start`` begin with, or ``start`` when none passes the detector's checks."""
    import polars as pl

    ends = [i + 1 for i in range(start, end) if text[i].isdigit()]
    candidates = ends[11:19][::-1]  # after the 19th digit down to the 12th
    if not candidates:
        return start
    verdicts = detector.detect(pl.Series("v", [text[start:e] for e in candidates])).to_list()
    return next((e for e, ok in zip(candidates, verdicts, strict=True) if ok), start)


def redact_text(text: str) -> str:
    """``text`` with every value ``find_personal_data`` finds replaced by a marker."""
    out: list[str] = []
    position = 0
    for start, end, detector in find_personal_data(text):
        out.append(text[position:start])
        out.append(f"[redacted: {detector.category}]")
        position = end
    out.append(text[position:])
    return "".join(out)
