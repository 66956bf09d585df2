"""Folders and archives that are damaged, tricky or hostile: each is refused with a clear
error (or read right), and no unpacked copy or Keel key is left behind or stored."""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from keel.data import _folders
from keel.data._folders import ArchiveSource
from keel.errors import ConflictError, InvalidInputError
from keel.workspace import Workspace

pytestmark = pytest.mark.usefixtures("private_temp")  # archives unpack in a temp of their own


def _tar(path: Path, members: list[tuple[str, bytes]], **kwargs: object) -> Path:
    with tarfile.open(path, "w", **kwargs) as archive:  # type: ignore[call-overload]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_600_000_000
            archive.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return path


def _paths(ws: Workspace, name: str) -> list[str]:
    return sorted(ws.datasets.read(name)["path"].to_list())


def test_a_tar_whose_last_member_is_a_zip_is_read_as_a_tar(
    local_ws: Workspace, tmp_path: Path
) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as docx:
        docx.writestr("word/document.xml", b"<w:document/>")
    archive = _tar(tmp_path / "r.tar", [("a.txt", b"hello\n"), ("z.docx", inner.getvalue())])
    local_ws.datasets.ingest("reports", archive)
    assert _paths(local_ws, "reports") == ["a.txt", "z.docx"]


def test_a_keel_home_in_a_folder_is_never_stored(local_ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    (folder / ".keel" / "blobs").mkdir(parents=True)
    (folder / "doc.txt").write_bytes(b"document\n")
    secrets = {
        ".keel/master.key": b"MASTER-KEY-BYTES",
        ".keel/signing.key": b"SIGNING-KEY-BYTES",
        ".keel/keel.db": b"DATABASE",
        ".keel/blobs/x": b"BLOB",
        "sub/other-home/master.key": b"OTHER-MASTER",
        "sub/other-home/signing.key": b"OTHER-SIGNING",
        "config/master.key": b"a Rails app's key file, not a Keel home",
    }
    for rel, data in secrets.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (folder / "key-link").symlink_to(folder / ".keel" / "master.key")
    local_ws.datasets.ingest("docs", folder, kind="folder")
    assert _paths(local_ws, "docs") == ["config/master.key", "doc.txt"]
    with pytest.raises(InvalidInputError, match="is a Keel home"):
        local_ws.datasets.ingest("home", folder / ".keel", kind="folder")


def test_a_damaged_tar_header_is_refused_not_truncated(local_ws: Workspace, tmp_path: Path) -> None:
    path = _tar(tmp_path / "d.tar", [(n, b"content\n") for n in ("a.txt", "b.txt", "c.txt")])
    raw = bytearray(path.read_bytes())
    raw[1024 + 100] ^= 0x01  # the mode field of the second header: its checksum fails
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidInputError, match="damaged header at byte 1024"):
        local_ws.datasets.ingest("damaged", path)


def test_a_tar_bomb_is_refused_before_the_next_header_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = tarfile.TarInfo("bomb.bin")
    bomb.size = 32 << 20
    path = tmp_path / "bomb.tar.gz"
    with gzip.open(path, "wb") as out:
        out.write(bomb.tobuf(tarfile.GNU_FORMAT))
        out.write(b"\0" * bomb.size)
        out.write(tarfile.TarInfo("after.txt").tobuf(tarfile.GNU_FORMAT))
        out.write(b"\0" * 2048)
    headers: list[int] = []
    original = tarfile.TarInfo.fromtarfile.__func__  # type: ignore[attr-defined]

    def counting(cls: type[tarfile.TarInfo], archive: tarfile.TarFile) -> tarfile.TarInfo:
        headers.append(archive.offset)  # reaching the next header decompresses the member
        return original(cls, archive)  # type: ignore[no-any-return]

    monkeypatch.setattr(tarfile.TarInfo, "fromtarfile", classmethod(counting))
    with pytest.raises(InvalidInputError, match="over the limit of 1048576"):
        ArchiveSource(path, max_total_bytes=1 << 20).unpack(tmp_path / "out")
    assert headers == [0]


def _encrypted(raw: bytearray) -> None:
    raw[raw.find(b"PK\x03\x04") + 6] |= 1
    raw[raw.find(b"PK\x01\x02") + 8] |= 1


