"""Hostile archives built byte by byte: each is refused at once with an error naming the member
and what is wrong with it, and none makes Keel read or allocate much more than the archive
holds (negative sizes, sparse members, unparsable pax numbers, NUL bytes in names, bzip2 and
LZMA zip bombs behind a lying size, nesting deeper than Python can walk, nameless files), and
the tricks already refused stay refused."""

from __future__ import annotations

import bz2
import functools
import io
import lzma
import random
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from keel.data import _tar_headers
from keel.data._folders import ArchiveSource
from keel.errors import InvalidInputError, KeelError
from keel.workspace import Workspace
from tests.data._memory import PeakMemory

MIB = 1 << 20


pytestmark = pytest.mark.usefixtures("private_temp")  # archives unpack in a temp of their own


# --- building tar archives byte by byte -----------------------------------------------------


def _number(value: int) -> bytes:
    """A 12-byte tar number field: octal, or base-256 for a value octal cannot hold (a
    negative one among them)."""
    if 0 <= value < 8**11:
        return b"%011o\0" % value
    return (b"\xff" if value < 0 else b"\x80") + (value % 256**11).to_bytes(11, "big")


def _header(name: str, *, size: int, kind: bytes = tarfile.REGTYPE) -> bytearray:
    """One 512-byte ustar header of ``kind`` declaring ``size`` (any value, a negative one
    too); :func:`_sealed` gives it its checksum once the caller has changed it."""
    info = tarfile.TarInfo(name)
    info.type, info.mtime = kind, 1_600_000_000
    block = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    block[124:136] = _number(size)
    return block


def _sealed(block: bytearray) -> bytes:
    """``block`` with its checksum recomputed."""
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _file(name: str, data: bytes) -> bytes:
    """A regular member holding ``data``."""
    return _sealed(_header(name, size=len(data))) + data + bytes(-len(data) % 512)


def _pax(records: dict[str, str], *, kind: bytes = tarfile.XHDTYPE) -> bytes:
    """A pax header (extended, or global) holding ``records``."""
    payload = b"".join(
        _record(key.encode() + b"=" + value.encode("utf-8", "surrogateescape"))
        for key, value in records.items()
    )
    return _sealed(_header("././@PaxHeader", size=len(payload), kind=kind)) + _padded(payload)


def _record(body: bytes) -> bytes:
    """One pax record ``"<length> <body>\\n"``, its length counting itself."""
    length = len(body) + 2
    while len(b"%d" % length) + len(body) + 2 != length:
        length += 1
    return b"%d %s\n" % (length, body)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


_END = bytes(1024)


def _xz(data: bytes) -> bytes:
    """``data`` as xz, fast, with a small dictionary (bzip2 takes seconds on repeated blocks)."""
    return lzma.compress(data, preset=0)


def _write(path: Path, body: bytes, *, compress: Callable[[bytes], bytes] | None = None) -> Path:
    path.write_bytes(compress(body) if compress else body)
    return path


def _unpack(archive: Path, tmp_path: Path, **limits: int) -> Path:
    """Unpack ``archive`` into a fresh folder (raising what the unpack raises)."""
    target = tmp_path / "out"
    target.mkdir()
    ArchiveSource(archive, **limits).unpack(target)  # type: ignore[arg-type]
    return target


# --- negative sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize("first", [True, False], ids=["first-member", "after-a-member"])
def test_a_tar_member_declaring_a_negative_size_is_refused_at_once(
    tmp_path: Path, first: bool
) -> None:
    # tarfile would step back to the same header (-512) and list it again and again, until the
    # member-count limit refused "more than 100000 entries"
    before = b"" if first else _file("a.txt", b"a")
    body = before + _sealed(_header("neg.bin", size=-512)) + _file("b.txt", b"b") + _END
    archive = _write(tmp_path / "neg.tar", body)
    offset = len(before)
    with pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path)
    message = str(refused.value)
    assert f"declares a negative size (-512 bytes) in its header at byte {offset}" in message
    assert "member 'neg.bin'" in message
    assert refused.value.details["member"] == "neg.bin"
    assert not list((tmp_path / "out").iterdir())


