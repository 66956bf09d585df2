"""Review fixes of folder and archive ingest: tar extended headers bounded before tarfile reads
them whole, a subfolder or file that cannot be read (or vanished) failing the ingest with a
clear error instead of being left out or crashing, and zip names and special members refused
as tar ones are."""

from __future__ import annotations

import bz2
import errno
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.data import _folders, _tar_headers
from keel.data._folders import ArchiveSource, FolderSource
from keel.errors import ConflictError, InvalidInputError, NotFoundError
from keel.workspace import Workspace

MIB = 1 << 20


pytestmark = pytest.mark.usefixtures("private_temp")  # archives unpack in a temp of their own


def _header_bomb(path: Path, kind: bytes, declared: int, *, written: int | None = None) -> Path:
    """A .tar.bz2 whose first header is an extended one of type ``kind`` declaring
    ``declared`` bytes (``written`` of them present, zeros), then a one-byte ``x.txt``."""
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, declared
    header = info._create_header(  # type: ignore[attr-defined]
        info.get_info(), tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"
    )
    body = bytearray(header)
    count = declared if written is None else written
    if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE):
        record = b"9 a=bbbb\n"  # a valid record first, zeros after
        body += record + bytes(max(0, count - len(record)))
    else:
        body += bytes(count)
    body += bytes(-count % 512)
    member = tarfile.TarInfo("x.txt")
    member.size = 1
    body += member.tobuf(format=tarfile.GNU_FORMAT) + b"x" + bytes(511) + bytes(1024)
    path.write_bytes(bz2.compress(bytes(body), 9))
    return path


@pytest.mark.parametrize(
    "kind",
    [tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE],
    ids=["gnu-long-name", "gnu-long-link", "pax", "pax-global"],
)
def test_an_extended_tar_header_declaring_megabytes_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: bytes
) -> None:
    archive = _header_bomb(tmp_path / "bomb.tar.bz2", kind, 8 * MIB)
    assert archive.stat().st_size < 4096  # megabytes of zeros pack to almost nothing
    reads: list[int] = []
    original = _tar_headers._PROC_MEMBER

    def proc_member(header: tarfile.TarInfo, archive: tarfile.TarFile) -> tarfile.TarInfo:
        reads.append(header.size)
        return original(header, archive)  # type: ignore[no-any-return]

    monkeypatch.setattr(_tar_headers, "_PROC_MEMBER", proc_member)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(InvalidInputError, match="declaring 8388608 bytes") as refused:
        ArchiveSource(archive).unpack(target)
    assert "decompression bomb" in str(refused.value)
    assert reads == []  # refused before tarfile was asked to read the header's bytes
    assert list(target.iterdir()) == []


def test_a_real_bomb_archive_is_refused_at_ingest(local_ws: Workspace, tmp_path: Path) -> None:
    archive = _header_bomb(tmp_path / "bomb.tar.bz2", tarfile.GNUTYPE_LONGNAME, 8 * MIB)
    with pytest.raises(InvalidInputError, match="decompression bomb"):
        local_ws.datasets.ingest("files", archive, kind="archive")
    with pytest.raises(NotFoundError):
        local_ws.datasets.get("files")


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_total_bytes": 512 << 10}, "brings the unpacked size to 614400 bytes"),
        ({}, "brings the expansion to"),
    ],
    ids=["total", "ratio"],
)
def test_extended_header_bytes_count_toward_the_unpacked_size_and_ratio(
    tmp_path: Path, limits: dict[str, int], message: str
) -> None:
    # 600 KiB of long name: under the header bound, but counted as unpacked bytes
    archive = _header_bomb(tmp_path / "big.tar.bz2", tarfile.GNUTYPE_LONGNAME, 600 << 10)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(InvalidInputError, match=message):
        ArchiveSource(archive, **limits).unpack(target)
    assert list(target.iterdir()) == []


