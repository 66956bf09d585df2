"""A killed ingest leaves no version, and ``keel gc`` removes exactly its orphaned blobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select

from keel import clock
from keel.errors import NotFoundError
from keel.store import DatasetRepository
from keel.store._schema_data import DatasetPendingBlobRow
from keel.workspace import connect
from tests.conftest import make_settings

CHILD = textwrap.dedent(
    """
    import sys, time
    import polars as pl
    from keel.data import SourceBatch
    from keel.settings import Settings
    from keel.workspace import connect

    class Slow:
        def describe(self):
            return {"kind": "frame"}
        def batches(self, sink):
            for i in range(1000):
                yield SourceBatch(pl.DataFrame({"i": list(range(i * 1000, (i + 1) * 1000))}))
                print("batch", i, flush=True)
                time.sleep(0.05)

    ws = connect(settings=Settings(home=sys.argv[1]), principal="user:tester")
    ws.datasets.ingest("killed", Slow(), part_rows=1000)
    """
)


def test_killed_ingest_leaves_no_version_and_gc_removes_its_blobs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with connect(settings=make_settings(home), principal="user:tester") as ws:
        kept = ws.datasets.ingest("kept", pl.DataFrame({"x": [1, 2, 3]}))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    for _ in range(6):  # the reader runs a batch ahead of the writer
        assert child.stdout.readline().startswith("batch")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    with connect(settings=make_settings(home), principal="user:tester") as ws:
        with pytest.raises(NotFoundError):
            ws.datasets.get("killed")
        scope = ws.ctx.project_id
        stored = set(ws.blobs.iter_digests(scope=scope))
        assert len(stored) >= 4  # the kept version's part and the killed ingest's parts
        young = ws.datasets.gc(dry_run=True)  # too recent to collect by default
        assert young.orphan_blobs == []
        preview = ws.datasets.gc(dry_run=True, older_than_seconds=0)
        assert len(preview.orphan_blobs) >= 3 and kept.parts[0].digest not in preview.orphan_blobs
        assert set(ws.blobs.iter_digests(scope=scope)) == stored  # a dry run deletes nothing
        done = ws.datasets.gc(older_than_seconds=0)
        assert done.deleted == len(preview.orphan_blobs)
        left = set(ws.blobs.iter_digests(scope=scope))
        assert left == stored - set(preview.orphan_blobs)
        assert ws.datasets.read("kept")["x"].to_list() == [1, 2, 3]
        assert ws.datasets.gc(older_than_seconds=0).orphan_blobs == []


def test_gc_cli_reports_in_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with connect(settings=make_settings(home)) as ws:  # the OS user, as the CLI acts
        ws.datasets.ingest("kept", pl.DataFrame({"x": [1]}))
    out = subprocess.run(
        [sys.executable, "-m", "keel.cli", "--home", str(home), "gc", "--dry-run", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"dry_run": true' in out.stdout


def test_a_digest_recorded_but_never_written_is_not_reported_and_its_record_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ingest records each digest before writing its blob; killed in between, it leaves a
    # record with nothing stored. gc used to list it as an orphan blob it then could not
    # delete (CI: a preview of 6, deleted 5).
    home = tmp_path / "home"
    with connect(settings=make_settings(home), principal="user:tester") as ws:
        scope = ws.ctx.project_id
        written = ws.blobs.put_bytes(b"written, never committed", scope=scope).digest
        never = "sha256:" + "0" * 64
        real_now = clock.now
        with monkeypatch.context() as patch, ws._governor.db.write() as session:
            patch.setattr(clock, "now", lambda: real_now() - timedelta(hours=2))
            DatasetRepository(session, scope).add_pending("killed", [written, never])
        preview = ws.datasets.gc(dry_run=True)
        assert preview.orphan_blobs == [written]
        done = ws.datasets.gc()
        assert done.orphan_blobs == [written] and done.deleted == 1
        assert list(ws.blobs.iter_digests(scope=scope)) == []
        with ws._governor.db.read() as session:
            assert session.execute(select(DatasetPendingBlobRow.id)).all() == []
