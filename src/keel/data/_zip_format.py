"""The zip format below zipfile: the central directory's end record and entries, counted
without keeping them, and a bzip2 or LZMA member's bytes read a bounded chunk at a time."""

from __future__ import annotations

import bz2
import lzma
import os
import struct
import zipfile
import zlib
from typing import BinaryIO

from keel.data._tar_headers import decompress, lzma_decompressor

__all__ = ["ZIP_CHUNK", "ZipMemberReader", "count_entries", "zip_directory"]

#: A zip local file header (signature, versions, flags, method, time, date, CRC, sizes, then
#: the lengths of the name and extra field after it); the compressed bytes Keel gives a bzip2 or
#: LZMA decompressor at once, and the smallest LZMA dictionary.
_ZIP_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
ZIP_CHUNK = 1 << 16
_LZMA_MIN_DICT = 1 << 12
#: A zip's end of central directory record (signature, disk numbers, entries on this disk and
#: in all, directory size and offset, comment length), found in its last bytes (a comment is
#: at most 64 KiB); the zip64 locator and zip64 end record before it; a central directory
#: header (signature, then the lengths of the name, extra field and comment after it at byte
#: 28).
_ZIP_END = struct.Struct("<4s4H2LH")
_ZIP_TAIL = (1 << 16) + _ZIP_END.size
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP_CENTRAL = struct.Struct("<4s24x3H12x")


class ZipMemberReader:
    """A bzip2 or LZMA zip member's bytes, decompressed at most ``size`` bytes a read, its CRC
    checked at the end. zipfile decompresses each compressed chunk it reads whole (a few
    kilobytes of bzip2 hold gigabytes) and gives LZMA the dictionary its header declares (up to
    4 GiB, allocated before a byte is decoded); this reader does neither: an LZMA member is read
    as the .lzma stream it nearly is, its dictionary no larger than the member, by a
    decompressor bounded by :data:`MAX_LZMA_MEMORY` as a tar.xz's is.

    Args:
        handle: the archive, opened for this member alone.
        info: the member, as the central directory lists it.
    """

    def __init__(self, handle: BinaryIO, info: zipfile.ZipInfo) -> None:
        self._handle = handle
        self._info = info
        self._left = info.compress_size
        self._crc = 0
        self._decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor | None = None
        self._header = b""  # the .lzma header given to the decompressor before the stream
        self._ended = False

    def read(self, size: int) -> bytes:
        """At most ``size`` bytes of the member; ``b""`` once it ends."""
        decompressor = self._decompressor or self._start()
        while not self._ended:
            data = b""
            if decompressor.needs_input:
                if self._left <= 0:
                    self._end(decompressor)
                    break
                data, self._header = self._header + self._take(min(self._left, ZIP_CHUNK)), b""
            out = decompress(decompressor, data, size, member=self._info.filename)
            self._crc = zlib.crc32(out, self._crc)
            if decompressor.eof or not (out or data):
                self._end(decompressor)
            if out:
                return out
        return b""

    def _start(self) -> bz2.BZ2Decompressor | lzma.LZMADecompressor:
        """Seek past the local header; the member's decompressor."""
        info = self._info
        self._handle.seek(info.header_offset)
        header = self._handle.read(_ZIP_LOCAL_HEADER.size)
        if len(header) != _ZIP_LOCAL_HEADER.size or not header.startswith(b"PK\x03\x04"):
            raise zipfile.BadZipFile(f"Bad local file header for {info.filename!r}")
        *_, name_length, extra_length = _ZIP_LOCAL_HEADER.unpack(header)
        self._handle.seek(name_length + extra_length, os.SEEK_CUR)
        if info.compress_type == zipfile.ZIP_BZIP2:
            self._decompressor = bz2.BZ2Decompressor()
        else:  # a version, the properties' length, the properties, then raw LZMA1
            _, length = struct.unpack("<2sH", self._take(4))
            self._header = _lzma_alone_header(self._take(length), info.file_size)
            self._decompressor = lzma_decompressor(lzma.FORMAT_ALONE)
        return self._decompressor

    def _take(self, count: int) -> bytes:
        """The next ``count`` compressed bytes of the member."""
        data = self._handle.read(count) if count <= self._left else b""
        self._left -= count
        if len(data) != count:
            raise EOFError(f"the compressed bytes of {self._info.filename!r} are cut short")
        return data

    def _end(self, decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor) -> None:
        """Check the member once its bytes are read (an LZMA stream need not be marked)."""
        self._ended = True
        if isinstance(decompressor, bz2.BZ2Decompressor) and not decompressor.eof:
            raise EOFError("the bzip2 stream ends before its end-of-stream marker")
        if self._crc != self._info.CRC:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {self._info.filename!r}")


