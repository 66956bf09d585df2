"""Two ``keel apply`` processes at once, on SQLite and on PostgreSQL: one waits, state is whole."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from keel.store import make_engine, upgrade
from keel.workspace import connect
from tests.cicd._project import CORE, write_project
from tests.conftest import PG_ADMIN_URL, SKIP_PG, make_settings

CHILD = """
import json, os, sys, time, types
from pathlib import Path
import keel.cicd._apply as apply_module
from keel.cicd import LiveEffects, load_project
from keel.settings import Settings
from keel.workspace import connect

home, url, folder, signals = sys.argv[1:5]
signals = Path(signals)
me = str(os.getpid())
waited = []


def signal(name):  # atomically, so the parent never reads a half-written file
    (signals / f".{name}").write_text(me)
    (signals / f".{name}").replace(signals / name)


def wait_for(name):
    while not (signals / name).exists():
        time.sleep(0.01)


def lock_busy_sleep(seconds):
    # apply sleeps only while another apply holds the lock: say so once, then keep waiting
    if not waited:
        waited.append(True)
        signal(f"waiting-{me}")
    time.sleep(seconds)


apply_module.time = types.SimpleNamespace(monotonic=time.monotonic, sleep=lock_busy_sleep)


class Holding(LiveEffects):
    def apply(self, change):
        if not (signals / f"holding-{me}").exists():
            signal(f"holding-{me}")
            wait_for("release")  # keep the lock until the other apply is seen waiting for it
        return super().apply(change)


ws = connect(settings=Settings(home=Path(home), db_url=url or None), principal="user:tester")
project = load_project(Path(folder) / "keel.yaml")
signal(f"ready-{me}")
wait_for("go")
result = ws.project_file.service.apply(
    ws.ctx, project, effects=Holding(ws, root=Path(folder)), wait=120
)
print(json.dumps({"summary": result.plan.to_dict()["summary"], "waited": bool(waited)}))
ws.close()
"""


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keel.db'}"
        return
    if SKIP_PG:
        pytest.skip("KEEL_TEST_SKIP_POSTGRES=1")
    name = f"keel_cicd_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _wait_for(
    signals: Path,
    prefix: str,
    count: int,
    children: list[subprocess.Popen[str]],
    *,
    besides: str = "",
) -> None:
    """Until ``count`` signal files ``prefix<pid>`` exist, other than ``besides``'s.

    A child that died meanwhile fails the test at once.
    """
    deadline = time.monotonic() + 240
    while len([p for p in signals.glob(f"{prefix}*") if p.read_text() != besides]) < count:
        for child in children:
            if child.poll() is not None:
                _, err = child.communicate()
                pytest.fail(f"a child apply ended early (exit {child.returncode}): {err[-2000:]}")
        assert time.monotonic() < deadline, f"no {prefix} signal within 240 s"
        time.sleep(0.02)


def test_two_concurrent_applies_serialise_and_leave_one_whole_state(
    store_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    write_project(folder, CORE)
    home = tmp_path / "home"
    connect(settings=make_settings(home, store_url), principal="user:tester").close()
    signals = tmp_path / "signals"
    signals.mkdir()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), store_url, str(folder), str(signals)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    _wait_for(signals, "ready-", 2, children)  # both connected, project loaded
    (signals / "go").write_text("go")
    # one holds the lock mid-apply; the other is seen waiting for it; then the first goes on
    _wait_for(signals, "holding-", 1, children)
    holder = next(signals.glob("holding-*")).read_text()
    _wait_for(signals, "waiting-", 1, children, besides=holder)
    (signals / "release").write_text("release")
    outcomes = [child.communicate(timeout=300) for child in children]
    for child, (_, err) in zip(children, outcomes, strict=True):
        assert child.returncode == 0, err
    results = sorted((json.loads(out) for out, _ in outcomes), key=lambda r: r["summary"]["create"])
    assert [r["summary"] for r in results] == [
        {"create": 0, "update": 0, "delete": 0, "unchanged": 14},
        {"create": 14, "update": 0, "delete": 0, "unchanged": 0},
    ]
    # the one that found nothing to do waited for the lock the other held
    assert results[0]["waited"] is True
    with connect(settings=make_settings(home, store_url), principal="user:tester") as ws:
        assert len(ws.project_file.service.current(ws.ctx)) == 14
        creates = [e for e in ws.audit.events(limit=10_000) if e.action == "project.apply.create"]
        assert len(creates) == 14
        assert ws.audit.verify().ok
        assert ws.project_file.service.lock_holder(ws.ctx) is None
        assert sorted(t.name for t in ws.pipelines.triggers()) == ["nightly", "on-data"]
