"""Unstructured sources: a folder, or an archive unpacked by our own checked code.

A folder becomes a manifest table (relative path, size, media type, digest, and metadata:
image width/height/mode, text length and line count, PDF page count) with the bytes in the
blob store. Symlinks that leave the folder are refused. Archives (zip, tar, tar.gz) are
checked member by member before anything is written — no absolute paths, no ``..``, no links
or devices, bounded member count, size and compression ratio — and then unpacked into a
private temporary folder whose writes are bounded again as they happen.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import io
import lzma
import mimetypes
import os
import shutil
import stat
import tarfile
import tarfile as _tarfile
import tempfile
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, Self, cast, runtime_checkable

from keel.data._sources import BlobSink, SourceBatch
from keel.errors import ConflictError, InvalidInputError, KeelError, NotFoundError, StorageError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

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


#: Where archives are unpacked (a private folder under the system temp folder), how old an
#: unpack folder must be before a later ingest may remove it as left by a killed one, and the
#: lock a live ingest holds on it (a killed process drops its lock).
_UNPACK_PREFIX = "keel-unpack-"
_UNPACK_LOCK = ".keel-unpack.lock"
_STALE_UNPACK_SECONDS = 3600.0
_STALE_UNLOCKED_SECONDS = 86400.0
#: Zip compression methods this Python reads.
_ZIP_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
#: What a damaged or truncated archive raises while it is read (and the decompressors under it).
_READ_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
    RuntimeError,  # zipfile: an encrypted member without a password
    OSError,  # gzip.BadGzipFile, bz2 "Invalid data stream", a short read
    UnicodeDecodeError,  # zipfile: a local header's name flagged UTF-8 that is not
)


def _member_ns(seconds: float) -> int:
    """A member's modification time in nanoseconds (0 when the archive holds none usable)."""
    try:
        return max(0, int(seconds * 1_000_000_000))
    except (OverflowError, ValueError):
        return 0


def _zip_ns(info: zipfile.ZipInfo) -> int:
    """A zip member's date and time (local time without a zone in the format; read as UTC, so
    the same archive gives the same times on every machine)."""
    try:
        return _member_ns(calendar.timegm((*info.date_time, 0, 0, 0)))
    except (OverflowError, ValueError, TypeError):
        return 0


@contextlib.contextmanager
def _unpack_folder() -> Iterator[Path]:
    """A private unpack folder, locked while in use and removed after; stale ones that killed
    ingests of this user left are removed first."""
    remove_stale_unpacks()
    home = Path(tempfile.mkdtemp(prefix=_UNPACK_PREFIX))
    try:
        with open(home / _UNPACK_LOCK, "wb") as lock:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            files = home / "files"
            files.mkdir()
            yield files
    finally:
        shutil.rmtree(home, ignore_errors=True)


def remove_stale_unpacks(
    temp: Path | None = None, *, older_than_seconds: float = _STALE_UNPACK_SECONDS
) -> int:
    """Remove this user's unpack folders (under ``temp``, the system's temporary folder by
    default) older than ``older_than_seconds`` whose lock no process holds (an ingest killed
    while it read them); return how many. Best effort, never failing."""
    if fcntl is None:
        return 0  # no locks to tell a live ingest from a dead one (and no owner ids)
    now = time.time()
    try:
        candidates = list((temp or Path(tempfile.gettempdir())).glob(f"{_UNPACK_PREFIX}*"))
    except OSError:
        return 0
    removed = 0
    for folder in candidates:
        try:
            info = os.lstat(folder)
            if (
                not stat.S_ISDIR(info.st_mode)
                or info.st_uid != os.getuid()
                or now - info.st_mtime < older_than_seconds
            ):
                continue
            if not (folder / _UNPACK_LOCK).exists():
                # left by a Keel without unpack locks: only once nothing could still use it
                if now - info.st_mtime >= _STALE_UNLOCKED_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
                continue
            with open(folder / _UNPACK_LOCK, "rb") as lock:
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live ingest holds it
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


