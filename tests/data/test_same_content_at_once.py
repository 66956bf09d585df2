"""Two ingests of the same content at once make one version: the 'identical to the latest'
check is made again under the dataset's lock, not only before the ingest starts."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl

from keel.data import DatasetVersion
from keel.workspace import connect
from tests.conftest import make_settings


def test_two_ingests_of_the_same_content_at_once_make_one_version(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    with connect(settings=settings, principal="user:a") as first:
        first.datasets.list()  # the store exists before the race
    frame = pl.DataFrame({"n": list(range(1000)), "s": [f"row {i}" for i in range(1000)]})
    start = threading.Barrier(2)
    made: list[DatasetVersion] = []
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            with connect(settings=settings, principal="user:a") as ws:
                start.wait()
                made.append(ws.datasets.ingest("same", frame))
        except BaseException as exc:  # reported below
            errors.append(exc)

    for _ in range(3):  # a few rounds: the race is not won the same way every time
        made.clear()
        threads = [threading.Thread(target=ingest) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert len({v.id for v in made}) == 1, [v.version for v in made]
    with connect(settings=settings, principal="user:a") as ws:
        assert [v.version for v in ws.datasets.versions("same")] == [1]
