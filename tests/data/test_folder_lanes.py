"""Small files of a folder are read and hashed on two lanes ahead of the consumer, stored in
path order; larger ones are streamed in their turn; a lane's failure stores nothing."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from keel.data import _folders
from keel.data._ingest import Ingest, PreparedStream
from keel.errors import ConflictError, NotFoundError
from keel.workspace import Workspace

MIB = 1 << 20


def _lanes() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("keel-folder-lane")]


def _mixed_folder(root: Path) -> dict[str, bytes]:
    """Files of every road: read ahead (up to 4 chunks), streamed in order (more), described
    whole (text), the same bytes twice, and empty."""
    chance = random.Random(7)
    files: dict[str, bytes] = {}
    for index in range(36):
        size = chance.choice([0, 1, 1000, MIB - 1, MIB, MIB + 5, 3 * MIB, 4 * MIB, 4 * MIB + 1])
        files[f"d{index % 3}/f{index:02d}.bin"] = os.urandom(size)
    files["d0/f99.bin"] = files["d1/f01.bin"]
    files["notes/a.txt"] = b"alpha\nbeta\n"
    files["notes/big.txt"] = b"x" * (5 * MIB)  # text over the read-ahead size
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_every_road_gives_each_file_its_own_bytes_in_path_order(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _mixed_folder(tmp_path / "in")
    prepared: list[int] = []
    real = Ingest.prepare_stream

    def counting(self: Ingest, handle: Any, *, max_chunks: int) -> PreparedStream | None:
        found = real(self, handle, max_chunks=max_chunks)
        if found is not None:
            prepared.append(found.size)
        return found

    monkeypatch.setattr(Ingest, "prepare_stream", counting)
    version = local_ws.datasets.ingest("mixed", tmp_path / "in")
    frame = local_ws.datasets.read("mixed")
    assert frame["path"].to_list() == sorted(files)  # path order, whatever road each took
    scope = local_ws.ctx.project_id
    for row in frame.iter_rows(named=True):
        data = files[row["path"]]
        assert row["size"] == len(data)
        assert row["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert local_ws.blobs.get_bytes(row["digest"], scope=scope) == data
    by_path = {r["path"]: r for r in frame.iter_rows(named=True)}
    assert by_path["notes/big.txt"]["text_lines"] == 1
    assert by_path["notes/a.txt"]["text_lines"] == 2
    # the lanes took the small binary files, never one over 4 chunks
    small = [d for r, d in files.items() if r.endswith(".bin") and len(d) <= 4 * MIB]
    assert sorted(prepared) == sorted(len(d) for d in small)
    assert not _lanes()
    assert local_ws.datasets.gc(dry_run=True, older_than_seconds=0).orphan_blobs == []
    assert local_ws.datasets.ingest("mixed", tmp_path / "in").id == version.id  # unchanged


def test_a_lane_failure_stores_nothing_and_ends_the_lanes(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mixed_folder(tmp_path / "in")
    real = Ingest.prepare_stream
    seen: list[Ingest] = []

    def failing(self: Ingest, handle: Any, *, max_chunks: int) -> PreparedStream | None:
        seen.append(self)
        if len(seen) == 9:
            raise _folders._changed("d0/f09.bin", "a test says so")
        return real(self, handle, max_chunks=max_chunks)

    monkeypatch.setattr(Ingest, "prepare_stream", failing)
    with pytest.raises(ConflictError, match="a test says so"):
        local_ws.datasets.ingest("broken", tmp_path / "in")
    with pytest.raises(NotFoundError):
        local_ws.datasets.get("broken")
    assert not _lanes()
    ingest = seen[0]
    # every buffer is back in the pool: none held by a file read ahead and never stored
    assert ingest._pooled > 0 and ingest._pool.qsize() == ingest._pooled
    # what was written before the failure is journaled: gc finds it and removes it all
    assert local_ws.datasets.gc(older_than_seconds=0).orphan_blobs
    assert local_ws.datasets.gc(dry_run=True, older_than_seconds=0).orphan_blobs == []
    assert set(local_ws.blobs.iter_digests(scope=local_ws.ctx.project_id)) == set()
