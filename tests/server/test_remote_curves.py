"""Metric curves of several runs: the same points and buckets locally and over HTTP."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

import keel
from keel.errors import InvalidInputError
from keel.tracking import Metric
from keel.workspace import Workspace
from tests.conftest import make_settings
from tests.server._live import live_server


@pytest.fixture(params=["local", "remote"])
def either(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    if request.param == "local":
        workspace = keel.connect(settings=make_settings(tmp_path / "home"), principal="user:t")
        try:
            yield workspace
        finally:
            workspace.close()
        return
    with live_server(tmp_path / "home") as server:
        workspace = keel.connect(server.url, token=server.token_for("admin", name="user:t"))
        try:
            yield workspace
        finally:
            workspace.close()


def _run(ws: Workspace, values: list[float]) -> str:
    with ws.runs.start(experiment="curves") as run:
        run.log_batch([Metric("loss", v, step) for step, v in enumerate(values)])
    return run.id


def test_short_curves_come_back_whole_with_nan_kept(either: Workspace) -> None:
    a = _run(either, [1.0, 0.5, math.nan, 0.25])
    b = _run(either, [2.0, 1.0])
    curves = either.runs.metric_curves([a, b], "loss", buckets=10)
    assert not curves.reduced and curves.points == 6
    assert curves.history[b] == [(0, 2.0), (1, 1.0)]
    steps = [step for step, _ in curves.history[a]]
    assert steps == [0, 1, 2, 3] and math.isnan(curves.history[a][2][1])


def test_long_curves_are_reduced_to_min_and_max_per_bucket(either: Workspace) -> None:
    run_id = _run(either, [float(i % 10) for i in range(200)])  # a saw tooth over 200 steps
    curves = either.runs.metric_curves([run_id], "loss", buckets=4)
    assert curves.reduced and curves.points == 200
    assert curves.low == 0.0 and curves.width == pytest.approx(199 / 4)
    assert curves.buckets[run_id] == [(0.0, 9.0)] * 4


def test_too_many_runs_are_refused_with_the_limit(either: Workspace) -> None:
    with pytest.raises(InvalidInputError):
        either.runs.metric_curves([f"r{i}" for i in range(1001)], "loss")