class _DamagedHeaderError(Exception):
    """A tar header after the first that does not parse (tarfile would end the listing
    there without a word, and the members after it would be lost)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"damaged tar header at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


#: tarfile's errors for a header that does not parse or is cut short (not in its stubs).
_BAD_HEADERS: tuple[type[Exception], ...] = (
    vars(_tarfile)["InvalidHeaderError"],
    vars(_tarfile)["TruncatedHeaderError"],
)


#: tarfile's reading of the rest of a header of any type (not in its stubs).
_PROC_MEMBER = vars(_tarfile.TarInfo)["_proc_member"]
#: The extended headers tarfile reads whole into memory before it yields the member they
#: describe (GNU long names and link targets, pax records), the most bytes a run of them before
#: one member may take (their 512-byte blocks and declared sizes), and the most headers in a
#: run. Real ones hold a path or a few records, well under a kibibyte: one declaring gigabytes
#: is a decompression bomb that would be read before any check sees a member.
_EXTENDED_TYPES = frozenset(
    {
        _tarfile.GNUTYPE_LONGNAME,
        _tarfile.GNUTYPE_LONGLINK,
        _tarfile.XHDTYPE,
        _tarfile.XGLTYPE,
        _tarfile.SOLARIS_XHDTYPE,
    }
)
_MAX_EXTENDED_BYTES = 1 << 20
_MAX_EXTENDED_RUN = 16


class _OversizedHeaderError(Exception):
    """An extended tar header (long name, pax records) over the bounds, refused before tarfile
    reads its declared bytes."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"oversized tar header at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


