"""Metric ingest through the SDK's batch call, against its floor, on SQLite and PostgreSQL.

Run from the repository root::

    .venv/bin/python bench/tracking_ingest.py [--metrics 100000] [--batch 10000] [--repeats 5]
        [--backend sqlite --backend postgres] [--pg-admin-url postgresql+psycopg://...]

What is timed:

- **SDK**: ``run.log_batch(chunk)`` of an ``ActiveRun`` for 100,000 prebuilt ``Metric`` objects
  (100 keys, steps 0..999, explicit timestamps), in calls of ``--batch`` metrics (default
  10 calls of 10,000). Each call is the whole governed write: validation, authorization, one
  transaction with the metric rows, the ``latest_metrics`` upsert and the hash-chained audit
  event, commit.
- **floor**: what the brief calls the floor, the same rows written by bare SQLAlchemy into the
  same ``metrics`` table of the same store: ``conn.execute(insert(MetricRow.__table__), rows)``
  with a prebuilt list of dicts, in one transaction (building the dicts is not timed).
- **driver**: for reference, the bare driver on the same rows, prebuilt tuples: ``sqlite3``'s
  ``executemany`` (one transaction), or psycopg's ``COPY ... FROM STDIN`` (one transaction).

SQLite runs in a temporary KEEL_HOME; PostgreSQL in a temporary database created on the server
at ``--pg-admin-url`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and
dropped at the end. Each figure is the median of ``--repeats`` runs (a fresh run each time, the
tables growing as they would in use; the three paths take turns within each repeat). The target
(bench/RESULTS.md) is at least 200,000 metrics/s through the SDK on SQLite.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, insert

import keel
from _stores import postgres_store, sqlite_store
from keel.settings import Settings
from keel.store import make_engine
from keel.store._schema import MetricRow
from keel.tracking import Metric
from keel.workspace import Workspace

TARGET_SQLITE = 200_000
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
KEYS = 100


def _points(count: int) -> list[tuple[str, float, int, int]]:
    return [(f"m{i % KEYS:02d}", i * 0.001, i // KEYS, 1_700_000_000_000 + i) for i in range(count)]


def _interleaved(
    count: int, paths: list[Callable[[], float]], repeats: int
) -> list[tuple[float, float]]:
    """(metrics per second, seconds) of the median timing of each path.

    The paths take turns within each repeat, so that a growing database or a busy neighbour on
    the machine weighs on all of them alike.
    """
    timings: list[list[float]] = [[] for _ in paths]
    for _ in range(repeats):
        for path, seen in zip(paths, timings, strict=True):
            seen.append(path())
    return [(count / statistics.median(seen), statistics.median(seen)) for seen in timings]


def _sdk(ws: Workspace, metrics: list[Metric], batch: int) -> Callable[[], float]:
    def once() -> float:
        run = ws.runs.start(experiment="bench", capture_env=False)
        start = time.perf_counter()
        for first in range(0, len(metrics), batch):
            run.log_batch(metrics[first : first + batch])
        return time.perf_counter() - start

    return once


def _run_id(ws: Workspace) -> str:
    """A run to hang the floor's rows on (the foreign key needs one)."""
    return ws.runs.start(experiment="bench-floor", capture_env=False).id


def _core_floor(engine: Engine, ws: Workspace, points: list[tuple[str, float, int, int]]) -> Any:
    table = cast(Table, MetricRow.__table__)

    def once() -> float:
        run_id = _run_id(ws)
        rows = [
            {"run_id": run_id, "key": k, "value": v, "step": s, "timestamp": t}
            for k, v, s, t in points
        ]
        start = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
        return time.perf_counter() - start

    return once


def _sqlite_driver(path: Path, ws: Workspace, points: list[tuple[str, float, int, int]]) -> Any:
    sql = "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)"

    def once() -> float:
        run_id = _run_id(ws)
        rows = [(run_id, k, v, s, t) for k, v, s, t in points]
        with closing(sqlite3.connect(path, isolation_level=None, timeout=60)) as conn:
            conn.execute("PRAGMA synchronous=NORMAL")
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
            return time.perf_counter() - start

    return once


def _pg_driver(engine: Engine, ws: Workspace, points: list[tuple[str, float, int, int]]) -> Any:
    def once() -> float:
        run_id = _run_id(ws)
        rows = [(run_id, k, v, s, t) for k, v, s, t in points]
        with engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            start = time.perf_counter()
            with raw.transaction(), raw.cursor() as cursor:
                copy_sql = 'COPY metrics (run_id, key, value, step, "timestamp") FROM STDIN'
                with cursor.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            return time.perf_counter() - start

    return once


def _bench(backend: str, url: str, home: Path, args: argparse.Namespace) -> list[str]:
    points = _points(args.metrics)
    metrics = [Metric(k, v, s, t) for k, v, s, t in points]
    ws = keel.connect(settings=Settings(home=home, db_url=url), principal="user:bench")
    engine = make_engine(url)
    try:
        ws.runs.start(experiment="bench", capture_env=False).log_batch(metrics[:100])  # warm up
        calls = -(-args.metrics // args.batch)
        if backend == "sqlite":
            driver_name = "sqlite3 executemany, tuples"
            driver = _sqlite_driver(Path(url.split(":///", 1)[1]), ws, points)
        else:
            driver_name = "psycopg COPY, tuples"
            driver = _pg_driver(engine, ws, points)
        sdk, floor, raw = _interleaved(
            args.metrics,
            [_sdk(ws, metrics, args.batch), _core_floor(engine, ws, points), driver],
            args.repeats,
        )
    finally:
        engine.dispose()
        ws.close()
    lines = [
        f"{backend:9} SDK run.log_batch ({calls} x {args.batch:,}){'':6}"
        f"{sdk[0]:>12,.0f} /s {sdk[1]:8.3f} s",
        f"{backend:9} floor: SQLAlchemy Core executemany{'':5}{floor[0]:>12,.0f} /s "
        f"{floor[1]:8.3f} s   SDK = {sdk[0] / floor[0]:.0%} of floor",
        f"{backend:9} driver: {driver_name:32}{raw[0]:>12,.0f} /s {raw[1]:8.3f} s",
    ]
    if backend == "sqlite":
        verdict = "met" if sdk[0] >= TARGET_SQLITE else "NOT met"
        lines.append(
            f"{backend:9} target >= {TARGET_SQLITE:,} metrics/s through the SDK: {verdict}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000, help="metrics per log_batch call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--backend", action="append", choices=["sqlite", "postgres"], help="default: both"
    )
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgres"]
    print(f"{args.metrics:,} metrics, {KEYS} keys, median of {args.repeats}")
    for backend in backends:
        store = sqlite_store() if backend == "sqlite" else postgres_store(args.pg_admin_url)
        with store as (url, home):
            for line in _bench(backend, url, home, args):
                print(line, flush=True)


if __name__ == "__main__":
    main()
