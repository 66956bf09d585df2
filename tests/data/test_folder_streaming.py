"""Folder files streamed through reused buffers: exact bytes, one key per blob, no leftovers."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from keel import clock
from keel.blobs._storage import HeldWrites, StorageRoot
from keel.blobs._store import BlobUpload
from keel.data import _folders
from keel.data._ingest import Ingest
from keel.errors import ConflictError, NotFoundError, StorageError
from keel.store import DatasetRepository
from keel.store._schema_data import DatasetPendingBlobRow
from keel.workspace import Workspace, connect

from ..conftest import make_settings

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


def _failing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, files: int, failing_write: int
) -> Path:
    """A folder of ``files`` files of 1 MiB + 7 bytes (two chunks each), published every
    8 MiB, whose ingest's ``failing_write``-th chunk write fails with a StorageError."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(files):
        (folder / f"f{i:02d}.bin").write_bytes(os.urandom(MIB + 7))
    monkeypatch.setattr("keel.data._ingest._PUBLISH_BYTES", 8 * MIB)
    calls = {"n": 0}
    original = BlobUpload.write

    def failing(self: BlobUpload, chunk: Any, *, final: bool, out: Any = None) -> None:
        calls["n"] += 1
        if calls["n"] == failing_write:
            raise StorageError("disk full (test)")
        original(self, chunk, final=final, out=out)

    monkeypatch.setattr(BlobUpload, "write", failing)
    return folder


def test_a_writer_failure_mid_file_publishes_nothing_unjournaled(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 MiB: several publish batches of 8 MiB before the failure, at the first chunk of file 35
    folder = _failing_folder(tmp_path, monkeypatch, files=40, failing_write=70)
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
    # journaled: every published blob (and the files read before the failure, never published)
    assert published <= set(report.orphan_blobs) and report.deleted == len(published)
    assert list(local_ws.blobs.iter_digests(scope=scope)) == []
    assert _files_under(root / "_keys" / scope / "own") == []  # their keys went with them


# --- review of the streamed writes (9a00196) -----------------------------------------------


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _journaled(ws: Workspace, digest: str) -> bool:
    with ws._governor.db.read() as session:
        rows = session.execute(
            select(DatasetPendingBlobRow.id).where(DatasetPendingBlobRow.digest == digest)
        ).all()
    return bool(rows)


def test_a_big_file_stored_already_is_reused_in_another_dataset(
    local_ws: Workspace, tmp_path: Path
) -> None:
    big = os.urandom(2 * MIB + 5)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big.bin").write_bytes(big)
    local_ws.datasets.ingest("one", tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "big.bin").write_bytes(big)
    new = os.urandom(3 * MIB)
    (tmp_path / "b" / "new.bin").write_bytes(new)
    local_ws.datasets.ingest("two", tmp_path / "b")  # used to fail: could not flush …
    rows = {r["path"]: r for r in local_ws.datasets.read("two").iter_rows(named=True)}
    scope = local_ws.ctx.project_id
    assert local_ws.blobs.get_bytes(rows["new.bin"]["digest"], scope=scope) == new
    assert local_ws.blobs.get_bytes(rows["big.bin"]["digest"], scope=scope) == big
    root = _store_root(local_ws)
    assert _files_under(root / "_tmp") == []
    stored = list(local_ws.blobs.iter_digests(scope=scope))
    assert len(_files_under(root / "_keys" / scope / "own")) == len(stored)


def test_a_touched_file_of_unchanged_content_is_versioned_again(
    local_ws: Workspace, tmp_path: Path
) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(2 * MIB + 5))
    first = local_ws.datasets.ingest("one", folder)
    (folder / "new.bin").write_bytes(b"x" * 10)
    os.utime(folder / "big.bin", ns=(1, 1))  # mtime moved, content the same (cp, checkout)
    second = local_ws.datasets.ingest("one", folder)
    assert second.version == first.version + 1 and second.row_count == 2


