"""Tar headers checked before Python's tarfile acts on them: extended headers (GNU long names,
pax records) bounded before they are read whole, global pax records bounded before every member
is patched with them, negative sizes and sparse members refused, and headers that do not parse
reported with their byte offset instead of ending the listing.

Also the memory bound of every xz and LZMA decompressor of an archive (:data:`MAX_LZMA_MEMORY`,
liblzma's own ``memlimit``): a tar.xz is read through :class:`_XZReader` here, and zip LZMA
members through ``_archives.py``'s reader, both with :func:`lzma_decompressor`.
"""

from __future__ import annotations

import io
import lzma
import os
import tarfile
import tarfile as _tarfile
from typing import IO, Any, Self, cast

__all__ = [
    "BAD_HEADERS",
    "MAX_LZMA_MEMORY",
    "CheckedTarFile",
    "CheckedTarInfo",
    "DamagedHeaderError",
    "LZMAMemoryError",
    "RefusedHeaderError",
    "decompress",
    "lzma_decompressor",
]

#: The most memory an xz or LZMA decompressor may take (liblzma's ``memlimit``). xz's presets
#: need at most 65 MiB (``xz -9``; the default ``-6``, 9 MiB), but a header may declare a
#: dictionary of up to 1.5 GiB (xz) or 4 GiB (LZMA), which liblzma allocates before it decodes a
#: byte.
MAX_LZMA_MEMORY = 256 << 20
#: What Python's lzma says when liblzma refuses a stream over its ``memlimit``.
_MEMLIMIT_MESSAGE = "Memory usage limit exceeded"
#: The compressed bytes an xz reader takes at once, and the most it decompresses at once to
#: skip ahead (tarfile seeks past members it lists).
_XZ_CHUNK = 1 << 16
_XZ_SKIP = 1 << 20


class LZMAMemoryError(Exception):
    """An xz or LZMA stream that needs more than :data:`MAX_LZMA_MEMORY` to decompress; the
    unpacker turns it into a refusal naming the archive (and ``member``, a zip member's name,
    when the stream is one)."""

    def __init__(self, member: str = "") -> None:
        super().__init__(f"an xz/LZMA stream needs more than {MAX_LZMA_MEMORY} bytes of memory")
        self.member = member


def lzma_decompressor(format: int = lzma.FORMAT_AUTO) -> lzma.LZMADecompressor:
    """A decompressor of xz or LZMA (``FORMAT_AUTO``, as tarfile reads them, or
    ``FORMAT_ALONE``) that refuses a stream needing more than :data:`MAX_LZMA_MEMORY`."""
    return lzma.LZMADecompressor(format, memlimit=MAX_LZMA_MEMORY)


def decompress(decompressor: Any, data: bytes, size: int, *, member: str = "") -> bytes:
    """``decompressor.decompress(data, size)``, liblzma's refusal of a stream over
    :data:`MAX_LZMA_MEMORY` raised as :class:`LZMAMemoryError` (not an ``LZMAError``: nothing
    may take it for a damaged stream or for trailing garbage)."""
    try:
        return cast(bytes, decompressor.decompress(data, size))
    except lzma.LZMAError as exc:
        if str(exc) == _MEMLIMIT_MESSAGE:
            raise LZMAMemoryError(member) from exc
        raise


