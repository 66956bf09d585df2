"""Unstructured sources: a folder, or an archive unpacked by our own checked code.

A folder becomes a manifest table (relative path, size, media type, digest, and metadata:
image width/height/mode, text length and line count, PDF page count) with the bytes in the
blob store. Symlinks that leave the folder are refused. Archives (zip, tar, tar.gz) are
checked member by member before anything is written and unpacked into a private temporary
folder (``_archives.py``), which is then read as a folder.
"""

from __future__ import annotations

import contextlib
import errno
import io
import mimetypes
import os
import stat
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast, runtime_checkable

from keel.data._archives import (
    MAX_FOLDER_DEPTH,
    ArchiveUnpacker,
    remove_stale_unpacks,
    unpack_folder,
)
from keel.data._sources import BlobSink, SourceBatch
from keel.errors import ConflictError, InvalidInputError, KeelError, NotFoundError, StorageError

if TYPE_CHECKING:
    from keel.data._ingest import PreparedStream

__all__ = [
    "MANIFEST_SCHEMA",
    "ArchiveSource",
    "FolderSource",
    "StreamingSink",
    "describe_file",
    "media_type",
    "needs_content",
    "remove_stale_unpacks",
]

MANIFEST_SCHEMA = {
    "path": "string",
    "size": "int64",
    "media_type": "string",
    "digest": "string",
    "mtime_ns": "int64",
    "width": "int64",
    "height": "int64",
    "mode": "string",
    "text_chars": "int64",
    "text_lines": "int64",
    "pdf_pages": "int64",
}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
_TEXT_TYPES = ("text/", "application/json", "application/xml")


_HEAD_BYTES = max(len(magic) for magic, _ in _MAGIC)


@runtime_checkable
class StreamingSink(Protocol):
    """A sink that also stores a file read chunk by chunk (``Ingest`` is one)."""

    def put_stream(self, handle: BinaryIO | io.RawIOBase) -> tuple[str, int]:
        """Store the rest of ``handle``; return ``(digest, size)``."""
        ...


@runtime_checkable
class ReadAheadSink(StreamingSink, Protocol):
    """A streaming sink that can also take small files read and hashed ahead, on several
    threads at once, and stored in order (``Ingest`` is one)."""

    def prepare_stream(
        self, handle: io.RawIOBase | io.BytesIO, *, max_chunks: int
    ) -> PreparedStream | None:
        """Read and hash the rest of ``handle`` if it has at most ``max_chunks`` chunks."""
        ...

    def send_prepared(self, prepared: PreparedStream) -> tuple[str, int]:
        """Store a prepared file; return ``(digest, size)``."""
        ...

    def discard_prepared(self, prepared: PreparedStream) -> None:
        """Drop a prepared file without storing it."""
        ...

    @property
    def chunk_size(self) -> int:
        """The bytes of one chunk (files of up to a few chunks are read ahead)."""
        ...


#: Lanes reading and hashing files ahead of the consumer (one SHA-256 is sequential: a folder
#: of many files is hashed on every core this way), the files they may hold read at once, and
#: the largest file read ahead, in blob chunks (larger ones are streamed in order).
_LANES = 2
_AHEAD_FILES = 4
_AHEAD_CHUNKS = 4


@dataclass(slots=True)
class _ReadAhead:
    """What a lane made of one file: its row but the digest, and its prepared bytes (None
    once they are stored or given back)."""

    row: dict[str, Any]
    prepared: PreparedStream | None


@dataclass(slots=True)
class _InOrder:
    """A file the consumer reads itself, in its turn (too large to be read ahead)."""

    rel: str
    entry: Path
    info: os.stat_result


def _discard(sink: ReadAheadSink, waiting: object) -> None:
    """Give back the buffers of a file read ahead and never stored (after the lanes ended)."""
    if not isinstance(waiting, Future) or waiting.cancelled() or waiting.exception() is not None:
        return
    done = waiting.result()
    if done.prepared is not None:
        prepared, done.prepared = done.prepared, None
        sink.discard_prepared(prepared)


def _changed(rel: str, why: str) -> ConflictError:
    return ConflictError(
        f"{rel!r} changed while it was being read ({why}); nothing was ingested. Ingest the "
        "folder again once the file is no longer being modified.",
        path=rel,
    )