def _lzma_alone_header(props: bytes, file_size: int) -> bytes:
    """The .lzma header of a zip member's LZMA properties (lc, lp and pb in one byte, then the
    dictionary size), then an unknown size (the stream may end with a marker or not). Its
    dictionary is no larger than the member: no match reaches back further than the bytes
    decoded, and a member larger than it declares fails as damaged data."""
    if len(props) != 5 or props[0] >= 9 * 5 * 5:
        raise zipfile.BadZipFile("Bad LZMA properties")
    dictionary = max(_LZMA_MIN_DICT, min(int.from_bytes(props[1:], "little"), file_size))
    return props[:1] + dictionary.to_bytes(4, "little") + b"\xff" * 8


def zip_directory(handle: BinaryIO) -> tuple[int, int, int]:
    """Where a zip's central directory starts, its size and the entries it declares, found as
    zipfile finds them: the end record at the very end, else the last one in the last 64 KiB,
    then the zip64 end record just before it when its locator is there; the directory ends
    where they begin (so a zip with data before it is read too)."""
    tail_at = max(0, handle.seek(0, os.SEEK_END) - _ZIP_TAIL)
    handle.seek(tail_at)
    tail = handle.read()
    at = len(tail) - _ZIP_END.size
    if at < 0 or not (tail.startswith(b"PK\x05\x06", at) and tail.endswith(b"\0\0")):
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _ZIP_END.size:
            raise zipfile.BadZipFile("File is not a zip file")
    *_, entries, size, _, _ = _ZIP_END.unpack_from(tail, at)
    end = tail_at + at
    if end >= _ZIP64_LOCATOR.size:
        handle.seek(end - _ZIP64_LOCATOR.size)
        signature, disk, _, disks = _ZIP64_LOCATOR.unpack(handle.read(_ZIP64_LOCATOR.size))
        if signature == b"PK\x06\x07":
            if disk or disks > 1:
                raise zipfile.BadZipFile("zipfiles that span multiple disks are not supported")
            zip64_at = end - _ZIP64_LOCATOR.size - _ZIP64_END.size
            if zip64_at < 0:
                raise zipfile.BadZipFile("File is not a zip file")
            handle.seek(zip64_at)
            signature, *_, entries64, size64, _ = _ZIP64_END.unpack(handle.read(_ZIP64_END.size))
            if signature == b"PK\x06\x06":
                entries, size, end = entries64, size64, zip64_at
    return end - size, size, entries


def count_entries(handle: BinaryIO, start: int, size: int, limit: int) -> int:
    """The entries of the central directory of ``size`` bytes at ``start`` (those zipfile
    would list, whatever the end record declares), counted one header at a time, up to
    ``limit`` + 1."""
    handle.seek(start)
    count = walked = 0
    while walked < size and count <= limit:
        header = handle.read(_ZIP_CENTRAL.size)
        if len(header) != _ZIP_CENTRAL.size or not header.startswith(b"PK\x01\x02"):
            raise zipfile.BadZipFile("Truncated central directory or bad magic number")
        _, *lengths = _ZIP_CENTRAL.unpack(header)
        handle.seek(sum(lengths), os.SEEK_CUR)
        walked += _ZIP_CENTRAL.size + sum(lengths)
        count += 1
    return count