class _XZReader(io.RawIOBase):
    """An xz (or legacy .lzma) file decompressed under :data:`MAX_LZMA_MEMORY`, seekable as
    tarfile needs it: a seek ahead decompresses and drops the bytes, a seek back starts over
    from the first byte (as ``lzma.LZMAFile``, which takes no memory limit, does). Streams may
    follow one another; garbage after the first is ignored, as ``lzma.LZMAFile`` does, but a
    stream refused for its memory is refused, never taken for garbage.

    Args:
        handle: the compressed file, read from where it stands.
        owned: whether closing this reader closes ``handle``.
    """

    def __init__(self, handle: IO[bytes], *, owned: bool) -> None:
        super().__init__()
        self._handle = handle
        self._owned = owned
        self._start = handle.tell()
        self._rewind()

    def _rewind(self) -> None:
        self._handle.seek(self._start)
        self._decompressor = lzma_decompressor()
        self._position = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed and self._owned:
            self._handle.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as view, view.cast("B") as target:
            data = self.read(len(target))
            target[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes (all that is left when negative); ``b""`` at the end."""
        if size < 0:
            return self.readall()
        while size and not self._ended:
            if self._decompressor.eof:  # another stream may follow
                data = self._decompressor.unused_data or self._handle.read(_XZ_CHUNK)
                self._decompressor = lzma_decompressor()
                out = b""
                try:
                    out = decompress(self._decompressor, data, size) if data else b""
                except lzma.LZMAError:  # garbage after a stream: ignored, as LZMAFile does
                    data = b""
                self._ended = not data
            else:
                data = b""
                if self._decompressor.needs_input:
                    data = self._handle.read(_XZ_CHUNK)
                    if not data:
                        raise EOFError(
                            "Compressed file ended before the end-of-stream marker was reached"
                        )
                out = decompress(self._decompressor, data, size)
            if out:
                self._position += len(out)
                return out
        return b""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("an xz archive is read from its start only")
        if offset < self._position:
            self._rewind()
        while self._position < offset and self.read(min(_XZ_SKIP, offset - self._position)):
            pass
        return self._position


class DamagedHeaderError(Exception):
    """A tar header that does not parse: one after the first (tarfile would end the listing
    there without a word, and the members after it would be lost), or one whose checksum holds
    but whose records do not (tarfile would let a bare ValueError through)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"damaged tar header at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


#: tarfile's errors for a header that does not parse or is cut short (not in its stubs).
BAD_HEADERS: tuple[type[Exception], ...] = (
    vars(_tarfile)["InvalidHeaderError"],
    vars(_tarfile)["TruncatedHeaderError"],
)


#: tarfile's reading of the rest of a header of any type, and its applying of pax records to
#: a member (not in its stubs).
_PROC_MEMBER = vars(_tarfile.TarInfo)["_proc_member"]
_APPLY_PAX_INFO = vars(_tarfile.TarInfo)["_apply_pax_info"]
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
#: The most global pax records an archive may hold: tarfile applies every one of them to every
#: member after them (and copies them into each member's pax records), so a megabyte of them
#: before a hundred thousand members is billions of steps. Real archives hold a few (``git
#: archive`` writes one, its commit).
_MAX_GLOBAL_RECORDS = 64


class RefusedHeaderError(Exception):
    """A tar header refused before tarfile reads what it declares: an extended one (long name,
    pax records) over the bounds, a negative size, a sparse member. ``member`` is the name the
    header gives, when it is the member's own."""

    def __init__(self, offset: int, reason: str, *, member: str = "") -> None:
        super().__init__(f"refused tar header at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason
        self.member = member


def _negative_size(header: tarfile.TarInfo) -> RefusedHeaderError:
    """The refusal of a header declaring a negative size (tarfile would step back by it and
    read the same headers again and again)."""
    return RefusedHeaderError(
        header.offset,
        f"declares a negative size ({header.size} bytes) in its header at byte "
        f"{header.offset}; the archive is damaged or forged — get a fresh copy of it",
        member=header.name,
    )


def _sparse(header: tarfile.TarInfo, records: dict[str, str]) -> RefusedHeaderError:
    """The refusal of a sparse member (old GNU type 'S', or pax ``GNU.sparse.*`` records):
    tarfile reads its map whole (millions of entries from a few kilobytes) before any check."""
    return RefusedHeaderError(
        header.offset,
        "is a sparse file (GNU tar --sparse), which Keel does not unpack; re-create the "
        "archive without --sparse",
        member=records.get("GNU.sparse.name") or header.name,
    )


class CheckedTarInfo(tarfile.TarInfo):
    """A tar header reader that tells a damaged header from the end of the archive, and that
    refuses what tarfile would read whole into memory before any check sees a member:
    extended headers over the bounds, negative sizes, sparse maps."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> Self:
        archive = tarfile
        try:
            return super().fromtarfile(archive)
        except BAD_HEADERS as exc:
            if archive.offset == 0:
                raise  # not a tar at all: tarfile.open says so (or tries another format)
            raise DamagedHeaderError(archive.offset, str(exc)) from exc
        except ValueError as exc:  # e.g. a pax record's length of more digits than int()
            # takes, in a header whose checksum holds (so a tar, even at byte 0)
            raise DamagedHeaderError(archive.offset, str(exc)[:200]) from exc

    def _proc_member(self, tarfile: tarfile.TarFile) -> Self:
        # called by fromtarfile once the 512-byte block is parsed, before the bytes an
        # extended header declares are read (tarfile reads them whole, then calls fromtarfile
        # again for the header after it)
        archive = tarfile
        if self.size < 0:
            raise _negative_size(self)
        if self.type == _tarfile.GNUTYPE_SPARSE:  # before its chain of map blocks is read
            raise _sparse(self, {})
        if isinstance(archive, CheckedTarFile):
            archive.count_header(self)
        member = cast(Self, _PROC_MEMBER(self, archive))
        if member.size < 0:  # from a pax 'size' record
            raise _negative_size(member)
        return member

    # tarfile reads a pax sparse map (format 1.0: from the member's data, without bound) in
    # these, before it applies the records to the member
    def _proc_gnusparse_00(
        self, next: tarfile.TarInfo, pax_headers: dict[str, str], buf: bytes
    ) -> None:
        raise _sparse(next, pax_headers)

    def _proc_gnusparse_01(self, next: tarfile.TarInfo, pax_headers: dict[str, str]) -> None:
        raise _sparse(next, pax_headers)

    def _proc_gnusparse_10(
        self, next: tarfile.TarInfo, pax_headers: dict[str, str], tarfile: tarfile.TarFile
    ) -> None:
        raise _sparse(next, pax_headers)

    def _apply_pax_info(self, pax_headers: dict[str, str], encoding: str, errors: str) -> None:
        # any GNU.sparse record (a global one too) makes a sparse member, and tarfile parses
        # GNU.sparse.size without a guard
        if any(keyword.startswith("GNU.sparse.") for keyword in pax_headers):
            raise _sparse(self, pax_headers)
        _APPLY_PAX_INFO(self, pax_headers, encoding, errors)


class CheckedTarFile(tarfile.TarFile):
    """A tar reader whose headers are :class:`CheckedTarInfo`, keeping the bytes of the
    extended headers read, for the plan to count toward the unpacked size and ratio."""

    tarinfo = CheckedTarInfo
    #: declared bytes of extended headers not yet counted by the plan; the current run of
    #: extended headers (bytes, headers) before the member they describe
    extended_bytes = 0
    _run_bytes = 0
    _run_headers = 0

    @classmethod
    def xzopen(  # type: ignore[override]
        cls,
        name: str | os.PathLike[str] | None,
        mode: str = "r",
        fileobj: IO[bytes] | None = None,
        preset: int | None = None,
        **kwargs: Any,
    ) -> Self:
        """Open an xz (or .lzma) tar for reading through :class:`_XZReader`, under
        :data:`MAX_LZMA_MEMORY` (tarfile's own uses ``lzma.LZMAFile``, which takes no memory
        limit). A stream over it raises :class:`LZMAMemoryError`, not tarfile's ReadError
        (which ``open("r:*")`` would pass over to try the file as a plain tar)."""
        if mode != "r" or (name is None and fileobj is None):
            raise ValueError("Keel opens xz archives to read them, by name or file")
        owned = fileobj is None
        handle = open(cast(str, name), "rb") if owned else cast(IO[bytes], fileobj)  # noqa: SIM115
        stream = io.BufferedReader(_XZReader(handle, owned=owned), _XZ_CHUNK)
        try:
            archive = cls.taropen(name, "r", stream, **kwargs)
        except (lzma.LZMAError, EOFError) as exc:
            stream.close()
            raise tarfile.ReadError("not an lzma file") from exc
        except BaseException:
            stream.close()
            raise
        vars(archive)["_extfileobj"] = False  # closing the archive closes the stream
        return archive

    def count_header(self, header: tarfile.TarInfo) -> None:
        """Count one header just parsed; refuse an extended one over the bounds, and global
        pax records over theirs before they are applied to the member."""
        if len(self.pax_headers) > _MAX_GLOBAL_RECORDS:
            raise RefusedHeaderError(
                header.offset,
                f"has global pax headers (type 'g') holding {len(self.pax_headers)} records, "
                f"over the limit of {_MAX_GLOBAL_RECORDS} (tarfile applies each to every "
                "member after it); repack the archive without them, or unpack it yourself and "
                "ingest the folder",
            )
        if header.type not in _EXTENDED_TYPES:
            self._run_bytes = self._run_headers = 0
            return
        kind = header.type.decode("ascii", "backslashreplace")
        self._run_headers += 1
        self._run_bytes += _tarfile.BLOCKSIZE + header.size
        self.extended_bytes += header.size
        if self._run_bytes > _MAX_EXTENDED_BYTES:
            raise RefusedHeaderError(
                header.offset,
                f"has an extended header (type {kind!r}: long name or pax records) declaring "
                f"{header.size} bytes, over the limit of {_MAX_EXTENDED_BYTES} for the "
                "headers of one member (a decompression bomb)",
            )
        if self._run_headers > _MAX_EXTENDED_RUN:
            raise RefusedHeaderError(
                header.offset,
                f"has more than {_MAX_EXTENDED_RUN} extended headers (long names or pax "
                "records) in a row; repack the archive",
            )

    def take_extended(self) -> int:
        """The declared bytes of extended headers read since the last call."""
        taken, self.extended_bytes = self.extended_bytes, 0
        return taken