def test_a_long_run_of_extended_headers_is_refused(tmp_path: Path) -> None:
    body = bytearray()
    for _ in range(40):  # each names the member again; tarfile would recurse through all
        info = tarfile.TarInfo("././@LongLink")
        info.type, info.size = tarfile.GNUTYPE_LONGNAME, 6
        body += info._create_header(  # type: ignore[attr-defined]
            info.get_info(), tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"
        )
        body += b"y.txt\0" + bytes(506)
    member = tarfile.TarInfo("x.txt")
    member.size = 1
    body += member.tobuf(format=tarfile.GNU_FORMAT) + b"x" + bytes(511) + bytes(1024)
    archive = tmp_path / "run.tar"
    archive.write_bytes(bytes(body))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(InvalidInputError, match="more than 16 extended headers"):
        ArchiveSource(archive).unpack(target)
    assert list(target.iterdir()) == []


def test_long_names_and_pax_records_still_unpack(tmp_path: Path) -> None:
    deep = "/".join(["folder-" + "d" * 40] * 6) + "/" + "n" * 100 + ".txt"  # over 255 bytes
    names = {deep: b"deep\n", "caf\u00e9/\u00e9t\u00e9.txt": b"summer\n", "plain.txt": b"p\n"}
    for fmt, suffix in ((tarfile.GNU_FORMAT, "gnu"), (tarfile.PAX_FORMAT, "pax")):
        archive = tmp_path / f"{suffix}.tar.gz"
        with tarfile.open(archive, "w:gz", format=fmt) as out:
            for name, data in names.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.pax_headers = {"comment": "c" * 2000} if fmt == tarfile.PAX_FORMAT else {}
                out.addfile(info, io.BytesIO(data))
        target = tmp_path / f"out-{suffix}"
        target.mkdir()
        assert ArchiveSource(archive).unpack(target) == sum(map(len, names.values()))
        got = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*.txt")}
        assert got == names


def test_a_zip_name_flagged_utf8_that_is_not_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("caf\u00e9.txt", b"x")  # a non-ASCII name sets the UTF-8 flag
    data = archive.read_bytes().replace("caf\u00e9".encode(), b"caf\xff\xfe")
    archive.write_bytes(data)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(InvalidInputError, match="not UTF-8 text; repack it with UTF-8") as got:
        ArchiveSource(archive).unpack(target)
    assert got.value.details["member"] == "caf\\xff\\xfe.txt"
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("kind", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK], ids=str)
def test_a_zip_member_marked_special_is_refused(tmp_path: Path, kind: int) -> None:
    archive = tmp_path / "special.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("ok.txt", b"ok")
        info = zipfile.ZipInfo("special")
        info.create_system, info.external_attr = 3, (kind | 0o644) << 16
        out.writestr(info, b"")
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(InvalidInputError, match="is a device, FIFO or other special file"):
        ArchiveSource(archive).unpack(target)
    assert list(target.iterdir()) == []


def test_zip_members_with_unix_file_and_folder_modes_unpack(tmp_path: Path) -> None:
    archive = tmp_path / "unix.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, mode, data in (
            ("dir/", stat.S_IFDIR | 0o755, b""),
            ("dir/a.txt", stat.S_IFREG | 0o644, b"a"),
            ("b.txt", 0o644, b"bb"),  # no file-type bits: a plain file
        ):
            info = zipfile.ZipInfo(name)
            info.create_system, info.external_attr = 3, mode << 16
            out.writestr(info, data)
        info = zipfile.ZipInfo("dos.txt")  # a DOS attribute byte, not a mode
        info.create_system, info.external_attr = 0, stat.S_IFCHR << 16
        out.writestr(info, b"ccc")
    target = tmp_path / "out"
    target.mkdir()
    assert ArchiveSource(archive).unpack(target) == 6
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*.txt")) == [
        "b.txt",
        "dir/a.txt",
        "dos.txt",
    ]


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"a\n")
    (folder / "b.bin").write_bytes(b"b" * 10)
    (folder / "sub" / "c.txt").write_bytes(b"c\n")
    return folder