def _shown(rel: str) -> str:
    """``rel`` as text that can be printed (a name that is not UTF-8 keeps its bytes as
    escapes)."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _unreadable(rel: str, exc: OSError) -> KeelError:
    """The error for a file or folder of the folder that could not be listed or opened: one
    removed or moved since it was listed is a change (as a modified file is), permission
    denied is the user's to fix, anything else is the disk's. Never a silent skip: a version
    missing a subfolder would look complete."""
    shown = _shown(rel)
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return _changed(shown, "it was removed or moved")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return InvalidInputError(
            f"{shown!r} in the folder cannot be read: permission denied; nothing was ingested. "
            "Give the ingesting user read access to it (or move it out of the folder) and "
            "ingest again.",
            path=shown,
        )
    return StorageError(
        f"{shown!r} in the folder cannot be read ({exc.strerror or exc}); nothing was ingested.",
        path=shown,
    )


class _Capped(io.RawIOBase):
    """A file read through ``readinto`` that refuses to yield more than ``limit`` bytes (a
    file that grows while it is streamed is not read on without end)."""

    def __init__(self, handle: io.RawIOBase, limit: int, rel: str) -> None:
        super().__init__()
        self._handle = handle
        self._left = limit
        self._rel = rel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = self._handle.readinto(buffer) or 0
        self._left -= got
        if self._left < 0:
            raise _changed(self._rel, "it grew over the size limit")
        return got


def _read_at_most(handle: io.RawIOBase, size: int, limit: int, rel: str) -> bytes:
    """The rest of ``handle``, listed as ``size`` bytes (one read when it still is); a file
    that grew over ``limit`` bytes meanwhile is refused."""
    data = handle.read(min(size, limit) + 1) or b""
    while len(data) <= limit:
        more = handle.read(min(limit + 1 - len(data), 1 << 24))
        if not more:
            return data
        data += more
    raise _changed(rel, "it grew over the size limit")


def media_type(rel: str, head: bytes) -> str:
    """The media type of a file from its first bytes (magic numbers), then its name."""
    media = next((m for magic, m in _MAGIC if head.startswith(magic)), None)
    return media or mimetypes.guess_type(rel)[0] or "application/octet-stream"


def needs_content(media: str) -> bool:
    """Whether :func:`describe_file` reads a file's whole content for this media type (image
    size and mode, PDF pages, text length and lines); other files only need their first
    bytes, so they are streamed."""
    return media.startswith(("image/", "application/pdf", *_TEXT_TYPES))


def describe_file(rel: str, data: bytes) -> dict[str, Any]:
    """Media type and extracted metadata of one file's bytes."""
    media = media_type(rel, data[:_HEAD_BYTES])
    row: dict[str, Any] = {"media_type": media}
    if media.startswith("image/"):
        try:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as image:
                row.update(width=image.width, height=image.height, mode=image.mode)
        except Exception:  # Pillow raises many types for unreadable images
            row["media_type"] = "application/octet-stream"
    elif media == "application/pdf":
        try:
            from pypdf import PdfReader

            row["pdf_pages"] = len(PdfReader(io.BytesIO(data)).pages)
        except Exception:  # pypdf raises many types for damaged files
            row["pdf_pages"] = None
    elif media.startswith(_TEXT_TYPES):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        row.update(
            text_chars=len(text),
            text_lines=text.count("\n") + (0 if text.endswith("\n") or not text else 1),
        )
    return row


#: Files that make a folder a Keel home (``KEEL_HOME``, ``./.keel`` by default): the master
#: key, the model-signing key and the embedded database. A folder holding any of them is never
#: walked, so a home inside an ingested folder (or archive) cannot leak its keys as blobs.
_HOME_MARKERS = ("master.key", "signing.key", "keel.db", "blobs")


def _is_keel_home(folder: Path) -> bool:
    """Whether ``folder`` is a Keel home: a ``master.key`` beside a ``signing.key``, a
    ``keel.db`` or a ``blobs`` folder (links count too). A ``master.key`` alone is not one (a
    Rails app's ``config/master.key``): that folder is ingested like any other."""
    if not os.path.lexists(folder / "master.key"):
        return False
    return any(os.path.lexists(folder / marker) for marker in _HOME_MARKERS[1:])


def _inside_keel_home(root: Path, target: Path) -> bool:
    """Whether ``target`` (resolved, under ``root``) lies in a Keel home below ``root``."""
    return any(_is_keel_home(folder) for folder in target.parents if folder.is_relative_to(root))


