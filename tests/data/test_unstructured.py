"""Folders and archives: manifest tables, blobs, and archives that must be refused."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from keel.errors import InvalidInputError
from keel.workspace import Workspace


def _folder(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    Image.new("RGB", (32, 16), "red").save(root / "red.png")
    (root / "docs" / "note.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (root / "docs" / "data.bin").write_bytes(os.urandom(100))
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(72, 72)
    writer.add_blank_page(72, 72)
    with open(root / "docs" / "two.pdf", "wb") as handle:
        writer.write(handle)
    return root


def test_folder_becomes_a_manifest_with_metadata_and_blobs(
    local_ws: Workspace, tmp_path: Path
) -> None:
    folder = _folder(tmp_path / "in")
    version = local_ws.datasets.ingest("files", folder)
    assert version.kind == "files" and version.row_count == 4
    manifest = local_ws.datasets.read("files").sort("path")
    assert manifest["path"].to_list() == [
        "docs/data.bin",
        "docs/note.txt",
        "docs/two.pdf",
        "red.png",
    ]
    rows = {r["path"]: r for r in manifest.iter_rows(named=True)}
    assert (rows["red.png"]["width"], rows["red.png"]["height"], rows["red.png"]["mode"]) == (
        32,
        16,
        "RGB",
    )
    assert rows["red.png"]["media_type"] == "image/png"
    assert (rows["docs/note.txt"]["text_chars"], rows["docs/note.txt"]["text_lines"]) == (14, 3)
    assert rows["docs/two.pdf"]["pdf_pages"] == 2
    blob = local_ws.blobs.get_bytes(rows["docs/data.bin"]["digest"], scope=local_ws.ctx.project_id)
    assert blob == (folder / "docs" / "data.bin").read_bytes()
    # Unchanged: the same version; one file changed: a new version that re-reads only it.
    assert local_ws.datasets.ingest("files", folder).id == version.id
    (folder / "docs" / "note.txt").write_text("changed\n", encoding="utf-8")
    again = local_ws.datasets.ingest("files", folder)
    assert again.version == 2
    assert local_ws.datasets.read("files").filter(path="docs/note.txt")["text_chars"][0] == 8


def test_symlink_out_of_the_folder_is_refused(local_ws: Workspace, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "in")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not take me", encoding="utf-8")
    (folder / "docs" / "link.txt").symlink_to(secret)
    with pytest.raises(InvalidInputError, match="outside the folder"):
        local_ws.datasets.ingest("files", folder)
    with pytest.raises(Exception, match="does not exist"):
        local_ws.datasets.get("files")


def _zip(path: Path, members: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_a_good_archive_is_unpacked_and_ingested(local_ws: Workspace, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "ok.zip", {"a/one.txt": b"hello\n", "two.txt": b"x"})
    version = local_ws.datasets.ingest("unpacked", archive)
    assert sorted(local_ws.datasets.read("unpacked")["path"].to_list()) == ["a/one.txt", "two.txt"]
    assert version.source is not None and version.source["kind"] == "archive"


@pytest.mark.parametrize(
    ("members", "symlink", "reason"),
    [
        ({"../evil.txt": b"x"}, None, r"climbs out"),
        ({"a/../../evil.txt": b"x"}, None, r"climbs out"),
        ({"/tmp/evil.txt": b"x"}, None, r"absolute path"),
        ({"ok.txt": b"x"}, "link", r"symbolic link"),
        ({"bomb.txt": b"\0" * (20 << 20)}, None, r"decompression bomb"),
    ],
)
def test_dangerous_zip_archives_are_refused_and_write_nothing_outside(
    local_ws: Workspace, tmp_path: Path, members: dict[str, bytes], symlink: str | None, reason: str
) -> None:
    archive = _zip(tmp_path / "bad.zip", members, symlink=symlink)
    before = set(tmp_path.parent.rglob("evil.txt"))
    with pytest.raises(InvalidInputError, match=reason):
        local_ws.datasets.ingest("bad", archive)
    assert set(tmp_path.parent.rglob("evil.txt")) == before
    assert not Path("/tmp/evil.txt").exists()


def _tar(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        archive.addfile(member, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "dotdot", "absolute", "device"])
def test_dangerous_tar_members_are_refused(local_ws: Workspace, tmp_path: Path, kind: str) -> None:
    member = tarfile.TarInfo("ok.txt")
    data = b""
    if kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        member.type, member.linkname = tarfile.LNKTYPE, "/etc/passwd"
    elif kind == "dotdot":
        member.name, data = "../../evil.txt", b"x"
        member.size = 1
    elif kind == "absolute":
        member.name, data = "/tmp/evil.txt", b"x"
        member.size = 1
    else:
        member.type = tarfile.CHRTYPE
    archive = _tar(tmp_path / "bad.tar.gz", member, data)
    with pytest.raises(InvalidInputError, match="refused"):
        local_ws.datasets.ingest("bad", archive)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_unchanged_folder_larger_than_a_batch_is_the_same_version(
    local_ws: Workspace, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(620):
        (folder / f"f{i:04d}.txt").write_text(f"file {i}\n", encoding="utf-8")
    first = local_ws.datasets.ingest("many", folder)
    assert [p.rows for p in first.parts] == [500, 120]
    assert local_ws.datasets.ingest("many", folder).id == first.id