def test_a_negative_size_in_a_pax_record_is_refused_at_once(tmp_path: Path) -> None:
    body = (
        _file("a.txt", b"a")
        + _pax({"size": "-1024"})
        + _sealed(_header("neg.bin", size=0))
        + _file("b.txt", b"b")
        + _END
    )
    archive = _write(tmp_path / "neg.tar", body)
    with pytest.raises(InvalidInputError, match=r"member 'neg\.bin' declares a negative size "):
        _unpack(archive, tmp_path)


# --- extended headers (moved with the reader: test_folder_review_fixes patches _folders) ------


@pytest.mark.parametrize(
    "kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE], ids=["gnu-long-name", "pax"]
)
def test_an_extended_header_bomb_is_refused_before_tarfile_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: bytes
) -> None:
    body = (
        _sealed(_header("././@LongLink", size=8 * MIB, kind=kind))
        + bytes(8 * MIB)
        + _file("x.txt", b"x")
        + _END
    )
    archive = _write(tmp_path / "bomb.tar.xz", body, compress=_xz)
    read: list[int] = []
    original = _tar_headers._PROC_MEMBER

    def proc_member(header: tarfile.TarInfo, archive: tarfile.TarFile) -> tarfile.TarInfo:
        read.append(header.size)
        return original(header, archive)  # type: ignore[no-any-return]

    monkeypatch.setattr(_tar_headers, "_PROC_MEMBER", proc_member)
    with pytest.raises(InvalidInputError, match=r"declaring 8388608 bytes.*decompression bomb"):
        _unpack(archive, tmp_path)
    assert read == []  # the reader _archives uses was never asked to read the header's bytes


# --- sparse members -----------------------------------------------------------------------------


def _old_gnu_sparse(extensions: int) -> bytes:
    """An old GNU sparse member (type 'S') followed by a chain of ``extensions`` extension
    blocks, each holding 21 map entries and flagged as followed by another."""
    header = _header("sparse.bin", size=512, kind=tarfile.GNUTYPE_SPARSE)
    header[386 : 386 + 24] = _number(0) + _number(512)  # the first map entry
    header[482] = 1  # an extension block follows
    header[483:495] = _number(512)  # the file's real size
    entries = b"".join(_number(i * 1024 + 512) + _number(1) for i in range(1, 22))
    block = entries + bytes(504 - len(entries)) + b"\x01" + bytes(7)
    return _sealed(header) + block * extensions + bytes(512) + _END


def test_an_old_gnu_sparse_member_is_refused_before_its_extension_chain_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 50,000 extension blocks (25 MB, a million map entries tarfile would keep as tuples)
    # pack to a few kilobytes of xz
    archive = _write(tmp_path / "sparse.tar.xz", _old_gnu_sparse(50_000), compress=_xz)
    assert archive.stat().st_size < 16 << 10
    read: list[bytes] = []
    original = _tar_headers._PROC_MEMBER

    def proc_member(header: tarfile.TarInfo, archive: tarfile.TarFile) -> tarfile.TarInfo:
        read.append(header.type)
        return original(header, archive)  # type: ignore[no-any-return]

    monkeypatch.setattr(_tar_headers, "_PROC_MEMBER", proc_member)
    with PeakMemory() as peak, pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path)
    message = str(refused.value)
    assert "member 'sparse.bin' is a sparse file" in message
    assert "re-create the archive without --sparse" in message
    assert read == []  # refused before tarfile was asked to read the chain
    assert peak.bytes < 8 * MIB


def _pax_sparse(records: dict[str, str], data: bytes) -> bytes:
    """A pax member holding GNU sparse ``records`` and ``data`` (for format 1.0: its map)."""
    return (
        _file("a.txt", b"a")
        + _pax(records)
        + _sealed(_header("GNUSparseFile.0/x.bin", size=len(data)))
        + _padded(data)
        + _END
    )


