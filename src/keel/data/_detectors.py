"""Personal-data detectors: a vectorised pattern over a column, then checksums on the candidates.

Each detector turns a string Series into a boolean Series ("this value is an X"). The pattern
runs as one Polars regular-expression pass; the checksum (Luhn for payment cards and Emirates
IDs, ISO 7064 mod-97 for IBANs, the address parser for IPv6) runs only on the values the
pattern let through, with NumPy where the checksum is arithmetic.
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
    "iban_valid",
    "luhn_valid",
    "luhn_valid_many",
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
_IBAN_SHAPE = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")


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
    shape = digits.str.contains(r"^\d{12,19}$")
    return frame.select(scheme.fill_null(False)).to_series() & shape.fill_null(False)


def _detect_card(series: pl.Series) -> pl.Series:

    candidates = _card_candidates(series)
    return _checksum(series, candidates, lambda d: luhn_valid_many(_strip(d)))


def _detect_emirates_id(series: pl.Series) -> pl.Series:

    shape = series.str.contains(r"^784[ \-]?(19|20)\d{2}[ \-]?\d{7}[ \-]?\d$").fill_null(False)
    return _checksum(series, shape, lambda d: luhn_valid_many(_strip(d)))


def _detect_iban(series: pl.Series) -> pl.Series:

    compact = series.str.replace_all(r"\s", "").str.to_uppercase()
    shape = compact.str.contains(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$").fill_null(False)
    return _checksum(compact, shape, _per_value(iban_valid))


def _detect_ip(series: pl.Series) -> pl.Series:

    octet = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
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


def _pattern(regex: str, *, strip: bool = False) -> Callable[[pl.Series], pl.Series]:
    def detect(series: pl.Series) -> pl.Series:
        values = _strip(series) if strip else series
        return values.str.contains(regex).fill_null(False)

    return detect


_EMAIL = (
    r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}$"
)
# E.164 (``+`` or ``00`` then 8-15 digits), and UAE national formats: mobile 05X XXX XXXX,
# landline 0[2-4,6,7,9] XXX XXXX, toll-free 800…, once spaces, dashes, dots and brackets go.
_PHONE = r"^(?:(?:\+|00)[1-9]\d{7,14}|0(?:5[0-9]\d{7}|[234679]\d{7})|800\d{4,7})$"


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of personal data: its category, its sensitivity, and how to recognise a value."""

    name: str
    category: str
    sensitivity: Sensitivity
    detect: Callable[[pl.Series], pl.Series]
    #: Whether integer columns are inspected too (their values rendered as digits).
    digits_only: bool = False


DETECTORS: tuple[Detector, ...] = (
    Detector("email", "contact.email", Sensitivity.CONFIDENTIAL, _pattern(_EMAIL)),
    Detector("phone", "contact.phone", Sensitivity.CONFIDENTIAL, _pattern(_PHONE, strip=True)),
    Detector(
        "emirates_id", "national_id", Sensitivity.RESTRICTED, _detect_emirates_id, digits_only=True
    ),
    Detector("iban", "financial.iban", Sensitivity.RESTRICTED, _detect_iban),
    Detector("payment_card", "financial.payment_card", Sensitivity.RESTRICTED, _detect_card, True),
    Detector("ip_address", "online.ip_address", Sensitivity.CONFIDENTIAL, _detect_ip),
)


def detect_value(value: object) -> Detector | None:
    """The first detector that recognises one value (used to redact single cells)."""
    import polars as pl

    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        series = pl.Series("v", [str(value)])
        candidates = [d for d in DETECTORS if d.digits_only]
    elif isinstance(value, str):
        series = pl.Series("v", [value[:200]])
        candidates = list(DETECTORS)
    else:
        return None
    for detector in candidates:
        if bool(detector.detect(series)[0]):
            return detector
    return None