@pytest.mark.parametrize("size", [100, 3 * MIB])  # one chunk, several chunks
def test_a_reused_streamed_blob_is_journaled_so_a_concurrent_gc_keeps_it(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    data = os.urandom(size)
    digest = _digest(data)
    scope = local_ws.ctx.project_id
    # an ingest killed two hours ago: its blob published and journaled, never committed
    local_ws.blobs.put_bytes(data, scope=scope, dedicated_key=True)
    real_now = clock.now
    with monkeypatch.context() as patch, local_ws._governor.db.write() as session:
        patch.setattr(clock, "now", lambda: real_now() - timedelta(hours=2))
        DatasetRepository(session, scope).add_pending("killed-ingest", [digest])
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "f.bin").write_bytes(data)  # the retry reuses that blob
    original = Ingest.flush
    reports: list[Any] = []

    def flush_then_gc(self: Ingest) -> None:
        original(self)
        if not reports:  # a gc between the writes and the version's commit
            reports.append(local_ws.datasets.gc())

    monkeypatch.setattr(Ingest, "flush", flush_then_gc)
    local_ws.datasets.ingest("files", folder)
    monkeypatch.undo()
    assert digest not in reports[0].orphan_blobs
    rows = list(local_ws.datasets.read("files").iter_rows(named=True))
    assert rows[0]["digest"] == digest
    assert local_ws.blobs.get_bytes(digest, scope=scope) == data


@pytest.fixture(params=["file", "memory"])
def any_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A Workspace (SQLite) whose blob store is a local folder, or fsspec's memory."""
    extra: dict[str, Any] = {}
    if request.param == "memory":
        extra["blob_url"] = f"memory://keel-tests/{uuid.uuid4().hex}"
    workspace = connect(settings=make_settings(tmp_path / "home", **extra), principal="user:t")
    try:
        yield workspace
    finally:
        workspace.close()
        if "blob_url" in extra:
            import fsspec

            memory = fsspec.filesystem("memory")
            if memory.exists(extra["blob_url"]):
                memory.rm(extra["blob_url"], recursive=True)