@pytest.mark.parametrize(
    "records",
    [
        {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "x.bin"},
        {"GNU.sparse.map": "0,1," * 1000, "GNU.sparse.size": "1", "GNU.sparse.name": "x.bin"},
        {"GNU.sparse.size": "not a number", "GNU.sparse.name": "x.bin"},
        {"GNU.sparse.realsize": "1", "GNU.sparse.name": "x.bin"},
    ],
    ids=["format-1.0", "format-0.1", "unparsable-size", "realsize-only"],
)
def test_a_pax_sparse_member_is_refused_before_its_map_is_read(
    tmp_path: Path, records: dict[str, str]
) -> None:
    # format 1.0 keeps its map in the member's data: a count of 10^9 entries, then 20 MB of
    # "1\n" (10 million numbers), packing to a few kilobytes; tarfile would read the map past
    # the member to the end of the archive, then fail with a bare ValueError
    data = b"1000000000\n" + b"1\n" * (10 * MIB)
    archive = _write(tmp_path / "sparse.tar.xz", _pax_sparse(records, data), compress=_xz)
    assert archive.stat().st_size < 16 << 10
    with PeakMemory() as peak, pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path)
    message = str(refused.value)
    assert "member 'x.bin' is a sparse file" in message
    assert "re-create the archive without --sparse" in message
    assert peak.bytes < 8 * MIB


def test_a_global_pax_header_making_every_member_sparse_is_refused(tmp_path: Path) -> None:
    body = _pax({"GNU.sparse.realsize": "1"}, kind=tarfile.XGLTYPE) + _file("a.txt", b"abc") + _END
    with pytest.raises(InvalidInputError, match=r"member 'a\.txt' is a sparse file"):
        _unpack(_write(tmp_path / "global.tar", body), tmp_path)


def test_a_member_gnu_tar_made_with_sparse_is_refused(tmp_path: Path) -> None:
    # what `tar --sparse --format=posix` writes for a file with a hole: format 1.0
    archive = _write(
        tmp_path / "real.tar",
        _pax_sparse(
            {
                "GNU.sparse.major": "1",
                "GNU.sparse.minor": "0",
                "GNU.sparse.name": "holes.bin",
                "GNU.sparse.realsize": "8192",
            },
            b"1\n4096\n4\n" + bytes(512 - 9) + b"data",
        ),
    )
    with pytest.raises(InvalidInputError, match=r"member 'holes\.bin' is a sparse file"):
        _unpack(archive, tmp_path)


# --- numbers and names tarfile does not guard -------------------------------------------------


@pytest.mark.parametrize("first", [True, False], ids=["first-member", "after-a-member"])
def test_a_pax_record_length_too_long_to_parse_is_a_damaged_header(
    tmp_path: Path, first: bool
) -> None:
    # int() refuses more than 4300 digits: tarfile let the bare ValueError through
    payload = b"9" * 5000 + b" comment=x\n"
    pax = _sealed(_header("././@PaxHeader", size=len(payload), kind=tarfile.XHDTYPE))
    before = b"" if first else _file("a.txt", b"a")
    body = before + pax + _padded(payload) + _file("b.txt", b"b") + _END
    with pytest.raises(InvalidInputError, match=f"damaged header at byte {len(before)}"):
        _unpack(_write(tmp_path / "digits.tar", body), tmp_path)


def test_a_nul_byte_in_a_pax_path_is_refused(tmp_path: Path) -> None:
    # a ustar name stops at its first NUL; a pax path does not, and the name reached open()
    body = _pax({"path": "a\0b.txt"}) + _sealed(_header("a.txt", size=1)) + _padded(b"x") + _END
    with pytest.raises(
        InvalidInputError, match=r"member 'a\\x00b\.txt' has a NUL byte in its name"
    ):
        _unpack(_write(tmp_path / "nul.tar", body), tmp_path)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_file_member_without_a_name_is_refused_not_dropped(tmp_path: Path, kind: str) -> None:
    # "./" (tar, a regular file's type) and "." (zip) name no file: its bytes were left out
    if kind == "tar":
        body = _file("a.txt", b"a") + _file("./", b"lost") + _END
        archive = _write(tmp_path / "noname.tar", body)
    else:
        archive = tmp_path / "noname.zip"
        with zipfile.ZipFile(archive, "w") as out:
            out.writestr("a.txt", b"a")
            out.writestr(".", b"lost")
    with pytest.raises(InvalidInputError, match="holds 4 bytes but names no file"):
        _unpack(archive, tmp_path)


