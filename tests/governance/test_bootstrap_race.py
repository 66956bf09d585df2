"""Connections opening an empty team store at the same moment: one creates the default
project, the others take it (PostgreSQL refuses the second project of the same name)."""

from __future__ import annotations

import threading
from pathlib import Path

from keel.workspace import connect
from tests.conftest import make_settings, reset_postgres


def test_first_connections_at_once_all_open_the_one_default_project(
    tmp_path: Path, pg_url: str
) -> None:
    settings = make_settings(tmp_path / "home", pg_url)
    reset_postgres(pg_url)  # the session's database, emptied by earlier tests' data
    connect(settings=settings, principal="user:tester").close()  # the home's keys
    reset_postgres(pg_url)  # an empty store again
    ready = threading.Barrier(4)
    errors: list[BaseException] = []
    projects: list[str] = []

    def open_store() -> None:
        try:
            ready.wait()
            with connect(settings=settings, principal="user:tester") as ws:
                projects.append(ws.ctx.project_id)
        except BaseException as exc:  # raised again below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(projects) == 4 and len(set(projects)) == 1