def test_every_streamed_blob_is_journaled_before_its_final_name(
    any_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(12):
        (folder / f"f{i:02d}.bin").write_bytes(os.urandom(MIB // 2 + i))
    monkeypatch.setattr("keel.data._ingest._PUBLISH_BYTES", 2 * MIB)
    named: list[str] = []
    unjournaled: list[str] = []

    def check(final: str) -> None:
        if "/_keys/" not in final and "/_tmp/" not in final:
            digest = "sha256:" + final.rsplit("/", 1)[-1]
            named.append(digest)
            if not _journaled(any_ws, digest):
                unjournaled.append(digest)

    commit, replace = StorageRoot.commit, os.replace

    def committing(self: StorageRoot, temp: str, final: str, **kwargs: Any) -> bool:
        if not self._fs()[2]:  # published here at once (on a local disk: by os.replace)
            check(final)
        return commit(self, temp, final, **kwargs)

    def replacing(source: str, target: str) -> None:
        check(target)
        replace(source, target)

    monkeypatch.setattr(StorageRoot, "commit", committing)
    monkeypatch.setattr("keel.blobs._storage.os.replace", replacing)
    any_ws.datasets.ingest("files", folder)
    assert len(set(named)) == 13  # the files and the manifest part
    assert unjournaled == []


def test_a_writer_failure_leaves_no_blob_gc_cannot_find(
    any_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the failure at the first chunk of file 11: files 9 and 10 wait to be journaled
    folder = _failing_folder(tmp_path, monkeypatch, files=20, failing_write=22)
    with pytest.raises(StorageError, match="disk full"):
        any_ws.datasets.ingest("files", folder)
    monkeypatch.undo()
    scope = any_ws.ctx.project_id
    if not any_ws.blobs.defers_publication:  # published as written, before the failure
        assert list(any_ws.blobs.iter_digests(scope=scope))
    any_ws.datasets.gc(older_than_seconds=0)
    assert list(any_ws.blobs.iter_digests(scope=scope)) == []  # gc found every one


def test_the_same_bytes_streamed_and_read_whole_leave_no_orphan_key(
    local_ws: Workspace, tmp_path: Path
) -> None:
    data = os.urandom(1000).hex().encode()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "x.bin").write_bytes(data)  # streamed
    (folder / "x.txt").write_bytes(data)  # read whole, for its line count
    local_ws.datasets.ingest("files", folder)
    scope = local_ws.ctx.project_id
    root = _store_root(local_ws)
    stored = list(local_ws.blobs.iter_digests(scope=scope))
    assert len(stored) == 2  # the file and the manifest part
    assert len(_files_under(root / "_keys" / scope / "own")) == len(stored)
    assert local_ws.datasets.gc(older_than_seconds=0).orphan_keys == 0


def test_gc_sweeps_old_keys_whose_blob_never_came(local_ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.bin").write_bytes(os.urandom(MIB + 1))
    local_ws.datasets.ingest("files", folder)
    scope = local_ws.ctx.project_id
    local_ws.blobs._keyring.create_key(scope)  # as left by a kill between the two renames
    root = _store_root(local_ws)
    keys = _files_under(root / "_keys" / scope / "own")
    assert len(keys) == 3
    assert local_ws.datasets.gc().orphan_keys == 0  # younger than an hour: kept
    for key in keys:
        os.utime(key, (1, 1))
    assert local_ws.datasets.gc().orphan_keys == 1
    assert len(_files_under(root / "_keys" / scope / "own")) == 2
    rows = list(local_ws.datasets.read("files").iter_rows(named=True))
    assert local_ws.blobs.get_bytes(rows[0]["digest"], scope=scope)


def test_a_failure_stops_the_writer_and_the_publisher_for_good(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = []
    for i in range(3):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(os.urandom(MIB))
        files.append(path)
    monkeypatch.setattr("keel.data._ingest._PUBLISH_BYTES", 2 * MIB)
    third = threading.Event()
    finish, publish = BlobUpload.finish, HeldWrites.publish
    published: list[int] = []

    def finishing(self: BlobUpload, digest: str) -> bool:
        result = finish(self, digest)
        if digest == _digest(files[2].read_bytes()):
            third.set()  # the third file is written, in the next batch
        return result

    def failing_once(self: HeldWrites) -> None:
        published.append(len(self))
        if len(published) == 1:
            assert third.wait(10)
            self.discard()  # as a failed publish does
            raise StorageError("publish failed (test)")
        publish(self)

    monkeypatch.setattr(BlobUpload, "finish", finishing)
    monkeypatch.setattr(HeldWrites, "publish", failing_once)
    work = Ingest(local_ws._governor.db, local_ws.blobs, local_ws.ctx)
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            work.put_stream(handle)
    deadline = time.monotonic() + 10
    while work._error is None and time.monotonic() < deadline:  # the publisher failed
        time.sleep(0.01)
    with pytest.raises(StorageError, match="publish failed"):
        work.flush()  # the producer raises the failure: the writer must not go on
    work.close()
    assert published == [4]  # two blobs and their keys, once; the third batch not published
    assert not local_ws.blobs.exists(_digest(files[2].read_bytes()), scope=local_ws.ctx.project_id)
    assert _files_under(_store_root(local_ws) / "_tmp") == []


def _changing(monkeypatch: pytest.MonkeyPatch, rel: str, change: Callable[[Path], None]) -> None:
    """Change the file ``rel`` just after the folder source listed it, before it is read."""
    original = _folders.media_type

    def media(name: str, head: bytes) -> str:
        if name == rel:
            change(Path(_current["folder"]) / rel)
        return original(name, head)

    monkeypatch.setattr(_folders, "media_type", media)


_current: dict[str, str] = {}


def _append(data: bytes) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        with open(path, "ab") as handle:
            handle.write(data)

    return change


@pytest.mark.parametrize(
    ("rel", "change", "message"),
    [
        ("big.bin", _append(b"more"), "bytes when listed"),  # streamed, grew
        ("big.bin", lambda p: os.truncate(p, MIB), "bytes when listed"),  # streamed, shrank
        ("big.bin", _append(os.urandom(4 * MIB)), "grew over the size limit"),  # over the cap
        ("big.bin", lambda p: os.utime(p, ns=(5, 5)), "modification time"),  # touched
        ("note.txt", _append(b"three\n"), "bytes when listed"),  # read whole, grew
        ("note.txt", _append(b"x" * (3 * MIB)), "grew over the size limit"),
    ],
)
def test_a_file_changed_while_it_is_read_is_refused(
    local_ws: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rel: str,
    change: Callable[[Path], None],
    message: str,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(2 * MIB + 3))
    (folder / "note.txt").write_bytes(b"one\ntwo\n")
    _current["folder"] = str(folder.resolve())
    _changing(monkeypatch, rel, change)
    with pytest.raises(ConflictError, match=message):
        local_ws.datasets.ingest("files", _folders.FolderSource(folder, max_file_bytes=3 * MIB))
    with pytest.raises(NotFoundError):
        local_ws.datasets.get("files")
