"""Long curves are reduced in the database to the same min/max buckets as in Python."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from keel.errors import PermissionDeniedError
from keel.governance import Context
from keel.tracking import Metric
from keel.ui._charts import align_curves
from keel.ui._curves import curves_of
from keel.workspace import Workspace


def _viewer(ws: Workspace, ctx: Context | None = None) -> SimpleNamespace:
    services = SimpleNamespace(runs=ws.runs._s)
    return SimpleNamespace(ctx=ctx or ws.ctx, ui=SimpleNamespace(services=services))


def test_database_buckets_match_the_python_reduction(ws: Workspace) -> None:
    local_ws = ws
    runs = []
    for k in range(3):
        with local_ws.runs.start(experiment="long", capture_env=False) as run:
            metrics = [Metric("loss", math.sin(s / 50) + k, step=s) for s in range(3_000)]
            metrics.append(Metric("loss", float("nan"), step=3_000))
            local_ws.runs.log_batch(run.id, metrics=metrics)
        runs.append(local_ws.runs.get(run.id))
    reduced = curves_of(_viewer(local_ws), runs, "loss", buckets=100)
    assert reduced.downsampled and len(reduced.x) == 200 and reduced.points_in == 3 * 3_001
    expected = align_curves(
        {
            r.id: [(m.step, m.value) for m in local_ws.runs.metric_history(r.id, "loss")]
            for r in runs
        },
        buckets=100,
    )
    assert reduced.x == expected.x
    for run in runs:
        got, want = reduced.series[run.id], expected.series[run.id]
        for b in range(100):  # the same min and max per bucket (their order may differ)
            pair = sorted(v for v in got[2 * b : 2 * b + 2] if v is not None)
            assert pair == pytest.approx(
                sorted(v for v in want[2 * b : 2 * b + 2] if v is not None)
            )
    short = curves_of(_viewer(local_ws), runs, "loss", buckets=5_000)
    assert not short.downsampled and len(short.x) == 3_001


def test_curves_need_the_run_read_permission(local_ws: Workspace) -> None:
    with local_ws.runs.start(experiment="long", capture_env=False) as run:
        local_ws.runs.log_metrics(run.id, {"loss": 1.0})
    nobody = Context("user:nobody", local_ws.ctx.project_id, "default", frozenset())
    with pytest.raises(PermissionDeniedError):
        curves_of(_viewer(local_ws, nobody), [local_ws.runs.get(run.id)], "loss")


def test_buckets_are_floored_on_every_engine(ws: Workspace) -> None:
    # Steps 0..1600 in 1000 buckets: step 7 is at 7 * 1000 / 1600 = 4.375 and step 700 at
    # 437.5, which true division and a rounding cast would put in buckets 4 and 438.
    with ws.runs.start(experiment="floor", capture_env=False) as run:
        ws.runs.log_batch(run.id, metrics=[Metric("m", float(s), step=s) for s in range(1_601)])
    curves = ws.runs._s.metric_curves(ws.ctx, [run.id], "m", buckets=500)
    assert curves.reduced and curves.points == 1_601
    assert curves.low == 0.0 and curves.width == pytest.approx(3.2)
    pairs = curves.buckets[run.id]
    # bucket b holds the steps s with floor(s * 500 / 1600) == b, the last also step 1600
    for b in (0, 1, 218, 219, 437, 499):
        steps = [s for s in range(1_601) if min(s * 500 // 1_600, 499) == b]
        assert pairs[b] == (float(min(steps)), float(max(steps))), b


def test_metric_curves_bad_input_and_other_projects(ws: Workspace) -> None:
    from keel.errors import InvalidInputError

    with ws.runs.start(experiment="x", capture_env=False) as run:
        ws.runs.log_metrics(run.id, {"loss": 1.0})
    with pytest.raises(InvalidInputError, match="buckets"):
        ws.runs._s.metric_curves(ws.ctx, [run.id], "loss", buckets=0)
    other = Context(ws.ctx.principal, "another-project", "default", ws.ctx.roles)
    assert ws.runs._s.metric_curves(other, [run.id], "loss").history == {run.id: []}
