"""Failing rows and listed values shown in a validation report, with personal data replaced
by a marker.

A column classified as personal data (or declared sensitive) is replaced whole; any other value
is replaced when a detector recognises it whole, and personal data found inside free text
("call Fatima on 050 123 4567") is replaced where it stands, before the text is shortened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    """Turns failing rows into JSON-safe dicts with personal data replaced by a marker."""

    def __init__(self, frame: pl.DataFrame, sensitive: set[str]) -> None:
        # A seeded sample is all the classifier reads; keeping only it bounds the memory held
        # while the rest of a version's parts stream past.
        self._sample = frame if frame.height <= _SAMPLE else frame.sample(_SAMPLE, seed=0)
        self._sensitive = sensitive
        self._classification: Classification | None = None
        self._personal_columns: set[str] | None = None

    def _labels(self) -> Classification:
        if self._classification is None:
            from keel.data._classify import classify_frame

            self._classification = classify_frame(self._sample, sample_size=_SAMPLE)
        return self._classification

    def rows(self, failing: pl.DataFrame, first: Sequence[str]) -> tuple[dict[str, Any], ...]:
        index = failing.columns[0]  # the row number
        ordered = [*dict.fromkeys([index, *first, *failing.columns])][:_MAX_SHOWN_COLUMNS]
        out = []
        for row in failing.head(MAX_FAILING_ROWS).select(ordered).iter_rows(named=True):
            out.append(
                {
                    name: value if name == index else self.value(name, value)
                    for name, value in row.items()
                }
            )
        return tuple(out)

    def values(self, column: str, values: Sequence[Any]) -> list[Any]:
        """``values`` of ``column`` as a report may show them (the new categories a
        reference check lists, say)."""
        return [self.value(column, v) for v in values]

    def value(self, column: str, value: Any) -> Any:
        """One value of ``column``, JSON-safe, or a marker in place of its personal data."""
        from keel.data._detectors import detect_value

        if value is None:
            return None
        if column in self._personal():
            labels = self._labels()
            cats = labels.columns[column].categories if column in labels.columns else ()
            return f"[redacted: {', '.join(cats) or 'sensitive'}]"
        if (found := detect_value(value)) is not None:
            return f"[redacted: {found.category}]"
        return _json_safe(value)

    def _personal(self) -> set[str]:
        """The columns replaced whole: classified as personal data, or declared sensitive."""
        from keel.data._detectors import Sensitivity

        if self._personal_columns is None:
            labels = self._labels()
            self._personal_columns = (
                set(labels.columns_at_least(Sensitivity.CONFIDENTIAL)) | self._sensitive
            )
        return self._personal_columns


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
