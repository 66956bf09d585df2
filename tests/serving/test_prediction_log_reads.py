"""Reading prediction logs is bounded and pageable: a limit, a stable cursor over (timestamp,
prediction id), and only the stored batches a page needs are read; over Python, REST and the
remote client alike."""

from __future__ import annotations

import base64
import inspect
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import keel
from keel.errors import InvalidInputError, NotFoundError
from keel.serving import PredictionLogger
from keel.serving._predlog import _to_table
from keel.serving._service import DEFAULT_PREDICTION_ROWS, DeploymentService, ServiceLogSink
from keel.workspace import Workspace
from tests.server._live import LiveServer, live_server

DEPLOYMENT = "churn-production"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _row(prediction_id: str, at: datetime) -> tuple[Any, ...]:
    return (prediction_id, DEPLOYMENT, "churn", 1, "primary", None, at, 1.0, '{"x": 1}', "1")


def _write(service: DeploymentService, ctx: Any, key: str, rows: Sequence[tuple[Any, ...]]) -> None:
    service.write_log_batch(ctx, DEPLOYMENT, key, _to_table(rows))


def _hourly(service: DeploymentService, ctx: Any, *, hours: int, per_batch: int) -> None:
    """One batch per hour from T0, ``per_batch`` rows a minute apart."""
    for hour in range(hours):
        rows = [
            _row(f"h{hour:02d}-{i:03d}", T0 + timedelta(hours=hour, minutes=i))
            for i in range(per_batch)
        ]
        _write(service, ctx, f"hour-{hour}", rows)


def _ids(frame: pl.DataFrame) -> list[str]:
    return [str(v) for v in frame.get_column("prediction_id").to_list()]


def _all_pages(read: Any, *, limit: int, **window: Any) -> list[pl.DataFrame]:
    pages, token = [], None
    while True:
        page = read(DEPLOYMENT, limit=limit, page_token=token, **window)
        assert page.frame.height <= limit
        pages.append(page.frame)
        token = page.next_page_token
        assert page.has_more == (token is not None)
        if token is None:
            return pages
        assert page.frame.height == limit  # only the last page may be short
        assert len(pages) < 10_000


def _log_shared_timestamps(ws: Workspace) -> list[tuple[datetime, str]]:
    """Requests of many rows each (all rows of a request share its timestamp), through the
    real logger in batches of 7 rows, so batches split a timestamp; then a late batch from a
    second writer that overlaps them in time. Returns every (timestamp, id), in order."""
    logger = PredictionLogger(
        ServiceLogSink(ws.deployments.service, ws.ctx), batch_rows=7, flush_seconds=60
    )
    expected: list[tuple[datetime, str]] = []
    requests = [(T0, 30), (T0, 25), (T0 + timedelta(microseconds=1), 1), (T0, 12)]
    requests += [(T0 + timedelta(seconds=5), 40)]
    for n, (at, size) in enumerate(requests):
        ids = [f"r{n}-{i}" for i in range(size)]
        logger.log_request(
            prediction_ids=ids,
            deployment=DEPLOYMENT,
            model="churn",
            version=1,
            variant="primary",
            request_id=f"req-{n}",
            timestamp=at,
            latency_ms=1.0,
            features=["x"],
            rows=np.arange(size, dtype=np.float64).reshape(size, 1),
            predictions=np.zeros(size, dtype=np.int64),
        )
        expected += [(at, pid) for pid in ids]
    logger.close()
    assert (logger.written, logger.dropped, logger.failed) == (len(expected), 0, 0)
    late = [_row(f"late-{i}", T0 + timedelta(seconds=i % 7)) for i in range(20)]
    _write(ws.deployments.service, ws.ctx, "second-writer", late)
    expected += [(r[6], r[0]) for r in late]
    return sorted(expected)


# --- limit ------------------------------------------------------------------------------------


