"""Failing rows and listed values shown in a validation report, with personal data replaced
by a marker.

A column classified as personal data (or declared sensitive) is replaced whole; any other value
is replaced when a detector recognises it whole, and personal data found inside free text
("call Fatima on 050 123 4567") is replaced where it stands, before the text is shortened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from keel.data._checks import MAX_FAILING_ROWS

if TYPE_CHECKING:
    import polars as pl

    from keel.data._classify import Classification

__all__ = ["Redactor"]

_MAX_SHOWN_COLUMNS = 12
_MAX_TEXT = 120
_SAMPLE = 10_000


class Redactor:
    """Turns failing rows into JSON-safe dicts with personal data replaced by a marker.

    A column is replaced whole when it is declared sensitive (the version's stored labels put
    every column with personal-data categories there), when the classifier finds personal data
    in a sample of the data it was built on, or when it finds personal data in the very rows
    or values being shown: a version's first part may hold none of what later parts do.
    """

    def __init__(self, frame: pl.DataFrame, sensitive: set[str]) -> None:
        # A seeded sample is all the classifier reads; keeping only it bounds the memory held
        # while the rest of a version's parts stream past.
        self._sample = frame if frame.height <= _SAMPLE else frame.sample(_SAMPLE, seed=0)
        self._sensitive = sensitive
        self._classification: Classification | None = None
        self._personal_columns: dict[str, tuple[str, ...]] | None = None

    def _labels(self) -> Classification:
        if self._classification is None:
            from keel.data._classify import classify_frame

            self._classification = classify_frame(self._sample, sample_size=_SAMPLE)
        return self._classification

    def rows(self, failing: pl.DataFrame, first: Sequence[str]) -> tuple[dict[str, Any], ...]:
        index = failing.columns[0]  # the row number
        ordered = [*dict.fromkeys([index, *first, *failing.columns])][:_MAX_SHOWN_COLUMNS]
        shown = failing.head(MAX_FAILING_ROWS).select(ordered)
        personal = self._personal() | _personal_in(shown.drop(index))
        out = []
        for row in shown.iter_rows(named=True):
            out.append(
                {
                    name: value if name == index else _shown(name, value, personal)
                    for name, value in row.items()
                }
            )
        return tuple(out)

    def values(self, column: str, values: Sequence[Any]) -> list[Any]:
        """``values`` of ``column`` as a report may show them (the new categories a
        reference check lists, say)."""
        import polars as pl

        text = pl.Series(column, [None if v is None else str(v) for v in values], pl.String)
        personal = self._personal() | _personal_in(text.to_frame())
        return [_shown(column, v, personal) for v in values]

    def value(self, column: str, value: Any) -> Any:
        """One value of ``column``, JSON-safe, or a marker in place of its personal data."""
        return _shown(column, value, self._personal())

    def _personal(self) -> dict[str, tuple[str, ...]]:
        """The columns replaced whole, with their personal-data categories: classified as
        personal data in the sample, or declared sensitive."""
        if self._personal_columns is None:
            found = _personal_in(self._sample, self._labels())
            self._personal_columns = dict.fromkeys(self._sensitive, ()) | found
        return self._personal_columns


def _personal_in(
    frame: pl.DataFrame, labels: Classification | None = None
) -> dict[str, tuple[str, ...]]:
    """The columns of ``frame`` the classifier takes for personal data, with the categories."""
    from keel.data._classify import classify_frame
    from keel.data._detectors import Sensitivity

    if labels is None:
        if frame.height == 0 or frame.width == 0:
            return {}
        labels = classify_frame(frame, sample_size=_SAMPLE)
    return {
        name: labels.columns[name].categories
        for name in labels.columns_at_least(Sensitivity.CONFIDENTIAL)
    }


def _shown(column: str, value: Any, personal: Mapping[str, tuple[str, ...]]) -> Any:
    """One value of ``column``, JSON-safe, or a marker in place of its personal data."""
    from keel.data._detectors import detect_value

    if value is None:
        return None
    if column in personal:
        return f"[redacted: {', '.join(personal[column]) or 'sensitive'}]"
    if (found := detect_value(value)) is not None:
        return f"[redacted: {found.category}]"
    return _json_safe(value)


def _json_safe(value: object) -> Any:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    from keel.data._detectors import redact_text

    if isinstance(value, date | datetime):
        return value.isoformat()
    # Free text, and lists or structs rendered as text, may hold personal data.
    text = redact_text(str(value))
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"