def _text_path(root: Path, entry: Path) -> str:
    """The manifest path of ``entry``: refused when its name is not UTF-8 (the manifest
    stores text, and a lossy rendering could collide with another file's name)."""
    rel = entry.relative_to(root).as_posix()
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
        raise InvalidInputError(
            f"{shown!r} in the folder has a name that is not UTF-8 text; nothing was ingested. "
            "Rename it to UTF-8 (e.g. `convmv -f latin1 -t utf8 --notest`) and ingest again.",
            path=shown,
        ) from None
    return rel


def _too_deep(rel: str) -> InvalidInputError:
    """The error for a folder nested deeper than Keel walks (os.walk recurses once a level)."""
    return InvalidInputError(
        f"{rel[:200]!r} in the folder is nested more than {MAX_FOLDER_DEPTH} folders deep; "
        "nothing was ingested. Move its files to a folder nearer the top and ingest again.",
        path=rel,
    )


def _open_listed(rel: str, path: Path, info: os.stat_result) -> io.FileIO:
    """Open the listed file without following a symlink put in its place since it was
    listed, and refuse one that is no longer the same file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise _changed(rel, "it was replaced by a symbolic link") from exc
        raise _unreadable(rel, exc) from exc
    handle = open(fd, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino) or not stat.S_ISREG(now.st_mode):
        handle.close()
        raise _changed(rel, "it was replaced by another file")
    return handle


class FolderSource:
    """Every regular file under a folder, in path order, as a manifest table.

    Args:
        path: the folder.
        max_file_bytes: the largest file accepted (default 1 GiB).
        batch_files: manifest rows per batch.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, max_file_bytes: int = 1 << 30, batch_files: int = 500
    ) -> None:
        self._path = Path(path)
        self._max_file_bytes = max_file_bytes
        self._batch_files = batch_files
        self._label: str | None = None
        # Reuse the previous version's row of a file of unchanged path, size and time. Off for
        # unpacked archives: their members often share one normalised time, so a changed member
        # of the same size would keep its old digest; their bytes were just decompressed anyway,
        # and identical content still gives an identical manifest (the unchanged version).
        self._reuse = True

    def describe(self) -> dict[str, Any]:
        return {"kind": "folder", "path": self._label or str(self._path)}

    def _files(self) -> Iterator[tuple[str, Path]]:
        """Each regular file's path in the manifest and the path to open (a link's target),
        in path order; Keel homes (their keys, database and blobs) are never taken."""
        root = self._path.resolve()
        if not root.is_dir():
            raise NotFoundError(f"No folder at {str(self._path)!r}.", path=str(self._path))
        if _is_keel_home(root):
            raise InvalidInputError(
                f"{str(self._path)!r} is a Keel home (it holds master.key with a signing.key, "
                "keel.db or blobs folder): its keys and store are never ingested. Ingest the "
                "folder of your files instead.",
                path=str(self._path),
            )

        def failed(exc: OSError) -> None:
            raise self._unreadable_at(root, exc) from exc

        # a subfolder that cannot be listed (permission denied, removed meanwhile) fails the
        # ingest through ``failed``; os.walk would otherwise leave it out without a word
        for current, dirs, files in os.walk(root, followlinks=False, onerror=failed):
            dirs.sort()
            here = Path(current)
            try:  # one try a folder: a name that cannot be examined fails, never is skipped
                for name in list(dirs):
                    entry = here / name
                    if entry.is_symlink():
                        self._check_link(root, entry)
                        dirs.remove(name)  # an in-folder link to a folder is walked there anyway
                    elif _is_keel_home(entry):
                        dirs.remove(name)  # a Keel home (e.g. ./.keel): its keys never leave it
                if dirs and len(here.relative_to(root).parts) >= MAX_FOLDER_DEPTH:
                    raise _too_deep(_text_path(root, here / dirs[0]))
                for name in sorted(files):
                    entry = here / name
                    opened = entry
                    if entry.is_symlink():
                        opened = self._check_link(root, entry)
                        if not opened.is_file() or _inside_keel_home(root, opened):
                            continue
                    elif not entry.is_file():
                        continue
                    yield _text_path(root, entry), opened
            except OSError as exc:
                if isinstance(exc, KeelError):
                    raise
                raise self._unreadable_at(root, exc) from exc

    def _unreadable_at(self, root: Path, exc: OSError) -> KeelError:
        """:func:`_unreadable` for an error of the walk, named by its path in the folder."""
        where = exc.filename if isinstance(exc.filename, str) else None
        if where is None or Path(where) == root:
            return _unreadable(str(self._path), exc)
        target = Path(where)
        rel = target.relative_to(root).as_posix() if target.is_relative_to(root) else where
        return _unreadable(rel, exc)

    @staticmethod
    def _check_link(root: Path, entry: Path) -> Path:
        rel = _text_path(root, entry)
        try:
            target = entry.resolve()
        except (OSError, RuntimeError) as exc:  # a loop: RuntimeError before Python 3.13
            raise InvalidInputError(
                f"{rel!r} in the folder is a symlink that cannot be followed ({exc}); nothing "
                "was ingested. Remove the link or point it at a file in the folder.",
                path=str(entry),
            ) from exc
        if not target.is_relative_to(root):
            raise InvalidInputError(
                f"{rel!r} in the folder is a symlink to {str(target)!r}, outside the folder; "
                "nothing was ingested. Copy the file into the folder or remove the link.",
                path=str(entry),
            )
        return target

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        import polars as pl

        from keel.data._parts import parse_dtype

        schema = {name: parse_dtype(dtype) for name, dtype in MANIFEST_SCHEMA.items()}
        rows: list[dict[str, Any]] = []
        size = 0
        with contextlib.closing(self._stored(sink)) as stored:  # lanes end with the consumer
            for row, length in stored:
                rows.append(row)
                size += length
                if len(rows) >= self._batch_files:
                    yield SourceBatch(pl.DataFrame(rows, schema=schema), bytes_read=size)
                    rows, size = [], 0
        yield SourceBatch(pl.DataFrame(rows, schema=schema), bytes_read=size)

    def _stored(self, sink: BlobSink) -> Generator[tuple[dict[str, Any], int], None, None]:
        """Each file's manifest row and bytes read, in path order, once it is stored."""
        # Files wait here in path order: a row (known already), or the file being read ahead.
        ahead: deque[dict[str, Any] | _InOrder | Future[_ReadAhead]] = deque()
        lanes = (
            ThreadPoolExecutor(_LANES, thread_name_prefix="keel-folder-lane")
            if isinstance(sink, ReadAheadSink)
            else None
        )
        try:
            for rel, entry in self._files():
                try:
                    info = os.lstat(entry)
                except OSError as exc:  # removed since it was listed, or its folder locked
                    raise _unreadable(rel, exc) from exc
                if not stat.S_ISREG(info.st_mode):
                    raise _changed(rel, "it is no longer a regular file")
                if info.st_size > self._max_file_bytes:
                    raise InvalidInputError(
                        f"{rel!r} is {info.st_size} bytes, over the limit of "
                        f"{self._max_file_bytes}.",
                        path=rel,
                    )
                known = sink.known(rel, info.st_size, info.st_mtime_ns) if self._reuse else None
                if known is not None:
                    ahead.append(known)
                elif lanes is not None and (
                    info.st_size <= _AHEAD_CHUNKS * cast(ReadAheadSink, sink).chunk_size
                ):
                    reader = cast(ReadAheadSink, sink)
                    ahead.append(lanes.submit(self._read_ahead, reader, rel, entry, info))
                else:
                    ahead.append(_InOrder(rel, entry, info))
                while len(ahead) > _AHEAD_FILES or (ahead and not isinstance(ahead[0], Future)):
                    yield self._finish(sink, ahead.popleft())
            while ahead:
                yield self._finish(sink, ahead.popleft())
        finally:
            if lanes is not None:
                lanes.shutdown(wait=True, cancel_futures=True)
                for waiting in ahead:  # a failure or a closed consumer: give buffers back
                    _discard(cast(ReadAheadSink, sink), waiting)

    def _finish(
        self, sink: BlobSink, waiting: dict[str, Any] | _InOrder | Future[_ReadAhead]
    ) -> tuple[dict[str, Any], int]:
        """The manifest row of the next file in path order, and its bytes read."""
        if isinstance(waiting, Future):
            done = waiting.result()
            prepared, done.prepared = done.prepared, None
            if prepared is None:
                raise RuntimeError("a file read ahead was stored twice")  # a bug, not input
            digest, length = cast(ReadAheadSink, sink).send_prepared(prepared)
            return {**done.row, "digest": digest}, length
        if isinstance(waiting, _InOrder):
            return self._read_in_order(sink, waiting.rel, waiting.entry, waiting.info)
        return waiting, 0  # known from the previous version: not read again

    def _read_ahead(
        self, sink: ReadAheadSink, rel: str, entry: Path, info: os.stat_result
    ) -> _ReadAhead:
        """Read and hash a small file on a lane (and describe it: image size, PDF pages,
        text length, when its media type says so)."""
        row = dict.fromkeys(MANIFEST_SCHEMA)
        with _open_listed(rel, entry, info) as handle:
            media = media_type(rel, handle.read(_HEAD_BYTES))
            handle.seek(0)
            if needs_content(media):
                data = _read_at_most(handle, info.st_size, self._max_file_bytes, rel)
                _check_unchanged(rel, info, os.fstat(handle.fileno()), len(data))
                row.update(describe_file(rel, data))
                source: io.RawIOBase | io.BytesIO = io.BytesIO(data)  # shares the bytes
            else:
                row["media_type"] = media
                source = _Capped(handle, self._max_file_bytes, rel)
            prepared = sink.prepare_stream(source, max_chunks=_AHEAD_CHUNKS)
            if prepared is None:
                raise _changed(rel, "it grew while it was read")
            try:
                _check_unchanged(rel, info, os.fstat(handle.fileno()), prepared.size)
            except BaseException:
                sink.discard_prepared(prepared)
                raise
        row.update(path=rel, size=prepared.size, mtime_ns=info.st_mtime_ns)
        return _ReadAhead(row, prepared)

    def _read_in_order(
        self, sink: BlobSink, rel: str, entry: Path, info: os.stat_result
    ) -> tuple[dict[str, Any], int]:
        """Read and store one file on the consumer's thread (streamed, or whole to describe)."""
        row = dict.fromkeys(MANIFEST_SCHEMA)
        with _open_listed(rel, entry, info) as handle:
            media = media_type(rel, handle.read(_HEAD_BYTES))
            handle.seek(0)
            limit = self._max_file_bytes
            if isinstance(sink, StreamingSink) and not needs_content(media):
                # read through reused buffers: no copy of the file in memory
                capped = _Capped(handle, limit, rel)
                digest, length = sink.put_stream(capped)
                _check_unchanged(rel, info, os.fstat(handle.fileno()), length)
                row["media_type"] = media
            else:
                data = _read_at_most(handle, info.st_size, limit, rel)
                _check_unchanged(rel, info, os.fstat(handle.fileno()), len(data))
                row.update(describe_file(rel, data))
                digest, length = sink.put(data), len(data)
        row.update(path=rel, size=length, digest=digest, mtime_ns=info.st_mtime_ns)
        return row, length