def test_the_limit_is_honoured_and_the_oldest_rows_come_first(local_ws: Workspace) -> None:
    _hourly(local_ws.deployments.service, local_ws.ctx, hours=4, per_batch=20)
    everything = [f"h{h:02d}-{i:03d}" for h in range(4) for i in range(20)]
    assert _ids(local_ws.deployments.read_predictions(DEPLOYMENT, limit=7)) == everything[:7]
    page = local_ws.deployments.read_prediction_page(DEPLOYMENT, limit=7)
    assert _ids(page.frame) == everything[:7] and page.has_more
    page = local_ws.deployments.read_prediction_page(DEPLOYMENT, limit=80)
    assert _ids(page.frame) == everything and not page.has_more  # exactly all: no more
    assert _ids(local_ws.deployments.read_predictions(DEPLOYMENT, limit=None)) == everything
    # a bounded default on every face of the Python API; only limit=None reads everything
    for method in (
        local_ws.deployments.read_predictions,
        local_ws.deployments.read_prediction_page,
        DeploymentService.read_predictions,
        DeploymentService.read_prediction_page,
    ):
        assert inspect.signature(method).parameters["limit"].default == DEFAULT_PREDICTION_ROWS
    assert DEFAULT_PREDICTION_ROWS == 100_000
    window = local_ws.deployments.read_predictions(
        DEPLOYMENT, T0 + timedelta(hours=1, minutes=5), T0 + timedelta(hours=2), limit=3
    )
    assert _ids(window) == ["h01-005", "h01-006", "h01-007"]
    naive = local_ws.deployments.read_predictions(
        DEPLOYMENT, (T0 + timedelta(hours=3, minutes=18)).replace(tzinfo=None)
    )
    assert _ids(naive) == ["h03-018", "h03-019"]  # a time without a zone is UTC


def test_every_page_has_the_full_log_schema(local_ws: Workspace) -> None:
    service = local_ws.deployments.service
    old = _to_table([_row("old", T0)]).drop_columns(["score", "scores"])  # before scores
    service.write_log_batch(local_ws.ctx, DEPLOYMENT, "old", old)
    _write(service, local_ws.ctx, "new", [_row("new", T0 + timedelta(seconds=1))])
    first = local_ws.deployments.read_prediction_page(DEPLOYMENT, limit=1)
    second = local_ws.deployments.read_prediction_page(
        DEPLOYMENT, limit=1, page_token=first.next_page_token
    )
    empty = local_ws.deployments.read_prediction_page("nothing-logged")
    assert first.frame.schema == second.frame.schema == empty.frame.schema
    assert "score" in first.frame.columns and "__keel_at_us" not in first.frame.columns
    assert _ids(pl.concat([first.frame, second.frame])) == ["old", "new"]


# --- pages ------------------------------------------------------------------------------------


