"""Archives whose headers claim more than Keel will spend on them are refused from those claims,
before the memory or the work is spent: xz and LZMA dictionaries over MAX_LZMA_MEMORY (a tar.xz,
a tar.lzma, an xz stream after the first, a zip LZMA member), zip central directories declaring
or holding more entries or bytes than the limits (refused before zipfile reads them), global pax
records applied to every member, and members in more distinct folders than the limit. Archives
within the bounds still unpack byte for byte. Every archive is built here, byte by byte."""

from __future__ import annotations

import io
import lzma
import random
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from keel.data._folders import ArchiveSource
from keel.data._tar_headers import MAX_LZMA_MEMORY
from keel.errors import InvalidInputError
from tests.data._memory import PeakMemory

MIB = 1 << 20

pytestmark = pytest.mark.usefixtures("private_temp")  # archives unpack in a temp of their own


def _unpack(archive: Path, tmp_path: Path, **limits: float) -> dict[str, bytes]:
    """Unpack ``archive`` into a fresh folder; its files by path (raising what unpack raises)."""
    target = tmp_path / "out"
    target.mkdir()
    ArchiveSource(archive, **limits).unpack(target)  # type: ignore[arg-type]
    return {
        p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()
    }


def _tar_bytes(members: dict[str, bytes], **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", **kwargs) as out:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_600_000_000
            out.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip_file(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as out:
        for name, data in members.items():
            out.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return path


# --- xz and LZMA dictionaries -----------------------------------------------------------------

#: LZMA2's one-byte dictionary codes: 16 is 1 MiB (what the stream is compressed with), 28 is
#: 64 MiB (xz -9), 37 is 1.5 GiB (the most xz writes).
_XZ_1_MIB, _XZ_64_MIB, _XZ_1_5_GIB = 16, 28, 37


def _xz(data: bytes, dictionary: int = _XZ_1_MIB) -> bytes:
    """``data`` as one xz stream compressed with a 1 MiB dictionary whose block header declares
    the dictionary ``dictionary`` codes (its CRC made good): a decoder allocates that one."""
    raw = bytearray(
        lzma.compress(
            data,
            format=lzma.FORMAT_XZ,
            filters=[{"id": lzma.FILTER_LZMA2, "preset": 0, "dict_size": MIB}],
        )
    )
    start = 12  # after the stream header
    end = start + (raw[start] + 1) * 4  # the block header, its CRC32 in the last 4 bytes
    at = start + 2
    for present in (0x40, 0x80):  # the compressed and uncompressed sizes, when given
        if raw[start + 1] & present:
            while raw[at] & 0x80:
                at += 1
            at += 1
    assert raw[at : at + 3] == bytes([0x21, 0x01, _XZ_1_MIB])  # LZMA2, 1 byte of properties
    raw[at + 2] = dictionary
    raw[end - 4 : end] = zlib.crc32(raw[start : end - 4]).to_bytes(4, "little")
    return bytes(raw)


def _lzma_alone(data: bytes, dictionary: int) -> bytes:
    """``data`` as a legacy .lzma stream (1 MiB dictionary) whose header declares
    ``dictionary`` bytes."""
    filters = [{"id": lzma.FILTER_LZMA1, "preset": 0, "dict_size": MIB}]
    raw = bytearray(lzma.compress(data, format=lzma.FORMAT_ALONE, filters=filters))
    raw[1:5] = dictionary.to_bytes(4, "little")
    return bytes(raw)


def _over_memory(archive: Path, member: str = "") -> str:
    where = f"its member '{member}' is" if member else "it is"
    return (
        f"The archive '{archive}' was refused: {where} compressed with an xz/LZMA dictionary "
        f"that needs more than {MAX_LZMA_MEMORY >> 20} MiB of memory to decompress, over "
        "Keel's limit. Recompress it with a smaller dictionary"
    )


@pytest.mark.parametrize(
    "compress",
    [
        pytest.param(lambda data: _xz(data, _XZ_1_5_GIB), id="tar.xz"),
        pytest.param(lambda data: _lzma_alone(data, 3 << 29), id="tar.lzma"),
    ],
)
def test_an_xz_tar_declaring_a_huge_dictionary_is_refused_before_it_is_allocated(
    tmp_path: Path, compress: object
) -> None:
    # tarfile opened it with lzma.LZMAFile, which takes no memory limit: liblzma allocated the
    # 1.5 GiB the header declares before decoding a byte, and the archive unpacked
    archive = tmp_path / "big-dict.tar.xz"
    archive.write_bytes(compress(_tar_bytes({"a.txt": b"hello\n"})))  # type: ignore[operator]
    with PeakMemory() as peak, pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path)
    assert str(refused.value).startswith(_over_memory(archive))
    assert "or unpack it yourself and ingest the folder" in str(refused.value)
    assert refused.value.details["limit_bytes"] == MAX_LZMA_MEMORY
    assert peak.bytes < 16 * MIB


def test_a_later_xz_stream_over_the_limit_is_refused_not_taken_for_trailing_garbage(
    tmp_path: Path,
) -> None:
    # xz files may be concatenated streams; garbage after the first is ignored as lzma.LZMAFile
    # ignores it, but a stream refused for its memory must not be taken for garbage (the tar
    # would end early, its later members dropped without a word)
    tar = _tar_bytes({"a.txt": b"first\n", "b.txt": b"second\n"})
    archive = tmp_path / "two-streams.tar.xz"
    archive.write_bytes(_xz(tar[:1024]) + _xz(tar[1024:], _XZ_1_5_GIB))  # a.txt, then the rest
    with PeakMemory() as peak, pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path)
    assert str(refused.value).startswith(_over_memory(archive))
    assert peak.bytes < 16 * MIB


