"""Files of the remote dataset client: folders as archives, rows as Parquet, row groups back.

Everything here runs on the client, in bounded memory: a folder is packed file by file, a
source's batches are written one row group at a time, and a downloaded version is read back one
row group (one stored part) at a time.
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel import errors
from keel.data import SourceBatch

if TYPE_CHECKING:
    import polars as pl

__all__ = ["NoFiles", "pack_folder", "row_groups", "write_parquet"]


class NoFiles:
    """The blob sink of a source read on the client: file sources go as archives instead."""

    def put(self, data: bytes) -> str:
        raise errors.InvalidInputError(
            "A source of files cannot be read on the client of a Keel server: pass the folder "
            "or archive path to ws.datasets.ingest, which uploads it as an archive."
        )

    def known(self, path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
        return None


def pack_folder(folder: Path, target: Path) -> None:
    """The folder's regular files as a tar archive (in-folder links as the files they name)."""
    root = folder.resolve()
    with tarfile.open(target, "w") as archive:
        for entry in sorted(folder.rglob("*")):
            rel = entry.relative_to(folder).as_posix()
            if entry.is_symlink():
                resolved = entry.resolve()
                if not resolved.is_relative_to(root):
                    raise errors.InvalidInputError(
                        f"{rel!r} in the folder is a symlink to {str(resolved)!r}, outside the "
                        "folder; nothing was ingested. Copy the file into the folder or remove "
                        "the link.",
                        path=str(entry),
                    )
                if resolved.is_file():
                    archive.add(str(resolved), arcname=rel)
            elif entry.is_file():
                archive.add(str(entry), arcname=rel)


def write_parquet(batches: Iterator[SourceBatch], target: Path) -> int:
    """Write the batches' rows to one Parquet file (a row group per batch); the row count."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

    writer = None
    schema = None
    rows = 0
    try:
        for batch in batches:
            table = batch.frame.to_arrow()
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(str(target), schema, compression="zstd")
            elif table.schema != schema:
                try:
                    table = table.cast(schema)
                except Exception as exc:  # pyarrow raises ArrowInvalid/NotImplemented
                    raise errors.InvalidInputError(
                        f"The source's batches change schema ({str(exc)[:200]}); give the "
                        "source an explicit schema.",
                    ) from exc
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise errors.InvalidInputError("The source yielded no batch, not even an empty one.")
    return rows


def row_groups(folder: tempfile.TemporaryDirectory[str], target: Path) -> Iterator[pl.DataFrame]:
    """The downloaded file's row groups as frames, one at a time; the folder is removed after.

    Empty row groups are skipped, but a file with no rows at all yields one empty frame with
    its schema, as a local workspace yields the one empty part of a zero-row version: a caller
    reading frame by frame still learns the columns and their types.
    """
    import polars as pl
    import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

    try:
        with pq.ParquetFile(str(target)) as reader:  # closed also when the caller stops early
            yielded = False
            for index in range(reader.num_row_groups):
                frame = pl.from_arrow(reader.read_row_group(index))
                assert isinstance(frame, pl.DataFrame)
                if frame.height:
                    yielded = True
                    yield frame
            if not yielded:
                empty = pl.from_arrow(reader.schema_arrow.empty_table())
                assert isinstance(empty, pl.DataFrame)
                yield empty
    finally:
        folder.cleanup()