def test_pages_concatenate_to_the_window_when_many_rows_share_a_timestamp(ws: Workspace) -> None:
    logged = _log_shared_timestamps(ws)
    expected = [pid for _, pid in logged]
    assert len(expected) == 128 and len(set(expected)) == 128
    assert _ids(ws.deployments.read_predictions(DEPLOYMENT, limit=None)) == expected
    for limit in (1, 3, 7, 29, 128, 500):
        pages = _all_pages(ws.deployments.read_prediction_page, limit=limit)
        got = [pid for frame in pages for pid in _ids(frame)]
        assert got == expected, limit  # same rows, same order: no duplicate, no gap
        assert len(pages) == max(1, -(-len(expected) // limit)), limit
    # a window: the rows at T0 only (the microsecond after T0 is outside)
    at_t0 = _all_pages(
        ws.deployments.read_prediction_page,
        limit=4,
        since=T0,
        until=T0 + timedelta(microseconds=1),
    )
    frame = pl.concat(at_t0)
    assert frame.height == 30 + 25 + 12 + 3  # three late rows fall on T0 too
    assert _ids(frame) == [pid for at, pid in logged if at == T0]


def test_a_token_continues_after_its_row_even_if_rows_arrive_later(local_ws: Workspace) -> None:
    service = local_ws.deployments.service
    _write(service, local_ws.ctx, "a", [_row(f"a{i}", T0) for i in range(5)])
    first = local_ws.deployments.read_prediction_page(DEPLOYMENT, limit=3)
    assert _ids(first.frame) == ["a0", "a1", "a2"]
    # new rows: one at the same timestamp sorting before the cursor, one after it, one later
    _write(service, local_ws.ctx, "b", [_row("a10", T0), _row("a9", T0), _row("b", T0)])
    rest = local_ws.deployments.read_prediction_page(
        DEPLOYMENT, limit=100, page_token=first.next_page_token
    )
    assert _ids(rest.frame) == ["a3", "a4", "a9", "b"]  # "a10" sorts before the cursor "a2"
    assert rest.next_page_token is None


# --- only the batches a page needs -------------------------------------------------------------


def test_batches_outside_the_page_are_not_read(local_ws: Workspace) -> None:
    ctx, blobs = local_ws.ctx, local_ws.blobs
    digests = []
    for hour in range(10):
        before = set(blobs.iter_digests(scope=ctx.project_id))
        rows = [
            _row(f"h{hour:02d}-{i:03d}", T0 + timedelta(hours=hour, minutes=i)) for i in range(10)
        ]
        _write(local_ws.deployments.service, ctx, f"hour-{hour}", rows)
        (digest,) = set(blobs.iter_digests(scope=ctx.project_id)) - before
        digests.append(digest)
    # the batches before the window, and those after what the first page needs, are gone
    for hour in (0, 1, 6, 7, 8, 9):
        assert blobs.delete(digests[hour], scope=ctx.project_id)
    since = T0 + timedelta(hours=2)
    page = local_ws.deployments.read_prediction_page(DEPLOYMENT, since=since, limit=30)
    assert _ids(page.frame) == [f"h{h:02d}-{i:03d}" for h in (2, 3, 4) for i in range(10)]
    assert page.has_more  # known from hour 5's first row: hour 6 was never opened
    second = local_ws.deployments.read_prediction_page(
        DEPLOYMENT, since=since, limit=9, page_token=page.next_page_token
    )
    assert _ids(second.frame) == [f"h05-{i:03d}" for i in range(9)] and second.has_more
    # a window that ends before the deleted batches reads whole, without a limit
    bounded = local_ws.deployments.read_predictions(
        DEPLOYMENT, since, T0 + timedelta(hours=6), limit=None
    )
    assert bounded.height == 40
    # the deleted batches would be read were they needed: the test would notice a full read
    with pytest.raises(NotFoundError):
        local_ws.deployments.read_prediction_page(
            DEPLOYMENT, since=since, limit=10, page_token=second.next_page_token
        )
    with pytest.raises(NotFoundError):
        local_ws.deployments.read_predictions(DEPLOYMENT, limit=1)


# --- bad input --------------------------------------------------------------------------------


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("limit", [0, -5, True, 2.5, "10"])
def test_a_bad_limit_is_refused(local_ws: Workspace, limit: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"Invalid limit .*whole number, 1 or more"):
        local_ws.deployments.read_prediction_page(DEPLOYMENT, limit=limit)
    with pytest.raises(InvalidInputError, match="Invalid limit"):
        local_ws.deployments.read_predictions(DEPLOYMENT, limit=limit)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token!",
        "x" * 600,
        _token({"at": 1}),
        _token([1, "12", "p"]),
        _token([2, 12, "p"]),
        _token([1, 10**20, "p"]),
        _token([1, True, "p"]),
    ],
)
def test_a_bad_page_token_is_refused(local_ws: Workspace, token: str) -> None:
    with pytest.raises(InvalidInputError, match=r"Invalid page_token .*pass back the next_page"):
        local_ws.deployments.read_prediction_page(DEPLOYMENT, page_token=token)


# --- REST and the remote client ----------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "home") as server:
        yield server


def _path(project: str = "default") -> str:
    return f"/api/v1/projects/{project}/deployments/{DEPLOYMENT}/predictions"


