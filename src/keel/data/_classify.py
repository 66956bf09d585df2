"""Per-column classification of personal data, sensitivity labels, and their propagation.

``classify_frame`` looks at a seeded sample of the rows (``sample_size``, default 10,000), runs
every detector of ``_detectors`` over each column in one vectorised pass, and labels the column
with the categories whose share of the sampled non-null values reaches ``MIN_CONFIDENCE``.

A column whose values are mostly personal data of several kinds (a "contact" column of emails
and phones) is labelled with each kind holding at least 5% of them once together they reach
``MIN_CONFIDENCE``. Integer columns are read as digits for the kinds stored as numbers (phones
that lost their leading ``0``, Emirates IDs, cards); list, array and struct columns are
classified by their string and integer leaves.

Column names are read as words ("contactId" is ``contact``, ``id``), never as substrings: a
name saying phone lets bare national digits count as phones (in text, and at all in integer
columns), and a name saying a person's name ("first_name") labels name-like values without the
given-names dictionary, which must vouch for a bare ``name`` or any other "…_name".

Sensitivity rule: national IDs, payment cards and IBANs are ``restricted``; email, phone,
IP address, date of birth and person name are ``confidential``; other text columns (and nested
columns holding text) are ``internal`` (free text can hide what no detector recognises); other
columns are ``public``.
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
    "at_least",
    "classify_frame",
    "propagate",
]

#: The share of sampled non-null values a detector must recognise to label a column.
MIN_CONFIDENCE = 0.5
_MAX_SAMPLE = 1_000_000

_BIRTH = re.compile(r"(birth|\bdob\b|^dob|dob$|_dob_|born)", re.IGNORECASE)
# A column named for a person's name ("first_name", "customerName", "surname"): labelled from
# its name-like values alone. Any other "…_name" ("store_name", "plan_name") or a bare "name"
# needs the given-names dictionary to vouch for some of its values too.
_PERSON_PREFIXES = frozenset((
    "first", "last", "full", "given", "family", "middle", "maiden", "sur", "fore", "customer",
    "client", "employee", "patient", "person", "holder", "cardholder", "contact", "user",
    "owner", "guest", "passenger", "member", "student", "applicant", "beneficiary", "spouse",
    "father", "mother",
))  # fmt: skip
_PERSON_WORDS = frozenset((
    "surname", "surnames", "forename", "forenames", "firstname", "lastname", "fullname",
    "givenname", "familyname", "middlename", "maidenname",
))  # fmt: skip
_NAME_WORDS = frozenset(("name", "names"))
#: For a bare ``name`` or an unknown "…_name", the share of the values whose first word is in
#: the given-names dictionary that makes the column a person-name column.
_NAME_DICTIONARY_SUPPORT = 0.2
# A column named for phone numbers: the words (not substrings: "hotel" is no "tel", and
# "cancellation" no "cell") phone, mobile, tel, cell, msisdn, whatsapp, contact, alone or as
# in "phone_no", "mobileNumber", "telephone". A hint word followed by an id or a count
# ("contact_id", "phone_count") names something else, as does "contact" followed by a number:
# "contact_no" is the record number of a contact in CRM exports.
_PHONE_WORD = re.compile(
    r"^(?:(?:tele|cell|mobile|home|work|office|land)?phone|mobile|msisdn|tel|cell|whatsapp)"
    r"(?:s|no|num|number|nr)?$"
)
_CONTACT_WORD = re.compile(r"^contacts?$")
_NOT_PHONE_AFTER = frozenset((
    "id", "ids", "key", "keys", "uuid", "guid", "pk", "fk", "ref", "idx", "index", "count",
    "counts", "cnt", "total", "type",
))  # fmt: skip
_NUMBER_AFTER = frozenset(("no", "num", "number", "nr"))
_COUNT_BEFORE = frozenset(("n", "nb", "num", "count", "total"))
_COUNTS = frozenset(("number", "num", "no", "count", "total"))
_NOT_A_PERSON = re.compile(
    r"(file|host|product|company|org|city|country|street|brand|model|column|table|"
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
    #: Audited manual labels per column (``{"label", "reason", "by"}``), kept across
    #: re-classification and carried to derived versions.
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        data: dict[str, Any] = {
            "sensitivity": self.sensitivity.value,
            "categories": list(self.categories),
            "columns": {name: c.to_dict() for name, c in self.columns.items()},
        }
        if self.overrides:
            data["overrides"] = {name: dict(o) for name, o in self.overrides.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Classification:
        columns = data.get("columns", {})
        overrides = data.get("overrides", {})
        if not isinstance(columns, Mapping) or not isinstance(overrides, Mapping):
            raise InvalidInputError(
                "A classification's 'columns' and 'overrides' must be mappings."
            )
        return cls(
            {str(k): ColumnClassification.from_dict(v) for k, v in columns.items()},
            {str(k): dict(v) for k, v in overrides.items()},
        )


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
    if dtype.is_nested():
        return _classify_nested(column)
    if dtype.is_temporal() and dtype != pl.Duration and _BIRTH.search(name):
        return _found(("date_of_birth",), Sensitivity.CONFIDENTIAL, 1.0, samples, "date_of_birth")
    if samples == 0:
        base = Sensitivity.INTERNAL if is_text else Sensitivity.PUBLIC
        return ColumnClassification((), base, 0.0, 0, "none")
    if is_text:
        text = values.cast(pl.String)
        phone_named = _says_phone(name)
        matches = {
            d.name: d.detect_column(text, named=d.name == "phone" and phone_named)
            for d in DETECTORS
        }
    elif dtype.is_integer():
        # Phones, Emirates IDs and card numbers are often typed as integers by a CSV reader.
        # A phone's digits alone (a mobile that lost its leading 0 is any 9-digit number
        # starting with 5) are too common in ids and amounts: only a phone-named column.
        text = values.cast(pl.String)
        matches = {
            d.name: d.detect_integers(text)
            for d in DETECTORS
            if d.digits_only and (d.name != "phone" or _says_phone(name))
        }
    else:
        return ColumnClassification((), Sensitivity.PUBLIC, 1.0, samples, "none")

    shares = {d: float(m.sum()) / samples for d, m in matches.items()}
    if is_text:
        shares.update(_text_shares(name, text, samples))
    found = [(share, d) for d, share in shares.items() if share >= MIN_CONFIDENCE]
    named = {d for _, d in found}
    # the other kinds a column of mostly personal data holds (55% emails and 40% cards)
    found += [item for item in _mixed(matches, shares, samples) if item[1] not in named]
    if found:
        found.sort(key=lambda item: (-item[0], item[1]))
        categories = tuple(_CATEGORY[d] for _, d in found)
        sensitivity = max(_SENSITIVITY[d] for _, d in found)
        confidence = found[0][0] if len(found) == 1 else _any_share(matches, samples)
        return _found(categories, sensitivity, round(confidence, 4), samples, found[0][1])
    best = max(shares.values(), default=0.0)
    base = Sensitivity.INTERNAL if is_text else Sensitivity.PUBLIC
    return ColumnClassification((), base, round(1.0 - best, 4), samples, "none")


#: In a column of mixed personal data (a "contact" column of emails and phones), the share of
#: the values a kind must hold to be named among the column's categories.
_MIN_MIXED_PART = 0.05
#: Nested values inspected per column (the leaves of its lists and structs).
_MAX_LEAVES = 100_000


def _any_share(matches: Mapping[str, pl.Series], samples: int) -> float:
    """The share of the values that some detector recognises."""
    any_match = None
    for mask in matches.values():
        any_match = mask if any_match is None else any_match | mask
    return 0.0 if any_match is None else float(any_match.sum()) / samples


def _mixed(
    matches: Mapping[str, pl.Series], shares: Mapping[str, float], samples: int
) -> list[tuple[float, str]]:
    """The kinds of a column whose values are mostly personal data of one kind or another
    (45% emails and 45% phones, or 55% emails and 40% cards): each kind holding at least
    ``_MIN_MIXED_PART`` of them, or nothing when the union falls short."""
    if _any_share(matches, samples) < MIN_CONFIDENCE:
        return []
    return [(shares[d], d) for d in matches if shares[d] >= _MIN_MIXED_PART]


def _classify_nested(column: pl.Series) -> ColumnClassification:
    """A list, array or struct column: its string and integer leaves classified like columns
    of their own (a struct field by its field name), the column taking every category found
    and the highest sensitivity of its leaves, so never less than ``internal`` when it holds
    text (a vector of floats stays ``public``, like a float column)."""
    labels = [_classify_column(leaf) for leaf in _leaves(column)]
    found = [label for label in labels if label.categories]
    samples = column.drop_nulls().len()
    if not found:
        level = max((label.sensitivity for label in labels), default=Sensitivity.PUBLIC)
        return ColumnClassification((), level, 0.0, samples, "none")
    categories = tuple(dict.fromkeys(c for label in found for c in label.categories))
    sensitivity = max(label.sensitivity for label in found)
    best = max(found, key=lambda label: label.confidence)
    return _found(
        categories, max(sensitivity, Sensitivity.INTERNAL), best.confidence, samples, best.detector
    )


def _leaves(column: pl.Series, depth: int = 0) -> list[pl.Series]:
    """The string and integer leaves of a nested column (lists exploded, struct fields
    unnested), each at most ``_MAX_LEAVES`` values; nesting deeper than 8 levels is not read."""
    import polars as pl

    dtype = column.dtype
    if depth > 8:
        return []
    if isinstance(dtype, pl.List):
        return _leaves(column.list.explode().head(_MAX_LEAVES), depth + 1)
    if isinstance(dtype, pl.Array):
        return _leaves(column.arr.explode().head(_MAX_LEAVES), depth + 1)
    if isinstance(dtype, pl.Struct):
        fields = column.struct.unnest()
        return [
            leaf for name in fields.columns for leaf in _leaves(fields.get_column(name), depth + 1)
        ]
    if dtype in (pl.String, pl.Categorical, pl.Enum) or dtype.is_integer():
        return [column.head(_MAX_LEAVES)]
    return []


def _words(name: str) -> list[str]:
    """The words of a column name, lower case: split at ``_``, ``-``, spaces and other
    punctuation, at camelCase humps and between letters and digits ("contactId2" is
    ``["contact", "id", "2"]``)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])|([A-Z])([A-Z][a-z])", r"\1\3 \2\4", name)
    return re.findall(r"[a-z]+|[0-9]+", spaced.lower())


