"""A viewer cannot make the server load unbounded prediction logs."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest

from keel import clock
from keel.errors import InvalidInputError
from keel.ui import _predictions
from keel.ui._predictions import MAX_HOURS, _windows, summarize_predictions
from tests.server._live import LiveServer
from tests.ui.conftest import sign_in

BASE = "/ui/p/default"


class _Logs:
    """Prediction logs of one deployment: ``per_hour`` rows in each of the last 200 hours."""

    def __init__(self, per_hour: int) -> None:
        now = clock.now()
        stamps = [now - timedelta(minutes=30 + 60 * h) for h in range(200) for _ in range(per_hour)]
        self.frame = pl.DataFrame(
            {
                "timestamp": stamps,
                "request_id": [str(i) for i in range(len(stamps))],
                "variant": ["primary"] * len(stamps),
                "version": [1] * len(stamps),
                "latency_ms": [1.0] * len(stamps),
                "prediction": [0] * len(stamps),
            }
        ).sort("timestamp")
        self.read = 0
        self.calls: list[tuple[datetime, datetime | None]] = []

    def read_predictions(
        self,
        ctx: Any,
        deployment: str,
        *,
        since: datetime,
        until: datetime | None,
        limit: int | None = None,
    ) -> pl.DataFrame:
        self.calls.append((since, until))
        found = self.frame.filter(pl.col("timestamp") >= since)
        if until is not None:
            found = found.filter(pl.col("timestamp") < until)
        if limit is not None:  # as the service: the oldest rows of the window first
            found = found.head(limit)
        self.read += found.height
        return found


def _viewer(logs: _Logs) -> Any:
    return SimpleNamespace(ctx=None, ui=SimpleNamespace(deployments=logs))


def test_windows_cover_the_hours_newest_first_from_a_minute() -> None:
    assert _windows(1) == [(1, 0), (3, 1), (7, 3), (15, 7), (31, 15), (60, 31)]  # minutes
    spans = _windows(MAX_HOURS)
    assert spans[0] == (1, 0) and spans[-1][0] == MAX_HOURS * 60 and len(spans) <= 15
    assert all(a[0] == b[1] for a, b in itertools.pairwise(spans))


def test_a_busy_deployment_is_summarized_by_its_newest_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # before: the newest window was a whole hour, read oldest first, so a deployment logging
    # more than MAX_ROWS an hour was summarized by rows up to an hour old
    monkeypatch.setattr(_predictions, "MAX_ROWS", 50)
    logs = _Logs(per_hour=0)
    now = clock.now()
    stamps = [now - timedelta(seconds=10 * i) for i in range(360)]  # an hour, 6 a minute
    logs.frame = pl.DataFrame(
        {
            "timestamp": stamps,
            "request_id": [str(i) for i in range(360)],
            "variant": ["primary"] * 360,
            "version": [1] * 360,
            "latency_ms": [1.0] * 360,
            "prediction": [0] * 360,
        }
    ).sort("timestamp")
    summarize_predictions(_viewer(logs), "api", hours=1)
    oldest_read = min(since for since, _ in logs.calls)
    assert now - oldest_read < timedelta(minutes=16)  # the newest minutes, not the hour


def test_reading_stops_once_enough_rows_are_in_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_predictions, "MAX_ROWS", 50)
    logs = _Logs(per_hour=10)
    summary = summarize_predictions(_viewer(logs), "api", hours=MAX_HOURS)
    assert summary.rows == 50 and logs.read < 200  # not the 1,680 rows of the week
    assert len(logs.calls) < len(_windows(MAX_HOURS))
    everything = summarize_predictions(_viewer(_Logs(per_hour=1)), "api", hours=24)
    assert everything.rows == 24


def test_hours_are_capped() -> None:
    with pytest.raises(InvalidInputError, match="hours"):
        summarize_predictions(_viewer(_Logs(per_hour=1)), "api", hours=MAX_HOURS + 1)


def test_the_page_refuses_a_look_back_over_the_cap(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("viewer"))
    answer = client.get(f"{BASE}/monitoring/deployments/churn-api", params={"hours": 2160})
    assert answer.status_code == 400
    assert client.get(f"{BASE}/monitoring/deployments/churn-api?hours=168").status_code == 200
