"""Small files of a folder are read, hashed and described on two lanes ahead of the consumer,
stored in path order; larger ones are streamed (or read whole to be described) in their turn; a
lane's failure stores nothing."""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from keel.data import _folders
from keel.data._ingest import Ingest, PreparedStream
from keel.errors import ConflictError, NotFoundError
from keel.workspace import Workspace

MIB = 1 << 20


def _lanes() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("keel-folder-lane")]


def _mixed_folder(root: Path) -> dict[str, bytes]:
    """Files of every road: read ahead (up to 4 chunks, described or not), streamed in order
    (more), described whole in order (a large text), the same bytes twice, and empty."""
    chance = random.Random(7)
    files: dict[str, bytes] = {}
    for index in range(36):
        size = chance.choice([0, 1, 1000, MIB - 1, MIB, MIB + 5, 3 * MIB, 4 * MIB, 4 * MIB + 1])
        files[f"d{index % 3}/f{index:02d}.bin"] = os.urandom(size)
    files["d0/f99.bin"] = files["d1/f01.bin"]
    files["notes/a.txt"] = b"alpha\nbeta\n"
    files["notes/big.txt"] = b"x" * (5 * MIB)  # text over the read-ahead size
    image = io.BytesIO()
    Image.new("RGB", (31, 17), (200, 10, 10)).save(image, format="PNG")
    files["pictures/red.png"] = image.getvalue()
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
    red = by_path["pictures/red.png"]
    assert (red["media_type"], red["width"], red["height"], red["mode"]) == (
        "image/png",
        31,
        17,
        "RGB",
    )
    # the lanes took every file of up to 4 chunks (described ones too), never a larger one
    small = [d for d in files.values() if len(d) <= 4 * MIB]
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


def test_the_lanes_buffer_budget_fits_the_pool() -> None:
    from keel.data._ingest import _STREAM_BUFFERS

    # files held ahead (one more while the oldest is stored), each up to its chunks and the
    # probe read for its end, plus the two the consumer's own streaming takes
    held = (_folders._AHEAD_FILES + 1) * (_folders._AHEAD_CHUNKS + 1) + 2
    assert held <= _STREAM_BUFFERS


def test_a_lane_sees_a_writer_failure_without_taking_it_from_the_ingest(
    local_ws: Workspace,
) -> None:
    ingest = Ingest(local_ws._governor.db, local_ws.blobs, local_ws.ctx)
    try:
        ingest._start_writer()
        for _ in range(32):  # the pool is empty: a helper must wait, or raise on failure
            ingest._take_buffer()
        failure = OSError("disk gone")
        ingest._fail(failure)
        with pytest.raises(OSError, match="disk gone") as seen:
            ingest._take_buffer(helper=True)
        assert seen.value is failure
        assert ingest._thread is not None  # a helper does not stop the writer
        with pytest.raises(OSError, match="disk gone"):
            ingest._send(None)  # the owner takes the error and stops the writer
        assert ingest._thread is None
        for again in (ingest._start_writer, ingest._take_buffer, lambda: ingest._send(None)):
            with pytest.raises(OSError, match="disk gone"):
                again()  # raised to every later caller: nothing goes on with no writer
        assert ingest._thread is None
    finally:
        ingest.close()


def test_a_writer_failure_while_lanes_wait_for_buffers_ends_the_ingest(
    local_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for index in range(8):
        (root / f"a{index}.bin").write_bytes(os.urandom(4 * MIB))
    (root / "b_big.bin").write_bytes(os.urandom(40 * MIB))  # streamed in order
    for index in range(6):
        (root / f"c{index}.bin").write_bytes(os.urandom(4 * MIB))
    written: list[int] = []
    real_write = Ingest._write_chunk

    def slow_then_failing(self: Ingest, chunk: Any) -> None:
        written.append(1)
        time.sleep(0.02)  # the lanes fill the pool and wait for buffers
        if len(written) == 24:
            raise OSError("disk gone")
        real_write(self, chunk)

    monkeypatch.setattr(Ingest, "_write_chunk", slow_then_failing)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            local_ws.datasets.ingest("x", root)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the ingest hung after its writer failed"
    assert isinstance(outcome[0], OSError) and "disk gone" in str(outcome[0])
    with pytest.raises(NotFoundError):
        local_ws.datasets.get("x")
    assert not _lanes()
