"""Reading a CSV source in a test: every batch's rows and rejects, with no blob store."""

from __future__ import annotations

from typing import Any

import polars as pl

from keel.data import CsvSource


class NoBlobs:
    """The sink a CSV source reads into: it stores no file bytes and knows no file."""

    def put(self, data: bytes) -> str:
        raise AssertionError("a CSV source stores no file bytes")

    def known(self, path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
        return None


def read(source: CsvSource) -> tuple[pl.DataFrame, list[Any]]:
    """All the rows of ``source`` as one frame, and all its rejects in order."""
    frames: list[pl.DataFrame] = []
    rejects: list[Any] = []
    for batch in source.batches(NoBlobs()):
        frames.append(batch.frame)
        rejects.extend(batch.rejects)
    return pl.concat(frames), rejects
