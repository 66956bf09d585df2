"""Tar headers checked before Python's tarfile acts on them: extended headers (GNU long names,
pax records) bounded before they are read whole, negative sizes and sparse members refused, and
headers that do not parse reported with their byte offset instead of ending the listing."""

from __future__ import annotations

import tarfile
import tarfile as _tarfile
from typing import Self, cast

__all__ = [
    "BAD_HEADERS",
    "CheckedTarFile",
    "CheckedTarInfo",
    "DamagedHeaderError",
    "RefusedHeaderError",
]


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

    def count_header(self, header: tarfile.TarInfo) -> None:
        """Count one header just parsed; refuse an extended one over the bounds."""
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
