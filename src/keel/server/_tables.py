"""Tables as streamed downloads: Parquet (one row group per frame) or CSV, in bounded memory.

A dataset version or a prediction log can be larger than the server's memory. The responses
here take an iterator of Polars frames (one stored part at a time) and send each as soon as it
is encoded, so the server holds one part, not the table.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starlette.responses import StreamingResponse

from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["TABLE_FORMATS", "stream_table"]

#: Download formats of a table, and their media types.
TABLE_FORMATS = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class _Sink(io.RawIOBase):
    """A write-only file that hands out what was written since the last ``take``."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _parquet(frames: Iterator[pl.DataFrame], empty: pl.DataFrame) -> Iterator[bytes]:
    import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

    sink = _Sink()
    writer = None
    schema = None
    for frame in frames:
        table = frame.to_arrow()
        if writer is None:
            schema = table.schema
            writer = pq.ParquetWriter(sink, schema, compression="zstd")
        elif table.schema != schema:
            table = table.cast(schema)
        writer.write_table(table)
        yield sink.take()
    if writer is None:
        table = empty.to_arrow()
        writer = pq.ParquetWriter(sink, table.schema, compression="zstd")
        writer.write_table(table)
    writer.close()
    yield sink.take()


def _csv(frames: Iterator[pl.DataFrame], empty: pl.DataFrame) -> Iterator[bytes]:
    first = True
    for frame in frames:
        yield frame.write_csv(include_header=first).encode("utf-8")
        first = False
    if first:
        yield empty.write_csv(include_header=True).encode("utf-8")


def stream_table(
    frames: Iterator[pl.DataFrame], *, empty: pl.DataFrame, format: str, name: str
) -> StreamingResponse:
    """``frames`` as one Parquet or CSV attachment, encoded and sent one frame at a time.

    Args:
        frames: the table, part by part (read lazily, after the response starts).
        empty: a frame of the right columns, sent when ``frames`` yields nothing.
        format: ``parquet`` or ``csv``.
        name: the attachment's file name (reduced to header-safe characters).
    """
    if format not in TABLE_FORMATS:
        raise InvalidInputError(f"format must be parquet or csv; got {format!r:.40}.")
    body = _parquet(frames, empty) if format == "parquet" else _csv(frames, empty)
    base = _UNSAFE.sub("_", name)[:100] or "table"
    return StreamingResponse(
        body,
        media_type=TABLE_FORMATS[format],
        headers={"content-disposition": f'attachment; filename="{base}.{format}"'},
    )