def test_empty_folder_entries_named_dot_still_unpack(tmp_path: Path) -> None:
    # what `tar -cf x.tar -C folder .` writes first: a folder "./" (and a V7 one, typed '\0')
    body = (
        _sealed(_header("./", size=0, kind=tarfile.DIRTYPE))
        + _sealed(_header("./", size=0, kind=tarfile.AREGTYPE))
        + _file("./a.txt", b"a")
        + _file("./", b"")  # a nameless empty file loses nothing
        + _END
    )
    target = _unpack(_write(tmp_path / "dot.tar", body), tmp_path)
    assert [p.name for p in target.iterdir()] == ["a.txt"]


# --- nesting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_members_nested_deeper_than_the_limit_are_refused(tmp_path: Path, kind: str) -> None:
    # 1,500 folders in 3 kB of name: pathlib's mkdir recursed once a level (a RecursionError,
    # reported as a damaged archive), and os.walk would again when the folder was read
    deep = "d/" * 1500 + "x.txt"
    ok = "d/" * 255 + "ok.txt"
    if kind == "tar":
        archive = tmp_path / "deep.tar"
        with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as out:
            for name in (ok, deep):
                info = tarfile.TarInfo(name)
                info.size = 1
                out.addfile(info, io.BytesIO(b"x"))
    else:
        archive = tmp_path / "deep.zip"
        with zipfile.ZipFile(archive, "w") as out:
            out.writestr(ok, b"x")
            out.writestr(deep, b"x")
    with pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path)
    message = str(refused.value)
    assert "is nested 1500 folders deep, over the limit of 256" in message
    assert refused.value.details["member"].startswith("d/d/d/")


def test_the_deepest_nesting_allowed_unpacks_and_ingests(
    local_ws: Workspace, tmp_path: Path
) -> None:
    name = "d/" * 256 + "x.txt"
    archive = tmp_path / "deep.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr(name, b"x")
    local_ws.datasets.ingest("deep", archive, kind="archive")
    assert local_ws.datasets.read("deep")["path"].to_list() == [name]


def test_a_folder_nested_deeper_than_the_limit_is_refused(
    local_ws: Workspace, tmp_path: Path
) -> None:
    # os.walk (Python 3.11) recursed once a level: a RecursionError, no Keel error
    folder = tmp_path / "deep"
    level = folder
    levels = []
    for _ in range(1200):  # one level at a time: os.makedirs recurses too
        level = level / "d"
        levels.append(level)
        level.mkdir(parents=True) if len(levels) == 1 else level.mkdir()
    (level / "x.txt").write_bytes(b"x")
    try:
        with pytest.raises(InvalidInputError, match="nested more than 256 folders deep") as got:
            local_ws.datasets.ingest("deep", folder, kind="folder")
        assert got.value.details["path"] == "/".join(["d"] * 257)
    finally:  # deepest first: shutil.rmtree recurses too, and pytest removes tmp_path with it
        (level / "x.txt").unlink()
        for made in reversed(levels):
            made.rmdir()


# --- zip members decompressed whole -------------------------------------------------------------


def _zip_with(path: Path, name: str, method: int, payload: bytes, size: int, crc: int) -> Path:
    """A zip of one member whose compressed bytes are ``payload`` (written as they are),
    declaring ``method``, ``size`` and ``crc`` in both its local and its central header."""
    with zipfile.ZipFile(path, "w") as out:
        out.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), payload)
    raw = bytearray(path.read_bytes())
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    for at, method_at, crc_at, size_at in ((local, 8, 14, 22), (central, 10, 16, 24)):
        struct.pack_into("<H", raw, at + method_at, method)
        struct.pack_into("<L", raw, at + crc_at, crc)
        struct.pack_into("<L", raw, at + size_at, size)
    path.write_bytes(bytes(raw))
    return path


_LZMA1 = {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 20, "lc": 3, "lp": 0, "pb": 2}


def _zip_lzma(data: bytes, *, dict_size: int = 1 << 20) -> bytes:
    """``data`` as a zip LZMA member's bytes: version, properties, then a raw LZMA1 stream."""
    stream = lzma.compress(
        data, format=lzma.FORMAT_RAW, filters=[{**_LZMA1, "mode": lzma.MODE_FAST}]
    )
    props = bytes([(2 * 5 + 0) * 9 + 3]) + dict_size.to_bytes(4, "little")  # pb=2 lp=0 lc=3
    return b"\x09\x04" + struct.pack("<H", len(props)) + props + stream


