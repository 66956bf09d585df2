"""Failing rows shown in a validation report, with personal data replaced by a marker."""

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

    def _labels(self) -> Classification:
        if self._classification is None:
            from keel.data._classify import classify_frame

            self._classification = classify_frame(self._sample, sample_size=_SAMPLE)
        return self._classification

    def rows(self, failing: pl.DataFrame, first: Sequence[str]) -> tuple[dict[str, Any], ...]:
        from keel.data._detectors import Sensitivity, detect_value

        labels = self._labels()
        personal = set(labels.columns_at_least(Sensitivity.CONFIDENTIAL)) | self._sensitive
        index = failing.columns[0]  # the row number
        ordered = [*dict.fromkeys([index, *first, *failing.columns])][:_MAX_SHOWN_COLUMNS]
        out = []
        for row in failing.head(MAX_FAILING_ROWS).select(ordered).iter_rows(named=True):
            clean: dict[str, Any] = {}
            for name, value in row.items():
                if value is None or name == index:
                    clean[name] = value
                elif name in personal:
                    cats = labels.columns[name].categories if name in labels.columns else ()
                    clean[name] = f"[redacted: {', '.join(cats) or 'sensitive'}]"
                elif (found := detect_value(value)) is not None:
                    clean[name] = f"[redacted: {found.category}]"
                else:
                    clean[name] = _json_safe(value)
            out.append(clean)
        return tuple(out)


def _json_safe(value: object) -> Any:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value.isoformat() if isinstance(value, date | datetime) else str(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"
