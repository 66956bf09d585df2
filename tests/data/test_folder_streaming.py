"""Folder files streamed through reused buffers: exact bytes, one key per blob, no leftovers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from keel.blobs._store import BlobUpload
from keel.errors import NotFoundError, StorageError
from keel.workspace import Workspace

MIB = 1 << 20


def _store_root(ws: Workspace) -> Path:
    return Path(ws.blobs.url.removeprefix("file://"))


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _folder(root: Path) -> dict[str, bytes]:
    big = os.urandom(2 * MIB + MIB // 2)
    small = os.urandom(300)
    files = {
        "empty.bin": b"",
        "one.bin": os.urandom(1),
        "under.bin": os.urandom(MIB - 1),
        "exact.bin": os.urandom(MIB),  # a multiple of the chunk size: the last chunk is full
        "over.bin": os.urandom(MIB + 1),
        "big.bin": big,
        "copy/big.bin": big,  # the same content twice: stored once
        "small.dat": small,
        "copy/small.dat": small,
        "note.txt": b"one\ntwo\n",  # text: read whole for its line count
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_streamed_files_round_trip_with_one_key_per_blob(
    local_ws: Workspace, tmp_path: Path
) -> None:
    files = _folder(tmp_path / "in")
    version = local_ws.datasets.ingest("files", tmp_path / "in")
    assert version.row_count == len(files)
    rows = {r["path"]: r for r in local_ws.datasets.read("files").iter_rows(named=True)}
    scope = local_ws.ctx.project_id
    for rel, data in files.items():
        assert rows[rel]["size"] == len(data)
        assert rows[rel]["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert local_ws.blobs.get_bytes(rows[rel]["digest"], scope=scope) == data
    assert rows["big.bin"]["media_type"] == "application/octet-stream"
    assert (rows["note.txt"]["text_chars"], rows["note.txt"]["text_lines"]) == (8, 2)
    root = _store_root(local_ws)
    stored = set(local_ws.blobs.iter_digests(scope=scope))
    assert len(stored) == len(set(files.values())) + 1  # and the manifest part
    assert len(_files_under(root / "_keys" / scope / "own")) == len(stored)  # no orphan key
    assert _files_under(root / "_tmp") == []
    assert local_ws.datasets.gc(dry_run=True, older_than_seconds=0).orphan_blobs == []
    assert local_ws.datasets.ingest("files", tmp_path / "in").id == version.id


def test_a_writer_failure_mid_file_publishes_nothing_unjournaled(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(40):  # 40 MiB: several publish batches of 8 MiB before the failure
        (folder / f"f{i:02d}.bin").write_bytes(os.urandom(MIB + 7))
    monkeypatch.setattr("keel.data._ingest._PUBLISH_BYTES", 8 * MIB)
    calls = {"n": 0}
    original = BlobUpload.write

    def failing(self: BlobUpload, chunk: Any, *, final: bool, out: Any = None) -> None:
        calls["n"] += 1
        if calls["n"] == 70:  # the first chunk of file 35
            raise StorageError("disk full (test)")
        original(self, chunk, final=final, out=out)

    monkeypatch.setattr(BlobUpload, "write", failing)
    with pytest.raises(StorageError, match="disk full"):
        local_ws.datasets.ingest("files", folder)
    monkeypatch.undo()
    with pytest.raises(NotFoundError):
        local_ws.datasets.get("files")
    root = _store_root(local_ws)
    scope = local_ws.ctx.project_id
    assert _files_under(root / "_tmp") == []  # the unpublished batch was removed
    published = set(local_ws.blobs.iter_digests(scope=scope))
    assert 0 < len(published) < 40  # the first batch was published, journaled first
    report = local_ws.datasets.gc(older_than_seconds=0)
    assert set(report.orphan_blobs) == published and report.deleted == len(published)
    assert list(local_ws.blobs.iter_digests(scope=scope)) == []
    assert _files_under(root / "_keys" / scope / "own") == []  # their keys went with them