@functools.cache
def _bomb(method: int) -> bytes:
    """64 MiB of zeros, compressed by ``method`` (built once: it takes a second)."""
    zeros = bytes(64 * MIB)
    return bz2.compress(zeros, 9) if method == zipfile.ZIP_BZIP2 else _zip_lzma(zeros)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_a_bzip2_or_lzma_zip_bomb_behind_a_small_size_is_never_decompressed_whole(
    tmp_path: Path, method: int
) -> None:
    # the member declares one byte, so the size and ratio checks pass; zipfile decompressed
    # each compressed chunk it read whole (64 MiB here, gigabytes from a larger chunk), kept
    # the first byte, and the CRC of that byte matched
    archive = _zip_with(tmp_path / "bomb.zip", "a.bin", method, _bomb(method), 1, zlib.crc32(b"\0"))
    assert archive.stat().st_size < 64 << 10
    with PeakMemory() as peak, pytest.raises(InvalidInputError, match="unpacks to more bytes than"):
        _unpack(archive, tmp_path)
    assert peak.bytes < 8 * MIB


def test_an_lzma_zip_member_declaring_a_huge_dictionary_gets_one_its_size(tmp_path: Path) -> None:
    # liblzma allocates the dictionary the header declares (up to 4 GiB) before it decodes a
    # byte; a member never refers back further than its own size
    data = b"hello lzma\n" * 100
    archive = _zip_with(
        tmp_path / "dict.zip",
        "a.txt",
        zipfile.ZIP_LZMA,
        _zip_lzma(data, dict_size=1 << 30),
        len(data),
        zlib.crc32(data),
    )
    with PeakMemory() as peak:
        target = _unpack(archive, tmp_path)
    assert (target / "a.txt").read_bytes() == data
    assert peak.bytes < 8 * MIB


@pytest.mark.parametrize(
    "method",
    [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
    ids=["stored", "deflate", "bzip2", "lzma"],
)
def test_zip_members_of_every_method_unpack_byte_for_byte(tmp_path: Path, method: int) -> None:
    members = {
        "empty.txt": b"",
        "small.txt": b"hello\n",
        # many compressed chunks and many read chunks, within the expansion limit
        "big.bin": random.Random(7).randbytes(3 * MIB) + bytes(MIB) + b"end",
    }
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", compression=method) as out:
        for name, data in members.items():
            out.writestr(name, data)
    target = _unpack(archive, tmp_path)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == members


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("crc", "Bad CRC-32"),
        ("short", "holds 6 bytes but declares 7"),
        ("truncated", "damaged or truncated"),
    ],
)
def test_damaged_bzip2_and_lzma_zip_members_are_refused(
    tmp_path: Path, method: int, fault: str, reason: str
) -> None:
    data = b"hello\n"
    payload = bz2.compress(data) if method == zipfile.ZIP_BZIP2 else _zip_lzma(data)
    crc, size = zlib.crc32(data), len(data)
    if fault == "crc":
        crc ^= 1
    elif fault == "short":
        size += 1
    else:
        payload = payload[: len(payload) // 2]
    archive = _zip_with(tmp_path / "bad.zip", "a.txt", method, payload, size, crc)
    with pytest.raises(InvalidInputError, match=reason):
        _unpack(archive, tmp_path)


# --- tricks already refused, kept refused ---------------------------------------------------


def test_a_zip_whose_central_and_local_names_disagree_is_refused(tmp_path: Path) -> None:
    # a checker reading central names and a tool writing local ones would see other files
    archive = tmp_path / "two-names.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("safe.txt", b"x")
    raw = bytearray(archive.read_bytes())
    local = raw.find(b"PK\x03\x04")
    raw[local + 30 : local + 38] = b"evil.txt"
    archive.write_bytes(bytes(raw))
    with pytest.raises(InvalidInputError, match="damaged or truncated"):
        _unpack(archive, tmp_path)


def test_a_zip64_size_lie_is_bounded(tmp_path: Path) -> None:
    # one stored byte whose central header sends its size to a zip64 extra declaring 2^62
    # bytes: refused by the size limit before a byte is read
    name, crc = b"big.bin", zlib.crc32(b"x")
    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 45, 0, 0, 0, 0, 0x21, crc, 1, 1, 7, 0)
    extra = struct.pack("<2HQ", 1, 8, 1 << 62)
    central = struct.pack(
        "<4s4B4HL2L5H2L",
        b"PK\x01\x02",
        45,
        3,
        45,
        0,
        0,
        0,
        0,
        0x21,
        crc,
        1,
        0xFFFFFFFF,
        7,
        12,
        0,
        0,
        0,
        0,
        0,
    )
    data = local + name + b"x"
    directory = central + name + extra
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), len(data), 0)
    archive = tmp_path / "zip64.zip"
    archive.write_bytes(data + directory + end)
    with zipfile.ZipFile(archive) as check:
        assert check.getinfo("big.bin").file_size == 1 << 62
    with pytest.raises(InvalidInputError, match="brings the unpacked size to 4611686018427387904"):
        _unpack(archive, tmp_path)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: _pax({"path": "../../evil.txt"}), id="pax-path"),
        pytest.param(lambda: _gnu_long_name("x" * 120 + "/../../../evil.txt"), id="gnu-long-name"),
    ],
)
def test_tar_names_from_extended_headers_are_checked_as_any(
    tmp_path: Path, body: Callable[[], bytes]
) -> None:
    archive = _write(
        tmp_path / "climb.tar", body() + _sealed(_header("ok.txt", size=1)) + _padded(b"x") + _END
    )
    with pytest.raises(InvalidInputError, match="climbs out of the archive"):
        _unpack(archive, tmp_path)
    assert not (tmp_path / "evil.txt").exists()