def _zip_lzma_member(name: str, data: bytes, *, declared_size: int, dictionary: int) -> bytes:
    """A zip of one LZMA member holding ``data`` whose header declares ``declared_size`` bytes
    and whose LZMA properties declare ``dictionary``."""
    filters = [{"id": lzma.FILTER_LZMA1, "preset": 0, "dict_size": MIB}]
    stream = lzma.compress(data, format=lzma.FORMAT_RAW, filters=filters)
    props = bytes([(2 * 5 + 0) * 9 + 3]) + dictionary.to_bytes(4, "little")
    payload = b"\x09\x04" + struct.pack("<H", len(props)) + props + stream
    encoded, crc = name.encode(), zlib.crc32(data)
    common = (zipfile.ZIP_LZMA, 0, 0x21, crc, len(payload), declared_size, len(encoded))
    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 63, 0, 2, *common, 0)
    central = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\x01\x02", 63, 3, 63, 0, 2, *common, 0, 0, 0, 0, 0o644 << 16, 0
    )
    body = local + encoded + payload
    directory = central + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end


def test_a_zip_lzma_member_whose_dictionary_is_over_the_limit_is_refused_by_the_same_bound(
    tmp_path: Path,
) -> None:
    # the dictionary was capped at the member's declared size only: a member declaring 512 MiB
    # got a 512 MiB dictionary (allocated at once) before it turned out to hold 6 bytes
    archive = tmp_path / "lzma.zip"
    archive.write_bytes(
        _zip_lzma_member("a.bin", b"hello\n", declared_size=512 * MIB, dictionary=512 * MIB)
    )
    with PeakMemory() as peak, pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path, max_ratio=1e12)
    assert str(refused.value).startswith(_over_memory(archive, "a.bin"))
    assert refused.value.details["member"] == "a.bin"
    assert peak.bytes < 16 * MIB


