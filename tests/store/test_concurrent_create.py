"""Several processes opening the same fresh store at once all get the one store: its schema is
created once (the others wait, then find it current) and its master key is the winner's."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from keel.store import current_revisions, make_engine, required_heads, upgrade
from tests.conftest import PG_ADMIN_URL, SKIP_PG

_CHILD = r"""
import os, sys
import polars as pl
from keel.settings import Settings
from keel.workspace import connect
from keel.workspace._connect import load_master_key
with connect(settings=Settings(home=sys.argv[1]), principal="user:racer") as ws:
    ws.datasets.ingest("d", pl.DataFrame({"pid": [os.getpid()]}))
    print(ws.ctx.project_id, load_master_key(Settings(home=sys.argv[1]), create=False).fingerprint)
"""

_READ = r"""
import sys
from keel.settings import Settings
from keel.workspace import connect
with connect(settings=Settings(home=sys.argv[1]), principal="user:racer", create=False) as ws:
    print(*sorted(ws.datasets.read("d", v.version)["pid"][0] for v in ws.datasets.versions("d")))
"""


def test_processes_opening_one_fresh_local_store_at_once_all_succeed(tmp_path: Path) -> None:
    for trial in range(3):
        home = tmp_path / f"home{trial}"
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(home)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [racer.communicate(timeout=120) for racer in racers]
        failed = [err for racer, (_, err) in zip(racers, results, strict=True) if racer.returncode]
        assert failed == [], failed[0][-2000:]
        seen = {tuple(out.split()) for out, _ in results}
        # one default project (not one per process), under the one master key on disk
        assert len(seen) == 1, seen
        ((_, fingerprint),) = seen
        assert fingerprint.startswith("aes256:")
        # every process's dataset version was written under that key and reads back
        read = subprocess.run(
            [sys.executable, "-c", _READ, str(home)], capture_output=True, text=True, check=True
        )
        assert read.stdout.split() == sorted(str(racer.pid) for racer in racers)


def test_concurrent_upgrades_of_an_empty_postgres_database_create_it_once() -> None:
    if SKIP_PG:
        return
    name = f"keel_race_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    errors: list[BaseException] = []
    engines = [make_engine(url) for _ in range(3)]

    def run(engine: object) -> None:
        try:
            upgrade(engine)  # type: ignore[arg-type]
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        assert current_revisions(engines[0]) == required_heads()
    finally:
        for engine in engines:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