class _CheckedTarInfo(tarfile.TarInfo):
    """A tar header reader that tells a damaged header from the end of the archive, and that
    bounds extended headers before tarfile reads them whole into memory."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> Self:
        archive = tarfile
        try:
            return super().fromtarfile(archive)
        except _BAD_HEADERS as exc:
            if archive.offset == 0:
                raise  # not a tar at all: tarfile.open says so (or tries another format)
            raise _DamagedHeaderError(archive.offset, str(exc)) from exc

    def _proc_member(self, tarfile: tarfile.TarFile) -> Self:
        # called by fromtarfile once the 512-byte block is parsed, before the bytes an
        # extended header declares are read (tarfile reads them whole, then calls fromtarfile
        # again for the header after it)
        archive = tarfile
        if isinstance(archive, _CheckedTarFile):
            archive.count_header(self)
        return cast(Self, _PROC_MEMBER(self, archive))


class _CheckedTarFile(tarfile.TarFile):
    """A tar reader whose headers are :class:`_CheckedTarInfo`, keeping the bytes of the
    extended headers read, for the plan to count toward the unpacked size and ratio."""

    tarinfo = _CheckedTarInfo
    #: declared bytes of extended headers not yet counted by the plan; the current run of
    #: extended headers (bytes, headers) before the member they describe
    extended_bytes = 0
    _run_bytes = 0
    _run_headers = 0

    def count_header(self, header: tarfile.TarInfo) -> None:
        """Count one header just parsed; refuse an extended one over the bounds."""
        if header.type not in _EXTENDED_TYPES:
            self._run_bytes = self._run_headers = 0
            return
        kind = header.type.decode("ascii", "backslashreplace")
        if header.size < 0:
            raise _OversizedHeaderError(
                header.offset, f"has an extended header (type {kind!r}) of negative size"
            )
        self._run_headers += 1
        self._run_bytes += _tarfile.BLOCKSIZE + header.size
        self.extended_bytes += header.size
        if self._run_bytes > _MAX_EXTENDED_BYTES:
            raise _OversizedHeaderError(
                header.offset,
                f"has an extended header (type {kind!r}: long name or pax records) declaring "
                f"{header.size} bytes, over the limit of {_MAX_EXTENDED_BYTES} for the "
                "headers of one member (a decompression bomb)",
            )
        if self._run_headers > _MAX_EXTENDED_RUN:
            raise _OversizedHeaderError(
                header.offset,
                f"has more than {_MAX_EXTENDED_RUN} extended headers (long names or pax "
                "records) in a row; repack the archive",
            )

    def take_extended(self) -> int:
        """The declared bytes of extended headers read since the last call."""
        taken, self.extended_bytes = self.extended_bytes, 0
        return taken


class _Plan:
    """The members to unpack, checked one by one as they are listed: count, running size and
    ratio (a bomb is refused at the member that crosses a limit, before more is decompressed),
    names that can be written (UTF-8, not too long), and no name given twice or used both as a
    file and as a folder."""

    def __init__(self, source: ArchiveSource) -> None:
        self._source = source
        self.count = 0
        self.total = 0
        self._packed = max(1, os.path.getsize(source._path))
        self._files: set[PurePosixPath] = set()
        self._folders: set[PurePosixPath] = set()

    def entry(self) -> None:
        """Count one entry of any kind (folders and skipped ones too)."""
        self.count += 1
        if self.count > self._source._max_members:
            raise self._source._refuse(
                "*", f"has more than {self._source._max_members} entries, over the limit"
            )

    def grow(self, name: str, size: int) -> None:
        """Count ``size`` more bytes unpacked (a member, or extended headers read whole);
        refuse the total or ratio over its limit."""
        refuse = self._source._refuse
        self.total += max(0, size)
        if self.total > self._source._max_total:
            raise refuse(
                name,
                f"brings the unpacked size to {self.total} bytes, over the limit of "
                f"{self._source._max_total}",
            )
        if self.total / self._packed > self._source._max_ratio:
            raise refuse(
                name,
                f"brings the expansion to {self.total / self._packed:.0f}x, over the limit of "
                f"{self._source._max_ratio:.0f}x (a decompression bomb)",
            )

    def add(self, name: str, rel: PurePosixPath, size: int) -> None:
        """Take one file member of ``size`` bytes to be written at ``rel``."""
        refuse = self._source._refuse
        self.grow(name, size)
        text = str(rel)
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:
            raise refuse(
                os.fsencode(name).decode("utf-8", "backslashreplace"),
                "has a name that is not UTF-8 text; repack it with UTF-8 names",
            ) from None
        if len(encoded) > 4000 or any(len(part.encode()) > 255 for part in rel.parts):
            raise refuse(name, "has a name too long for a file system (255 bytes a part)")
        if rel in self._files:
            raise refuse(name, "appears twice in the archive; repack it with each name once")
        if rel in self._folders or any(parent in self._files for parent in rel.parents):
            raise refuse(name, "is both a file and a folder in the archive; rename one of them")
        self._files.add(rel)
        self._folders.update(rel.parents)


class ArchiveSource:
    """A zip or tar archive, checked and unpacked by Keel's own code, then read as a folder.

    The format is told by the first bytes (a zip starts with a local file header, or is an
    empty zip; anything else is read as a tar, plain or compressed), never by a zip directory
    found at the end: a tar whose last member is a .docx or .zip is a tar. Each unpacked file
    keeps its member's time, so an unchanged archive gives an unchanged manifest.

    Args:
        path: the archive (local file).
        max_members: the most entries accepted.
        max_total_bytes: the most bytes all members may unpack to.
        max_ratio: the highest unpacked/packed size ratio (a decompression bomb is refused).
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
        self._max_members = max_members
        self._max_total = max_total_bytes
        self._max_ratio = max_ratio

    def describe(self) -> dict[str, Any]:
        return {"kind": "archive", "path": str(self._path)}

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        if not self._path.is_file():
            raise NotFoundError(f"No archive at {str(self._path)!r}.", path=str(self._path))
        with _unpack_folder() as target:
            self.unpack(target)
            folder = FolderSource(target)
            folder._label = str(self._path)
            folder._reuse = False
            yield from folder.batches(sink)

    def _refuse(self, member: str, why: str) -> InvalidInputError:
        return InvalidInputError(
            f"The archive {str(self._path)!r} was refused: member {member[:120]!r} {why}. "
            "Nothing was ingested.",
            path=str(self._path),
            member=member[:120],
        )

    def _damaged(self, member: str, exc: BaseException) -> InvalidInputError:
        return self._refuse(
            member,
            f"cannot be read ({type(exc).__name__}: {str(exc)[:200]}); the archive is damaged "
            "or truncated — get a fresh copy of it",
        )

    def _safe_name(self, name: str) -> PurePosixPath | None:
        clean = name.replace("\\", "/")
        if clean.startswith("/") or (
            len(clean) > 2 and clean[0].isalpha() and clean[1] == ":" and clean[2] == "/"
        ):
            raise self._refuse(name, "has an absolute path")
        parts = [p for p in clean.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self._refuse(name, "climbs out of the archive with '..'")
        if os.name == "nt" and any(":" in part for part in parts):
            raise self._refuse(name, "has a ':', which Windows reads as a drive or a data stream")
        return PurePosixPath(*parts) if parts else None

    def _format(self) -> str:
        """'zip' when the file starts as a zip does, else 'tar' (plain or compressed; a file
        that is no tar but holds a zip directory at its end, a self-extracting zip, is then
        read as a zip)."""
        with open(self._path, "rb") as handle:
            head = handle.read(4)
        return "zip" if head in (b"PK\x03\x04", b"PK\x05\x06") else "tar"

    def unpack(self, target: Path) -> int:
        """Check every member, then unpack into ``target``; return the bytes written."""
        if self._format() == "zip" and zipfile.is_zipfile(self._path):
            return self._unpack_zip(target)
        try:
            archive = _CheckedTarFile.open(self._path, "r:*")
        except KeelError:
            raise
        except _OversizedHeaderError as exc:
            raise self._refuse("*", exc.reason) from exc
        except _READ_ERRORS as exc:
            if zipfile.is_zipfile(self._path):  # not a tar: a zip with data before it (a
                return self._unpack_zip(target)  # self-extracting one)
            raise InvalidInputError(
                f"{str(self._path)!r} is not a zip or tar archive, or it is damaged "
                f"({type(exc).__name__}: {exc}). Nothing was ingested.",
                path=str(self._path),
            ) from exc
        with archive:
            return self._unpack_tar(archive, target)

    def _unpack_zip(self, target: Path) -> int:
        try:
            archive = zipfile.ZipFile(self._path)
        except UnicodeDecodeError as exc:  # a name flagged UTF-8 that is not
            raise self._refuse(
                bytes(exc.object).decode("utf-8", "backslashreplace"),
                "has a name that is not UTF-8 text; repack it with UTF-8 names",
            ) from exc
        except _READ_ERRORS as exc:
            raise self._damaged("*", exc) from exc
        with archive:
            plan = _Plan(self)
            members: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            for info in archive.infolist():
                plan.entry()
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise self._refuse(info.filename, "is a symbolic link")
                if (
                    info.create_system == 3  # Unix: the high bits are a st_mode
                    and stat.S_IFMT(mode)
                    and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
                ):
                    raise self._refuse(info.filename, "is a device, FIFO or other special file")
                rel = self._safe_name(info.filename)
                if rel is None or info.is_dir():
                    continue
                if info.flag_bits & 0x1:
                    raise self._refuse(
                        info.filename,
                        "is encrypted; Keel does not take passwords — unpack it yourself and "
                        "ingest the folder",
                    )
                if info.compress_type not in _ZIP_METHODS:
                    raise self._refuse(
                        info.filename,
                        f"uses compression method {info.compress_type}, which Keel cannot "
                        "read; repack it with deflate",
                    )
                plan.add(info.filename, rel, info.file_size)
                members.append((info, rel))
            written = 0
            for info, rel in members:
                try:
                    with archive.open(info) as source:
                        written += self._copy(source, target, rel, info.file_size, written)
                except KeelError:
                    raise
                except _READ_ERRORS as exc:
                    raise self._damaged(info.filename, exc) from exc
                self._stamp(target, rel, _zip_ns(info))
            return written

    def _unpack_tar(self, archive: _CheckedTarFile, target: Path) -> int:
        plan = _Plan(self)
        members: list[tuple[tarfile.TarInfo, PurePosixPath]] = []
        last = "*"
        try:
            # the checks run before the next header is read: a member over a limit is refused
            # before its bytes are decompressed to skip over them
            for member in archive:
                last = member.name
                plan.entry()
                plan.grow(member.name, archive.take_extended())
                rel = self._safe_name(member.name)
                if member.issym() or member.islnk():
                    raise self._refuse(member.name, "is a link")
                if member.isdir() or rel is None:
                    continue
                if not member.isfile():
                    raise self._refuse(member.name, "is a device, FIFO or other special file")
                plan.add(member.name, rel, member.size)
                members.append((member, rel))
        except KeelError:
            raise
        except _OversizedHeaderError as exc:
            raise self._refuse(f"after {last}", exc.reason) from exc
        except _DamagedHeaderError as exc:
            raise self._refuse(
                f"after {last}",
                f"is followed by a damaged header at byte {exc.offset} ({exc.reason}): the "
                "rest of the archive cannot be listed; get a fresh copy of it",
            ) from exc
        except _READ_ERRORS as exc:
            raise self._damaged(f"after {last}", exc) from exc
        written = 0
        for member, rel in members:
            try:
                source = archive.extractfile(member)
                if source is None:
                    raise self._refuse(member.name, "cannot be read")
                with source:
                    written += self._copy(source, target, rel, member.size, written)
            except KeelError:
                raise
            except _READ_ERRORS as exc:
                raise self._damaged(member.name, exc) from exc
            self._stamp(target, rel, _member_ns(member.mtime))
        return written

    def _stamp(self, target: Path, rel: PurePosixPath, mtime_ns: int) -> None:
        """Give an unpacked file its member's time (an unchanged archive, unchanged rows)."""
        os.utime(target / Path(*rel.parts), ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    def _copy(self, source: Any, target: Path, rel: PurePosixPath, declared: int, done: int) -> int:
        destination = (target / Path(*rel.parts)).resolve()
        if not destination.is_relative_to(target.resolve()):
            raise self._refuse(str(rel), "would be written outside the unpack folder")
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            out = open(destination, "xb")  # noqa: SIM115 - closed below
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise self._refuse(str(rel), "clashes with another member of the archive") from exc
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise self._refuse(str(rel), "has a name too long for this file system") from exc
            raise StorageError(
                f"Could not write the unpacked member {str(rel)!r} to {str(target)!r}: {exc}.",
                path=str(target),
            ) from exc
        written = 0
        with out:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > declared or done + written > self._max_total:
                    raise self._refuse(str(rel), "unpacks to more bytes than it declares")
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise StorageError(
                        f"Could not write the unpacked member {str(rel)!r} to "
                        f"{str(target)!r}: {exc}.",
                        path=str(target),
                    ) from exc
        if written != declared:
            raise self._refuse(str(rel), f"holds {written} bytes but declares {declared}")
        return written