def _says_phone(name: str) -> bool:
    """Whether a column's name says it holds phone numbers (see ``_PHONE_WORD``)."""
    words = _words(name)
    for i, word in enumerate(words):
        contact = _CONTACT_WORD.match(word) is not None
        if not contact and not _PHONE_WORD.match(word):
            continue
        after = words[i + 1] if i + 1 < len(words) else ""
        before = words[i - 1] if i > 0 else ""
        # "num_phones", "number_of_contacts": a count of them
        counted = before in _COUNT_BEFORE or (before == "of" and i > 1 and words[i - 2] in _COUNTS)
        if after in _NOT_PHONE_AFTER or counted or (contact and after in _NUMBER_AFTER):
            continue
        return True
    return False


def _name_kind(name: str) -> str:
    """How a column's name speaks of person names: ``"person"`` ("first_name", "surname"),
    ``"name"`` (a bare "name" or an unknown "…_name", which need the dictionary's support),
    or ``""`` (no name, or a name of something else: "product_name", "file_name")."""
    if _NOT_A_PERSON.search(name):
        return ""
    words = _words(name)
    if any(word in _PERSON_WORDS for word in words):
        return "person"
    for i, word in enumerate(words):
        if word in _NAME_WORDS:
            if i > 0 and words[i - 1] in _PERSON_PREFIXES:
                return "person"
            return "name"
    return ""