def _gnu_long_name(name: str) -> bytes:
    data = name.encode() + b"\0"
    block = _header("././@LongLink", size=len(data), kind=tarfile.GNUTYPE_LONGNAME)
    return _sealed(block) + _padded(data)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("..\\..\\evil.txt", "climbs out"), ("C:\\evil.txt", "absolute path")],
)
def test_zip_names_with_backslashes_are_checked_as_slashes(
    tmp_path: Path, name: str, reason: str
) -> None:
    archive = tmp_path / "slashes.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr(name, b"x")
    with pytest.raises(InvalidInputError, match=reason):
        _unpack(archive, tmp_path)


def test_a_hard_link_to_a_member_inside_is_refused_too(tmp_path: Path) -> None:
    # even a link to a file in the archive: extracting it would read another member's bytes
    link = _header("b.txt", size=0, kind=tarfile.LNKTYPE)
    link[157:162] = b"a.txt"
    body = _file("a.txt", b"a") + _sealed(link) + _END
    with pytest.raises(InvalidInputError, match=r"member 'b\.txt' is a link"):
        _unpack(_write(tmp_path / "link.tar", body), tmp_path)


def test_every_refusal_is_a_keel_error(tmp_path: Path) -> None:
    # the unparsable numbers above raised bare ValueErrors; this one gathers them
    bodies = [
        _file("a.txt", b"a") + _pax({"GNU.sparse.size": "x"}) + _file("b", b"b") + _END,
        _pax({"path": "\0"}) + _file("a.txt", b"a") + _END,
    ]
    for number, body in enumerate(bodies):
        with pytest.raises(KeelError):
            ArchiveSource(_write(tmp_path / f"{number}.tar", body)).unpack(tmp_path / f"o{number}")


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [
        (".tar.bz2", "w:bz2"),
        (".tbz2", "w:bz2"),
        (".tar.xz", "w:xz"),
        (".txz", "w:xz"),
        (".tgz", "w:gz"),
    ],
)
def test_compressed_tars_are_known_by_their_names(
    local_ws: Workspace, tmp_path: Path, suffix: str, mode: str
) -> None:
    # before: .tar.bz2 and .tar.xz needed kind="archive" ("Cannot tell what kind of source")
    archive = tmp_path / f"docs{suffix}"
    with tarfile.open(archive, mode) as tar:
        for name, text in (("a.txt", b"alpha\n"), ("sub/b.txt", b"beta beta\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    version = local_ws.datasets.ingest("docs", str(archive))
    rows = local_ws.datasets.read("docs").sort("path")
    assert version.row_count == 2
    assert rows["path"].to_list() == ["a.txt", "sub/b.txt"]
    assert rows["size"].to_list() == [6, 10]