def _bad_crc(raw: bytearray) -> None:
    raw[raw.find(b"hello world")] = ord("j")


def _unknown_method(raw: bytearray) -> None:
    raw[raw.find(b"PK\x03\x04") + 8] = 99
    raw[raw.find(b"PK\x01\x02") + 10] = 99


def _truncated(raw: bytearray) -> None:
    del raw[len(raw) // 2 :]


def _archive(tmp_path: Path, case: str) -> Path:
    """The bad archive of ``case``."""
    hello = [("a.txt", b"hello world")]
    if case == "zip-duplicate":
        with pytest.warns(UserWarning, match="Duplicate name"):
            return _zip(tmp_path / "c.zip", [("a.txt", b"1"), ("a.txt", b"2")])
    if case == "zip-file-and-folder":
        return _zip(tmp_path / "c.zip", [("a", b"1"), ("a/b.txt", b"2")])
    if case == "tar-duplicate":
        return _tar(tmp_path / "c.tar", [("a.txt", b"1"), ("a.txt", b"2")])
    if case == "tar-long-name":
        return _tar(tmp_path / "c.tar", [("x" * 300, b"1")])
    if case == "tar-latin-1-name":
        return _tar(
            tmp_path / "c.tar",
            [("caf\xe9.txt", b"hi")],
            encoding="latin-1",
            format=tarfile.GNU_FORMAT,
        )
    if case == "tar-gz-truncated":
        with tarfile.open(tmp_path / "c.tar.gz", "w:gz") as archive:
            for i in range(3):
                info = tarfile.TarInfo(f"f{i}.bin")
                info.size = 30000
                archive.addfile(info, io.BytesIO(os.urandom(30000)))
        path = tmp_path / "c.tar.gz"
        patch = _truncated
    else:
        path = _zip(tmp_path / "c.zip", hello)
        patch = {"zip-encrypted": _encrypted, "zip-bad-crc": _bad_crc}.get(case, _unknown_method)
    raw = bytearray(path.read_bytes())
    patch(raw)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("zip-duplicate", "appears twice"),
        ("zip-file-and-folder", "both a file and a folder"),
        ("tar-duplicate", "appears twice"),
        ("tar-long-name", "name too long"),
        ("tar-latin-1-name", "not UTF-8"),
        ("tar-gz-truncated", "damaged or truncated"),
        ("zip-encrypted", "is encrypted"),
        ("zip-bad-crc", "Bad CRC-32"),
        ("zip-unknown-method", "compression method 99"),
    ],
)
def test_bad_archives_are_refused_cleanly_and_leave_nothing(
    local_ws: Workspace, tmp_path: Path, private_temp: Path, case: str, reason: str
) -> None:
    archive = _archive(tmp_path, case)
    with pytest.raises(InvalidInputError, match=reason):
        local_ws.datasets.ingest("bad", archive)
    assert list(private_temp.iterdir()) == []


def test_bad_folders_are_refused_cleanly(local_ws: Workspace, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "ok.txt").write_bytes(b"x")
    (loop / "a").symlink_to("b")
    (loop / "b").symlink_to("a")
    with pytest.raises(InvalidInputError, match="symlink that cannot be followed"):
        local_ws.datasets.ingest("loop", loop, kind="folder")
    latin = tmp_path / "latin"
    latin.mkdir()
    Path(os.fsdecode(os.path.join(os.fsencode(latin), b"caf\xe9.txt"))).write_bytes(b"hi")
    with pytest.raises(InvalidInputError, match=r"caf\\\\xe9.txt.*not UTF-8"):
        local_ws.datasets.ingest("latin", latin, kind="folder")


