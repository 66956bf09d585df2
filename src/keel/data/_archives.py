"""Archives (zip, tar, tar.gz, tar.bz2, tar.xz) checked and unpacked by Keel's own code.

Every member is checked as it is listed, before anything is written: no absolute paths, no
``..``, no links or devices, bounded member count, size and compression ratio, bounded folders,
tar headers bounded before tarfile reads them whole, a zip's central directory bounded before
zipfile reads it whole, and xz and LZMA decompressors bounded in memory. The members are then
unpacked into a private temporary folder (:func:`unpack_folder`) whose writes are bounded again
as they happen; ``_folders.py`` reads that folder as any other.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from keel.data._tar_headers import (
    MAX_LZMA_MEMORY,
    CheckedTarFile,
    DamagedHeaderError,
    LZMAMemoryError,
    RefusedHeaderError,
)
from keel.data._zip_format import ZIP_CHUNK, ZipMemberReader, count_entries, zip_directory
from keel.errors import InvalidInputError, KeelError, StorageError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

__all__ = ["MAX_FOLDER_DEPTH", "ArchiveUnpacker", "remove_stale_unpacks", "unpack_folder"]

#: The most folders a file may be nested in (Python 3.11's os.walk and pathlib's mkdir recurse
#: once a level: a deeper one, a few kilobytes of name, would end in a RecursionError).
MAX_FOLDER_DEPTH = 256

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
#: The directory bytes allowed for each entry allowed (a real entry takes 60 to 300: 46 bytes,
#: its name, a few extra fields), 1 MiB at least.
_ZIP_DIRECTORY_BYTES_PER_ENTRY = 1 << 10
_ZIP_DIRECTORY_MIN_BYTES = 1 << 20
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
def unpack_folder() -> Iterator[Path]:
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


class _Plan:
    """The members to unpack, checked one by one as they are listed: count, running size and
    ratio (a bomb is refused at the member that crosses a limit, before more is decompressed),
    names that can be written (UTF-8, not too long, not nested too deep), the folders they make
    (no more than the entries allowed), and no name given twice or used both as a file and as
    a folder.

    Names are kept as a tree, each file and folder as (its folder's number, its name): a member
    costs one step a folder of its path, and memory only for folders not seen before (keeping
    every parent path of every member would take gigabytes for members in deep, distinct
    folders)."""

    def __init__(self, source: ArchiveUnpacker) -> None:
        self._source = source
        self.count = 0
        self.total = 0
        self._packed = max(1, os.path.getsize(source._path))
        self._files: set[tuple[int, str]] = set()
        self._folders: dict[tuple[int, str], int] = {}  # numbered from 1; 0 is the top

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
        if len(rel.parts) - 1 > MAX_FOLDER_DEPTH:
            raise refuse(
                name,
                f"is nested {len(rel.parts) - 1} folders deep, over the limit of "
                f"{MAX_FOLDER_DEPTH}; repack it with fewer levels of folders",
            )
        clash = "is both a file and a folder in the archive; rename one of them"
        folder = 0
        for part in rel.parts[:-1]:
            if (folder, part) in self._files:
                raise refuse(name, clash)
            folder = self._folders.setdefault((folder, part), len(self._folders) + 1)
        if len(self._folders) > self._source._max_members:
            raise refuse(
                name,
                f"brings the folders the archive makes to more than "
                f"{self._source._max_members}, over the limit of entries; repack it with fewer "
                "folders (or raise max_members)",
            )
        leaf = (folder, rel.parts[-1])
        if leaf in self._files:
            raise refuse(name, "appears twice in the archive; repack it with each name once")
        if leaf in self._folders:
            raise refuse(name, clash)
        self._files.add(leaf)


class ArchiveUnpacker:
    """A zip or tar archive, checked member by member and unpacked into a folder.

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
        self, path: Path, *, max_members: int, max_total_bytes: int, max_ratio: float
    ) -> None:
        self._path = path
        self._max_members = max_members
        self._max_total = max_total_bytes
        self._max_ratio = max_ratio

    def _refuse(self, member: str, why: str) -> InvalidInputError:
        return InvalidInputError(
            f"The archive {str(self._path)!r} was refused: member {member[:120]!r} {why}. "
            "Nothing was ingested.",
            path=str(self._path),
            member=member[:120],
        )

    def _refuse_whole(self, why: str, **details: Any) -> InvalidInputError:
        """A refusal of the archive as a whole (not of one of its members)."""
        return InvalidInputError(
            f"The archive {str(self._path)!r} was refused: {why}. Nothing was ingested.",
            path=str(self._path),
            **details,
        )

    def _over_memory(self, exc: LZMAMemoryError) -> InvalidInputError:
        """The refusal of an xz or LZMA stream over :data:`MAX_LZMA_MEMORY`."""
        where = f"its member {exc.member[:120]!r} is" if exc.member else "it is"
        return self._refuse_whole(
            f"{where} compressed with an xz/LZMA dictionary that needs more than "
            f"{MAX_LZMA_MEMORY >> 20} MiB of memory to decompress, over Keel's limit. Recompress "
            "it with a smaller dictionary (xz -9 needs 65 MiB, the default xz -6 9 MiB; 7-Zip: "
            "-md=64m), or unpack it yourself and ingest the folder",
            member=exc.member[:120],
            limit_bytes=MAX_LZMA_MEMORY,
        )

    def _damaged(self, member: str, exc: BaseException) -> InvalidInputError:
        return self._refuse(
            member,
            f"cannot be read ({type(exc).__name__}: {str(exc)[:200]}); the archive is damaged "
            "or truncated — get a fresh copy of it",
        )

    def _safe_name(self, name: str) -> PurePosixPath | None:
        if "\0" in name:  # a pax path can hold one (a header's name field ends at it)
            raise self._refuse(name, "has a NUL byte in its name, which no file system takes")
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

    def _check_nameless(self, name: str, size: int) -> None:
        """Refuse a file member that names no file ('.', './') but holds bytes (they would be
        left out without a word); an empty one is skipped."""
        if size:
            raise self._refuse(
                name, f"holds {size} bytes but names no file; repack it with a name for them"
            )

    def _format(self) -> str:
        """'zip' when the file starts as a zip does, else 'tar' (plain or compressed; a file
        that is no tar but holds a zip directory at its end, a self-extracting zip, is then
        read as a zip)."""
        with open(self._path, "rb") as handle:
            head = handle.read(4)
        return "zip" if head in (b"PK\x03\x04", b"PK\x05\x06") else "tar"

    def unpack(self, target: Path) -> int:
        """Check every member, then unpack into ``target``; return the bytes written."""
        try:
            return self._unpack(target)
        except LZMAMemoryError as exc:  # from whichever xz or LZMA stream, wherever it is read
            raise self._over_memory(exc) from exc

    def _unpack(self, target: Path) -> int:
        """:meth:`unpack`, as a zip or as a tar by the first bytes."""
        if self._format() == "zip" and zipfile.is_zipfile(self._path):
            return self._unpack_zip(target)
        try:
            archive = CheckedTarFile.open(self._path, "r:*")
        except KeelError:
            raise
        except RefusedHeaderError as exc:  # the first member's
            raise self._refuse(exc.member or "*", exc.reason) from exc
        except DamagedHeaderError as exc:
            raise self._refuse(
                "*",
                f"has a damaged header at byte {exc.offset} ({exc.reason}); get a fresh copy of "
                "the archive",
            ) from exc
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

    def _checkzip_directory(self) -> None:
        """Refuse a zip whose central directory declares more entries than the limit, more
        bytes than the limit allows them, or holds more entries (counted without keeping them),
        before zipfile reads it whole and makes an object of every entry in it."""
        limit = self._max_members
        budget = max(_ZIP_DIRECTORY_MIN_BYTES, limit * _ZIP_DIRECTORY_BYTES_PER_ENTRY)
        fix = "split it into smaller archives (or raise max_members if it is genuine)"
        with open(self._path, "rb", buffering=ZIP_CHUNK) as handle:
            start, size, declared = zip_directory(handle)
            if declared > limit:
                raise self._refuse_whole(
                    f"its central directory declares {declared} entries, over the limit of "
                    f"{limit}; {fix}",
                    entries=declared,
                )
            if size > budget:
                raise self._refuse_whole(
                    f"its central directory declares {size} bytes, over the limit of {budget} "
                    f"for {limit} entries; {fix}",
                    directory_bytes=size,
                )
            if start < 0:
                raise zipfile.BadZipFile("Bad offset for central directory")
            if count_entries(handle, start, size, limit) > limit:
                raise self._refuse_whole(
                    f"its central directory holds more than {limit} entries, over the limit; {fix}"
                )

    def _unpack_zip(self, target: Path) -> int:
        try:
            self._checkzip_directory()
            archive = zipfile.ZipFile(self._path)
        except KeelError:
            raise
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
                if info.is_dir():
                    continue
                if rel is None:
                    self._check_nameless(info.filename, info.file_size)
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
                    with self._open_zip_member(archive, info) as source:
                        written += self._copy(source, target, rel, info.file_size, written)
                except KeelError:
                    raise
                except _READ_ERRORS as exc:
                    raise self._damaged(info.filename, exc) from exc
                self._stamp(target, rel, _zip_ns(info))
            return written

    @contextlib.contextmanager
    def _open_zip_member(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[Any]:
        """A zip member to read: zipfile's reader for a stored or deflated one (it decompresses
        a bounded chunk at a time), :class:`ZipMemberReader` for bzip2 and LZMA. zipfile checks
        the local header of each (its name against the directory's, its flags)."""
        with archive.open(info) as checked:
            if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                yield checked
                return
        with open(self._path, "rb") as handle:
            yield ZipMemberReader(handle, info)

    def _unpack_tar(self, archive: CheckedTarFile, target: Path) -> int:
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
                if member.isdir():
                    continue
                if not member.isfile():
                    raise self._refuse(member.name, "is a device, FIFO or other special file")
                if rel is None:
                    self._check_nameless(member.name, member.size)
                    continue
                plan.add(member.name, rel, member.size)
                members.append((member, rel))
        except KeelError:
            raise
        except RefusedHeaderError as exc:
            raise self._refuse(exc.member or f"after {last}", exc.reason) from exc
        except DamagedHeaderError as exc:
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
