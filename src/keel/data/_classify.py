"""Per-column classification of personal data, sensitivity labels, and their propagation.

``classify_frame`` looks at a seeded sample of the rows (``sample_size``, default 10,000), runs
every detector of ``_detectors`` over each column in one vectorised pass, and labels the column
with the categories whose share of the sampled non-null values reaches ``MIN_CONFIDENCE``.

Sensitivity rule: national IDs, payment cards and IBANs are ``restricted``; email, phone,
IP address, date of birth and person name are ``confidential``; other text columns are
``internal`` (free text can hide what no detector recognises); other columns are ``public``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.data._detectors import DETECTORS, Sensitivity
from keel.data._names import GIVEN_NAMES
from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "MIN_CONFIDENCE",
    "Classification",
    "ColumnClassification",
    "Sensitivity",
    "classify_frame",
    "propagate",
]

#: The share of sampled non-null values a detector must recognise to label a column.
MIN_CONFIDENCE = 0.5
_MAX_SAMPLE = 1_000_000

_BIRTH = re.compile(r"(birth|\bdob\b|^dob|dob$|_dob_|born)", re.IGNORECASE)
_NAME_HINT = re.compile(
    r"(^|_)(first|last|given|family|middle|full|maiden|sur|customer|person|patient|holder|"
    r"employee|contact|owner)?_?names?($|_)|surname|forename",
    re.IGNORECASE,
)
_NOT_A_PERSON = re.compile(
    r"(file|host|user|product|company|org|city|country|street|brand|model|column|table|"
    r"dataset|domain|item|path|key|type|field|class|category)_?names?",
    re.IGNORECASE,
)
_NAME_VALUE = r"^[^\d@_/\\:;|<>{}\[\]#$%^&*+=~]{2,80}$"
_DATE_VALUE = r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})"


@dataclass(frozen=True, slots=True)
class ColumnClassification:
    """What one column holds: personal-data categories, sensitivity, and the evidence."""

    categories: tuple[str, ...]
    sensitivity: Sensitivity
    confidence: float
    samples: int
    detector: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "sensitivity": self.sensitivity.value,
            "confidence": self.confidence,
            "samples": self.samples,
            "detector": self.detector,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnClassification:
        return cls(
            categories=tuple(data.get("categories", ())),
            sensitivity=_sensitivity(data.get("sensitivity", "internal")),
            confidence=float(data.get("confidence", 0.0)),
            samples=int(data.get("samples", 0)),
            detector=str(data.get("detector", "none")),
        )


@dataclass(frozen=True)
class Classification:
    """The classification of every column of a frame (or dataset version)."""

    columns: dict[str, ColumnClassification] = field(default_factory=dict)

    @property
    def sensitivity(self) -> Sensitivity:
        """The highest sensitivity of any column (``public`` for no columns)."""
        return max((c.sensitivity for c in self.columns.values()), default=Sensitivity.PUBLIC)

    @property
    def categories(self) -> tuple[str, ...]:
        """Every personal-data category found, sorted."""
        return tuple(sorted({cat for c in self.columns.values() for cat in c.categories}))

    def columns_at_least(self, level: Sensitivity) -> tuple[str, ...]:
        """Names of the columns whose sensitivity is ``level`` or higher."""
        return tuple(name for name, c in self.columns.items() if c.sensitivity >= level)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensitivity": self.sensitivity.value,
            "categories": list(self.categories),
            "columns": {name: c.to_dict() for name, c in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Classification:
        columns = data.get("columns", {})
        if not isinstance(columns, Mapping):
            raise InvalidInputError("A classification's 'columns' must be a mapping.")
        return cls({str(k): ColumnClassification.from_dict(v) for k, v in columns.items()})


def _sensitivity(value: object) -> Sensitivity:
    try:
        return Sensitivity(str(value))
    except ValueError:
        allowed = ", ".join(s.value for s in Sensitivity)
        raise InvalidInputError(
            f"Unknown sensitivity {value!r:.40}; use one of: {allowed}.", value=str(value)[:40]
        ) from None


def classify_frame(
    frame: pl.DataFrame, *, sample_size: int = 10_000, seed: int = 0
) -> Classification:
    """Classify every column of ``frame`` from a seeded sample of at most ``sample_size`` rows."""
    if not 1 <= sample_size <= _MAX_SAMPLE:
        raise InvalidInputError(
            f"sample_size must be between 1 and {_MAX_SAMPLE:,}; got {sample_size}.",
            sample_size=sample_size,
        )
    sample = frame if frame.height <= sample_size else frame.sample(sample_size, seed=seed)
    return Classification(
        {name: _classify_column(sample.get_column(name)) for name in frame.columns}
    )


def _classify_column(column: pl.Series) -> ColumnClassification:
    import polars as pl

    name = column.name
    dtype = column.dtype
    values = column.drop_nulls()
    samples = values.len()
    is_text = dtype in (pl.String, pl.Categorical, pl.Enum)
    if dtype.is_temporal() and dtype != pl.Duration and _BIRTH.search(name):
        return _found(("date_of_birth",), Sensitivity.CONFIDENTIAL, 1.0, samples, "date_of_birth")
    if samples == 0:
        base = Sensitivity.INTERNAL if is_text else Sensitivity.PUBLIC
        return ColumnClassification((), base, 0.0, 0, "none")
    if is_text:
        text = values.cast(pl.String)
        candidates = DETECTORS
    elif dtype.is_integer():
        text = values.cast(pl.String)
        candidates = tuple(d for d in DETECTORS if d.digits_only)
    else:
        return ColumnClassification((), Sensitivity.PUBLIC, 1.0, samples, "none")

    shares = {d.name: float(d.detect(text).sum()) / samples for d in candidates}
    if is_text:
        shares.update(_text_shares(name, text, samples))
    found = [(share, d) for d, share in shares.items() if share >= MIN_CONFIDENCE]
    if found:
        found.sort(key=lambda item: (-item[0], item[1]))
        categories = tuple(_CATEGORY[d] for _, d in found)
        sensitivity = max(_SENSITIVITY[d] for _, d in found)
        return _found(categories, sensitivity, round(found[0][0], 4), samples, found[0][1])
    best = max(shares.values(), default=0.0)
    base = Sensitivity.INTERNAL if is_text else Sensitivity.PUBLIC
    return ColumnClassification((), base, round(1.0 - best, 4), samples, "none")


def _text_shares(name: str, text: pl.Series, samples: int) -> dict[str, float]:
    shares: dict[str, float] = {}
    if _BIRTH.search(name):
        shares["date_of_birth"] = float(text.str.contains(_DATE_VALUE).sum()) / samples
    name_like = text.str.contains(_NAME_VALUE) & text.str.contains(r"[^\W\d_]")
    if _NAME_HINT.search(name) and not _NOT_A_PERSON.search(name):
        shares["person_name"] = float(name_like.sum()) / samples
    else:
        first = text.str.strip_chars().str.to_lowercase().str.extract(r"^([^\W\d_]+)", 1)
        in_dictionary = first.is_in(list(GIVEN_NAMES)).fill_null(False) & name_like
        # Without a hint from the column name, the dictionary must vouch for most values.
        share = float(in_dictionary.sum()) / samples
        shares["person_name"] = share if share >= 0.6 else 0.0
    return shares


def _found(
    categories: tuple[str, ...],
    sensitivity: Sensitivity,
    confidence: float,
    samples: int,
    detector: str,
) -> ColumnClassification:
    return ColumnClassification(categories, sensitivity, confidence, samples, detector)


_CATEGORY = {d.name: d.category for d in DETECTORS} | {
    "date_of_birth": "date_of_birth",
    "person_name": "person_name",
}
_SENSITIVITY = {d.name: d.sensitivity for d in DETECTORS} | {
    "date_of_birth": Sensitivity.CONFIDENTIAL,
    "person_name": Sensitivity.CONFIDENTIAL,
}


def propagate(
    parent: Classification,
    *,
    removed_columns: Collection[str] = (),
    anonymized_columns: Collection[str] = (),
) -> Classification:
    """The classification a derived version inherits from its parent.

    A derived version keeps every label of its parent (so data derived from restricted data
    stays restricted), except that a removed column takes its labels with it and a column an
    anonymization step masked, pseudonymized, generalized or suppressed drops to ``internal``
    with no personal-data category: the cause of the label is gone.
    """
    removed = set(removed_columns)
    anonymized = set(anonymized_columns)
    columns: dict[str, ColumnClassification] = {}
    for name, label in parent.columns.items():
        if name in removed:
            continue
        if name in anonymized:
            columns[name] = ColumnClassification(
                (), min(label.sensitivity, Sensitivity.INTERNAL), 1.0, label.samples, "anonymized"
            )
        else:
            columns[name] = label
    return Classification(columns)