def test_an_unchanged_archive_gives_the_unchanged_version(
    local_ws: Workspace, tmp_path: Path
) -> None:
    path = _zip(tmp_path / "same.zip", [("a.txt", b"hello\n"), ("b.bin", b"\x00\x01")])
    first = local_ws.datasets.ingest("same", path)
    again = local_ws.datasets.ingest("same", path)
    assert again.version == first.version
    assert set(local_ws.datasets.read("same")["mtime_ns"].to_list()) == {1_577_836_800 * 10**9}
    # same names, sizes and times, other bytes (a normalised-time build): never reused
    _zip(path, [("a.txt", b"HELLO\n"), ("b.bin", b"\x00\x01")])
    changed = local_ws.datasets.ingest("same", path)
    assert changed.version == first.version + 1
    row = local_ws.datasets.read("same").filter(path="a.txt")
    assert row["digest"][0] == "sha256:" + hashlib.sha256(b"HELLO\n").hexdigest()


def test_stale_unpack_folders_of_killed_ingests_are_removed(
    local_ws: Workspace, tmp_path: Path, private_temp: Path
) -> None:
    old = time.time() - 2 * 3600

    def unpack_folder(name: str) -> Path:
        folder = private_temp / f"keel-unpack-{name}"
        (folder / "files").mkdir(parents=True)
        (folder / "files" / "copy.bin").write_bytes(b"plaintext")
        (folder / ".keel-unpack.lock").touch()
        os.utime(folder, (old, old))
        return folder

    killed, live = unpack_folder("killed"), unpack_folder("live")
    fresh = private_temp / "keel-unpack-fresh"
    fresh.mkdir()
    with open(live / ".keel-unpack.lock", "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        local_ws.datasets.ingest("a", _zip(tmp_path / "a.zip", [("a.txt", b"x")]))
    assert sorted(p.name for p in private_temp.iterdir()) == [
        "keel-unpack-fresh",
        "keel-unpack-live",
    ]
    assert not killed.exists()


@pytest.mark.parametrize(
    ("name", "ok"), [("a:b.txt", True), ("C:/Windows/x.txt", False), ("C:\\x.txt", False)]
)
def test_colons_in_member_names(tmp_path: Path, name: str, ok: bool) -> None:
    source = ArchiveSource(_zip(tmp_path / "c.zip", [(name, b"x")]))
    if ok:
        source.unpack(tmp_path / "out")
        assert (tmp_path / "out" / name).read_bytes() == b"x"
    else:
        with pytest.raises(InvalidInputError, match="has an absolute path"):
            source.unpack(tmp_path / "out")


def test_a_file_swapped_for_a_symlink_after_listing_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    listed = folder / "a.txt"
    listed.write_bytes(b"mine")
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"not yours")
    info = os.lstat(listed)
    listed.unlink()
    listed.symlink_to(outside)
    with pytest.raises(ConflictError, match="replaced by a symbolic link"):
        _folders._open_listed("a.txt", listed, info)


def test_gc_removes_the_unpack_folder_of_a_killed_ingest_but_not_a_live_one(
    local_ws: Workspace, private_temp: Path
) -> None:
    folders = []
    for name in ("killed", "live"):
        folder = private_temp / f"keel-unpack-{name}"
        (folder / "files").mkdir(parents=True)
        (folder / "files" / "copy.bin").write_bytes(b"plaintext")
        (folder / ".keel-unpack.lock").touch()
        folders.append(folder)
    killed, live = folders
    with open(live / ".keel-unpack.lock", "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert local_ws.datasets.gc(dry_run=True, older_than_seconds=0).temporaries == 0
        assert killed.exists()
        report = local_ws.datasets.gc(older_than_seconds=0)
    assert report.temporaries == 1
    assert not killed.exists() and live.exists()


def test_a_zip_with_data_before_it_and_a_tar_whose_first_name_looks_like_a_zip(
    local_ws: Workspace, tmp_path: Path
) -> None:
    plain = _zip(tmp_path / "plain.zip", [("a.txt", b"x")]).read_bytes()
    (tmp_path / "sfx.zip").write_bytes(b"#!/bin/sh\nexit 0\n" + plain)  # self-extracting
    local_ws.datasets.ingest("sfx", tmp_path / "sfx.zip", kind="archive")
    assert _paths(local_ws, "sfx") == ["a.txt"]
    odd = _tar(tmp_path / "odd.tar", [("PK\x03\x04odd.txt", b"y")])
    local_ws.datasets.ingest("odd", odd, kind="archive")
    assert _paths(local_ws, "odd") == ["PK\x03\x04odd.txt"]