def test_the_rest_route_pages_and_says_when_more_rows_exist(live: LiveServer) -> None:
    ctx = live.context_in("default")
    _hourly(live.services.deployments, ctx, hours=3, per_batch=10)
    client = live.client(live.token_for("viewer"))
    everything = [f"h{h:02d}-{i:03d}" for h in range(3) for i in range(10)]
    got: list[str] = []
    url: str | None = f"{_path()}?limit=12&format=csv"
    links = 0
    while url is not None:
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        got += [line.split(",")[0] for line in answer.text.splitlines()[1:]]
        token = answer.headers.get("x-keel-next-page-token")
        link = answer.headers.get("link")
        assert (token is None) == (link is None)
        if link is None:
            url = None
        else:
            assert link.endswith('>; rel="next"') and f"page_token={token}" in link
            url = link[1 : link.index(">")]
            links += 1
    assert got == everything and links == 2  # pages of 12, 12 and 6 rows
    # the default is bounded, and the last page says nothing more exists
    whole = client.get(_path())
    assert whole.status_code == 200 and "x-keel-next-page-token" not in whole.headers
    assert pl.read_parquet(whole.content).height == 30


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit"),
        ("limit=2000001", "limit"),
        ("limit=ten", "limit"),
        ("page_token=bm9wZQ", "Invalid page_token"),
        ("page_token=" + "x" * 600, "page_token"),
    ],
)
def test_the_rest_route_refuses_bad_limits_and_tokens(
    live: LiveServer, query: str, message: str
) -> None:
    answer = live.client(live.token_for("viewer")).get(f"{_path()}?{query}")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "INVALID_INPUT"
    assert message in answer.json()["error"]["message"]


def test_the_openapi_document_describes_the_paging(live: LiveServer) -> None:
    doc = live.client().get("/openapi.json").json()
    operation = doc["paths"]["/api/v1/projects/{project}/deployments/{deployment}/predictions"]
    params = {p["name"]: p for p in operation["get"]["parameters"]}
    limit = params["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 2_000_000, 100_000)
    assert "X-Keel-Next-Page-Token" in params["limit"]["description"]
    assert "previous page" in params["page_token"]["description"]
    assert {"since", "until", "format"} <= set(params)
    ok = operation["get"]["responses"]["200"]
    assert {"X-Keel-Next-Page-Token", "Link"} <= set(ok["headers"])
    assert set(ok["content"]) == {"application/vnd.apache.parquet", "text/csv"}
    # the REST bounds are the Python API's
    from keel.server import _deployment_routes as routes
    from keel.serving._service import MAX_PAGE_TOKEN_CHARS

    assert routes.DEFAULT_PREDICTION_ROWS == DEFAULT_PREDICTION_ROWS
    assert params["page_token"]["schema"]["anyOf"][0]["maxLength"] == MAX_PAGE_TOKEN_CHARS


def test_the_remote_client_pages_like_the_local_one(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keel.workspace import _remote_serving

    ctx = live.context_in("default")
    _write(live.services.deployments, ctx, "same", [_row(f"s{i:02d}", T0) for i in range(9)])
    _hourly(live.services.deployments, ctx, hours=2, per_batch=5)
    # h00-000 is logged at T0 too, and sorts before the s rows
    expected = ["h00-000", *(f"s{i:02d}" for i in range(9))]
    expected += [f"h{h:02d}-{i:03d}" for h in (0, 1) for i in range(5)][1:]
    with keel.connect(live.url, token=live.token_for("viewer", name="user:remote")) as remote:
        pages = _all_pages(remote.deployments.read_prediction_page, limit=4)
        assert [pid for frame in pages for pid in _ids(frame)] == expected
        assert _ids(remote.deployments.read_predictions(DEPLOYMENT, limit=5)) == expected[:5]
        # larger reads than one request carries go in several requests, seamlessly
        monkeypatch.setattr(_remote_serving, "_REQUEST_ROWS", 3)
        assert _ids(remote.deployments.read_predictions(DEPLOYMENT, limit=None)) == expected
        page = remote.deployments.read_prediction_page(DEPLOYMENT, limit=8)
        assert _ids(page.frame) == expected[:8] and page.has_more
        rest = remote.deployments.read_prediction_page(
            DEPLOYMENT, limit=100, page_token=page.next_page_token
        )
        assert _ids(rest.frame) == expected[8:] and not rest.has_more
        with pytest.raises(InvalidInputError, match="Invalid page_token"):
            remote.deployments.read_prediction_page(DEPLOYMENT, page_token="bm9wZQ")
        with pytest.raises(InvalidInputError, match="Invalid limit"):
            remote.deployments.read_predictions(DEPLOYMENT, limit=0)