def test_a_subfolder_removed_during_the_walk_fails_the_ingest(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path)
    original = os.scandir

    def scandir(path: str | int = ".") -> object:
        if (
            isinstance(path, str) and Path(path).name == "sub"
        ):  # listed in its parent, gone before it is walked
            shutil.rmtree(path)
        return original(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ConflictError, match="'sub' changed while it was being read") as got:
        local_ws.datasets.ingest("files", folder, kind="folder")
    assert got.value.details["path"] == "sub"
    with pytest.raises(NotFoundError):
        local_ws.datasets.get("files")


@pytest.mark.parametrize("ahead_chunks", [4, 0], ids=["read-ahead", "in-order"])
def test_a_file_removed_before_it_is_opened_is_a_change(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead_chunks: int
) -> None:
    folder = _folder(tmp_path)
    monkeypatch.setattr(_folders, "_AHEAD_CHUNKS", ahead_chunks)  # 0: every file in order
    original = os.open

    def opening(path: str | os.PathLike[str], flags: int, *args: int, **kw: object) -> int:
        if Path(path).name == "b.bin":
            os.unlink(path)
        return original(path, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", opening)
    with pytest.raises(ConflictError, match=r"'b\.bin' changed .*removed or moved"):
        local_ws.datasets.ingest("files", folder, kind="folder")
    monkeypatch.undo()
    with pytest.raises(NotFoundError):
        local_ws.datasets.get("files")


def test_a_file_removed_after_it_is_listed_is_a_change(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path)
    original = FolderSource._files

    def files(self: FolderSource) -> Iterator[tuple[str, Path]]:
        for rel, entry in original(self):
            if rel == "b.bin":
                entry.unlink()  # between the listing and the stat of the file
            yield rel, entry

    monkeypatch.setattr(FolderSource, "_files", files)
    with pytest.raises(ConflictError, match=r"'b\.bin' changed .*removed or moved"):
        local_ws.datasets.ingest("files", folder, kind="folder")
    with pytest.raises(NotFoundError):
        local_ws.datasets.get("files")


def test_a_file_that_cannot_be_opened_is_named(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path)
    original = os.open

    def opening(path: str | os.PathLike[str], flags: int, *args: int, **kw: object) -> int:
        if Path(path).name == "c.txt":
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return original(path, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", opening)
    with pytest.raises(InvalidInputError, match=r"'sub/c\.txt' in the folder cannot be read: perm"):
        local_ws.datasets.ingest("files", folder, kind="folder")
    monkeypatch.undo()
    with pytest.raises(NotFoundError):
        local_ws.datasets.get("files")


_UNPRIVILEGED = """
import json, sys
from keel.settings import Settings
from keel.workspace import connect

ws = connect(settings=Settings(home=sys.argv[1]), principal="user:tester")
out = {}
for name, folder in zip(("nosub", "nofile"), sys.argv[2:]):
    try:
        ws.datasets.ingest(name, folder, kind="folder")
        out[name] = ["ingested", sorted(ws.datasets.read(name)["path"].to_list())]
    except Exception as exc:
        out[name] = [type(exc).__name__, str(exc), sorted(d.name for d in ws.datasets.list())]
print(json.dumps(out))
"""


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv"
)
def test_unreadable_subfolders_and_files_fail_the_ingest_for_a_user_without_override(
    tmp_path: Path,
) -> None:
    # root drops the capabilities that let it read anything: chmod 0 then applies to it
    nosub, nofile = _folder(tmp_path / "one"), _folder(tmp_path / "two")
    (nosub / "sub").chmod(0)
    (nofile / "sub" / "c.txt").chmod(0)
    caps = "-dac_override,-dac_read_search"
    try:
        run = subprocess.run(
            [
                *("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--"),
                *(sys.executable, "-c", _UNPRIVILEGED),
                *(str(tmp_path / "home"), str(nosub), str(nofile)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        (nosub / "sub").chmod(0o755)
        (nofile / "sub" / "c.txt").chmod(0o644)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    kind, message, datasets = got["nosub"]
    assert kind == "InvalidInputError"
    assert "'sub' in the folder cannot be read: permission denied" in message
    kind, message, more = got["nofile"]
    assert kind == "InvalidInputError"
    assert "'sub/c.txt' in the folder cannot be read: permission denied" in message
    assert datasets == more == []  # nothing ingested, neither folder