def _check_unchanged(rel: str, before: os.stat_result, after: os.stat_result, read: int) -> None:
    """Refuse a file whose size or modification time moved while it was read (the row would
    pair the old time with other bytes)."""
    if read != before.st_size or after.st_size != before.st_size:
        raise _changed(rel, f"{before.st_size} bytes when listed, {read} read, {after.st_size} now")
    if after.st_mtime_ns != before.st_mtime_ns:
        raise _changed(rel, "its modification time moved")
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        raise _changed(rel, "it was replaced by another file")


class ArchiveSource:
    """A zip or tar archive, checked and unpacked by Keel's own code, then read as a folder.

    The arguments, the checks and how the format is told are those of
    :class:`keel.data._archives.ArchiveUnpacker`, which does the unpacking.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_members: int = 100_000,
        max_total_bytes: int = 8 << 30,
        max_ratio: float = 200.0,
    ) -> None:
        self._path = Path(path)
        self._unpacker = ArchiveUnpacker(
            self._path,
            max_members=max_members,
            max_total_bytes=max_total_bytes,
            max_ratio=max_ratio,
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": "archive", "path": str(self._path)}

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        if not self._path.is_file():
            raise NotFoundError(f"No archive at {str(self._path)!r}.", path=str(self._path))
        with unpack_folder() as target:
            self.unpack(target)
            folder = FolderSource(target)
            folder._label = str(self._path)
            folder._reuse = False
            yield from folder.batches(sink)

    def unpack(self, target: Path) -> int:
        """Check every member, then unpack into ``target``; return the bytes written."""
        return self._unpacker.unpack(target)