def test_a_zip_lzma_member_declaring_a_huge_dictionary_but_small_still_unpacks(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "lzma.zip"
    data = b"hello lzma\n" * 100
    archive.write_bytes(
        _zip_lzma_member("a.txt", data, declared_size=len(data), dictionary=0xFFFFFFFF)
    )
    with PeakMemory() as peak:
        files = _unpack(archive, tmp_path)
    assert files == {"a.txt": data}
    assert peak.bytes < 16 * MIB


def test_xz_tars_within_the_limit_unpack_byte_for_byte(tmp_path: Path) -> None:
    members = {
        "a/one.txt": b"hello\n",
        "big.bin": random.Random(3).randbytes(3 * MIB) + bytes(MIB),  # many reads and seeks
        "z.txt": b"last\n",
    }
    tar = _tar_bytes(members)
    cases = {
        "xz -9 dictionary": _xz(tar, _XZ_64_MIB),
        # a second stream and the null padding xz allows after it
        "two streams": _xz(tar[:2048]) + _xz(tar[2048:]) + bytes(4),
        "legacy .lzma": _lzma_alone(tar, MIB),
    }
    for case, compressed in cases.items():
        archive = tmp_path / f"{case}.tar.xz"
        archive.write_bytes(compressed)
        folder = tmp_path / case
        folder.mkdir()
        assert _unpack(archive, folder) == members, case


# --- zip central directories ----------------------------------------------------------------


@pytest.fixture
def zips_opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The files zipfile.ZipFile is made on from here on (the real class, observed)."""
    opened: list[object] = []

    class Observed(zipfile.ZipFile):
        def __init__(self, file: object, *args: object, **kwargs: object) -> None:
            opened.append(file)
            super().__init__(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(zipfile, "ZipFile", Observed)
    return opened


_END = struct.Struct("<4s4H2LH")


def _with_zip64_end(raw: bytes, *, entries: int | None = None, size: int | None = None) -> bytes:
    """``raw`` (a zip without a comment) ending with a zip64 end record and its locator, the
    zip64 record declaring ``entries`` and a directory of ``size`` bytes (the real ones by
    default), the classic record pointing to them."""
    at = raw.rindex(b"PK\x05\x06")
    *_, total, real_size, offset, _ = _END.unpack(raw[at:])
    entries = total if entries is None else entries
    size = real_size if size is None else size
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, size, offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    classic = _END.pack(b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return raw[:at] + record + locator + classic


def test_a_zip_declaring_ten_million_entries_is_refused_by_its_count_before_zipfile_reads_it(
    tmp_path: Path, zips_opened: list[object]
) -> None:
    # zipfile ignores the declared count and reads the whole directory, making an object of
    # every entry in it, before Keel's member limit sees one
    raw = _zip_file(tmp_path / "small.zip", {"a.txt": b"hello\n"}).read_bytes()
    archive = tmp_path / "claims.zip"
    archive.write_bytes(_with_zip64_end(raw, entries=10_000_000))
    zips_opened.clear()
    with pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path)
    assert str(refused.value) == (
        f"The archive '{archive}' was refused: its central directory declares 10000000 "
        "entries, over the limit of 100000; split it into smaller archives (or raise "
        "max_members if it is genuine). Nothing was ingested."
    )
    assert refused.value.details["entries"] == 10_000_000
    assert archive not in zips_opened


def test_a_zip_declaring_a_huge_central_directory_is_refused_before_zipfile_reads_it(
    tmp_path: Path, zips_opened: list[object]
) -> None:
    raw = _zip_file(tmp_path / "small.zip", {"a.txt": b"hello\n"}).read_bytes()
    archive = tmp_path / "huge-directory.zip"
    archive.write_bytes(_with_zip64_end(raw, size=1 << 40))
    zips_opened.clear()
    with pytest.raises(InvalidInputError, match="its central directory declares 1099511627776 "):
        _unpack(archive, tmp_path)
    assert archive not in zips_opened


def test_a_central_directory_over_its_bytes_for_the_entries_allowed_is_refused(
    tmp_path: Path, zips_opened: list[object]
) -> None:
    # 50 entries of a 30 KB comment each: 1.5 MB of directory for an archive allowed 100
    # entries (1 KiB each, 1 MiB at least); zipfile would read it all, whatever its size
    archive = tmp_path / "comments.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for index in range(50):
            info = zipfile.ZipInfo(f"{index}.txt", (2020, 1, 1, 0, 0, 0))
            info.comment = b"c" * 30_000
            out.writestr(info, b"x")
    zips_opened.clear()
    with pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path, max_members=100)
    assert "its central directory declares 150" in str(refused.value)
    assert "bytes, over the limit of 1048576 for 100 entries" in str(refused.value)
    assert archive not in zips_opened


def test_a_directory_holding_more_entries_than_its_end_record_declares_is_counted_unread(
    tmp_path: Path, zips_opened: list[object]
) -> None:
    # the end record declares one entry; the directory holds 300 (zipfile lists what it holds)
    raw = bytearray(
        _zip_file(tmp_path / "many.zip", {f"{i}.txt": b"" for i in range(300)}).read_bytes()
    )
    at = raw.rindex(b"PK\x05\x06")
    struct.pack_into("<2H", raw, at + 8, 1, 1)
    archive = tmp_path / "lying-count.zip"
    archive.write_bytes(bytes(raw))
    zips_opened.clear()
    with pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path, max_members=100)
    assert "its central directory holds more than 100 entries, over the limit" in str(refused.value)
    assert archive not in zips_opened


def test_zips_within_the_bounds_unpack_however_their_end_is_written(
    tmp_path: Path, zips_opened: list[object]
) -> None:
    members = {f"d/{i}.txt": b"%d\n" % i for i in range(100)}
    plain = _zip_file(tmp_path / "plain.zip", members)
    commented = tmp_path / "commented.zip"
    with zipfile.ZipFile(commented, "w") as out:
        for name, data in members.items():
            out.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
        out.comment = b"a comment of the archive " * 100
    zip64 = tmp_path / "zip64.zip"
    zip64.write_bytes(_with_zip64_end(plain.read_bytes()))
    with zipfile.ZipFile(zip64) as check:  # zipfile reads the zip64 end record
        assert len(check.infolist()) == 100
    prefixed = tmp_path / "self-extracting.zip"
    prefixed.write_bytes(b"#!/bin/sh\nexit 0\n" * 10 + zip64.read_bytes())
    for archive in (plain, commented, zip64, prefixed):
        folder = tmp_path / archive.stem
        folder.mkdir()
        assert _unpack(archive, folder, max_members=101) == members, archive.name  # + d/
        assert archive in zips_opened


# --- global pax records ----------------------------------------------------------------------


def test_global_pax_records_over_the_limit_are_refused_before_they_patch_every_member(
    tmp_path: Path,
) -> None:
    # tarfile applies every global record to every member after it (and copies them into
    # each member's records): a megabyte of them before 100,000 members is billions of steps
    records = {f"keel.record{i}": "x" for i in range(65)}
    archive = tmp_path / "globals.tar"
    archive.write_bytes(
        _tar_bytes({"a.txt": b"hi"}, format=tarfile.PAX_FORMAT, pax_headers=records)
    )
    with pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path)
    assert "has global pax headers (type 'g') holding 65 records, over the limit of 64" in str(
        refused.value
    )


def test_a_git_archive_global_pax_header_still_unpacks(tmp_path: Path) -> None:
    archive = tmp_path / "git.tar"
    archive.write_bytes(
        _tar_bytes(
            {"src/a.py": b"print()\n"},
            format=tarfile.PAX_FORMAT,
            pax_headers={"comment": "3f786850e387550fdab836ed7e6dc881de23001b"},
        )
    )
    assert _unpack(archive, tmp_path) == {"src/a.py": b"print()\n"}


# --- folders ----------------------------------------------------------------------------------


def _archive(tmp_path: Path, kind: str, members: dict[str, bytes]) -> Path:
    if kind == "zip":
        return _zip_file(tmp_path / "a.zip", members)
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar_bytes(members))
    return archive


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_members_in_more_distinct_folders_than_the_limit_are_refused(
    tmp_path: Path, kind: str
) -> None:
    # every member kept its every parent path: 100,000 members 200 folders deep, each in
    # folders of its own, were 20 million paths in memory (and folders on disk)
    members = {f"{i}/" + "d/" * 20 + "f.txt": b"x" for i in range(5)}  # 21 folders each
    archive = _archive(tmp_path, kind, members)
    with pytest.raises(InvalidInputError) as refused:
        _unpack(archive, tmp_path, max_members=50)
    assert f"member '2/{'d/' * 20}f.txt' brings the folders the archive makes to more than 50" in (
        str(refused.value)
    )


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_members_sharing_deep_folders_count_each_folder_once(tmp_path: Path, kind: str) -> None:
    members = {"d/" * 40 + f"{i}.txt": b"%d" % i for i in range(45)}  # 40 folders, 45 files
    archive = _archive(tmp_path, kind, members)
    assert _unpack(archive, tmp_path, max_members=50) == members


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_file_and_a_folder_of_one_name_are_still_refused_either_way(
    tmp_path: Path, kind: str
) -> None:
    for order in (["a/b/c", "a/b"], ["a/b", "a/b/c"]):
        folder = tmp_path / "-".join(order).replace("/", "")
        folder.mkdir()
        archive = _archive(folder, kind, dict.fromkeys(order, b"x"))
        with pytest.raises(InvalidInputError, match="is both a file and a folder"):
            _unpack(archive, folder)