def _text_shares(name: str, text: pl.Series, samples: int) -> dict[str, float]:
    shares: dict[str, float] = {}
    if _BIRTH.search(name):
        shares["date_of_birth"] = float(text.str.contains(_DATE_VALUE).sum()) / samples
    name_like = text.str.contains(_NAME_VALUE) & text.str.contains(r"[^\W\d_]")
    kind = _name_kind(name)
    if kind == "person":
        shares["person_name"] = float(name_like.sum()) / samples
        return shares
    first = text.str.strip_chars().str.to_lowercase().str.extract(r"^([^\W\d_]+)", 1)
    in_dictionary = first.is_in(list(GIVEN_NAMES)).fill_null(False) & name_like
    share = float(in_dictionary.sum()) / samples
    if kind == "name":
        # "store_name", "plan_name", a bare "name": person names only when the dictionary
        # knows a good share of their first words (people's names, not branches or plans).
        supported = share >= _NAME_DICTIONARY_SUPPORT
        shares["person_name"] = float(name_like.sum()) / samples if supported else 0.0
    else:
        # Without a hint from the column name, the dictionary must vouch for most values.
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
    stays restricted) and the audited overrides behind them, except that a removed column takes
    its labels with it and a column an anonymization step masked, pseudonymized, generalized or
    suppressed drops to ``internal`` with no personal-data category: the cause of the label is
    gone. ``anonymized_columns`` must name only columns whose cause the step really removed
    (``AnonymizationRecord.anonymized_columns`` leaves out those it left readable).
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
    overrides = {
        name: override
        for name, override in parent.overrides.items()
        if name in columns and name not in anonymized
    }
    return Classification(columns, overrides)


def at_least(detected: Classification, floor: Classification) -> Classification:
    """``detected`` raised, column by column, to the labels of ``floor`` (a derived version's
    inherited labels): the higher sensitivity and the categories of both. A sample that happens
    to miss what the parent held, or data no detector recognises (a column an override labelled
    ``health``), never lowers a derived version's labels."""
    columns: dict[str, ColumnClassification] = {}
    for name, label in detected.columns.items():
        inherited = floor.columns.get(name)
        if inherited is None or (
            inherited.sensitivity <= label.sensitivity
            and set(inherited.categories) <= set(label.categories)
        ):
            columns[name] = label
            continue
        columns[name] = ColumnClassification(
            tuple(dict.fromkeys((*label.categories, *inherited.categories))),
            max(label.sensitivity, inherited.sensitivity),
            label.confidence,
            label.samples,
            label.detector if label.sensitivity >= inherited.sensitivity else "inherited",
        )
    return Classification(columns, dict(detected.overrides))
