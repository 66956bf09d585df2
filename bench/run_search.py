"""Run search (filter + order + page) through the SDK, against hand-written SQL, on both stores.

Run from the repository root::

    .venv/bin/python bench/run_search.py [--runs 10000] [--repeats 25]
        [--backend sqlite --backend postgres] [--pg-admin-url postgresql+psycopg://...]
        [--plan]

Setup (not timed): one experiment created through the SDK, then ``--runs`` runs with 20 params
(``p0``..``p19``, text values ``v0``..``v9``; ``p1 = 'v1'`` holds for one run in ten) and 20
metrics (``m0``..``m19``, uniform in [0, 1); ``m3 > 0.5`` holds for about half) bulk-inserted
with SQLAlchemy Core straight into ``runs``, ``params``, ``metrics`` and ``latest_metrics``
(one value per metric, so the latest table is what logging them would have left), then
``ANALYZE``.

What is timed, warm (3 calls first), median of ``--repeats``:

- **SDK**: ``ws.runs.search("metrics.m3 > 0.5 and params.p1 = 'v1'",
  order_by="metrics.m7 DESC", max_results=100)``: about 500 matches, the first 100 returned with
  their params, tags and latest metrics.
- **floor**: the same work as hand-written SQL on the bare driver (``sqlite3`` or psycopg): one
  query with joins for the filter and the order, then the page's params, tags and latest
  metrics by id (``IN``), as the SDK returns them (the page is checked to be the SDK's).
  Also shown: that query alone, and the SQL the repository generates for the search, run
  alone on the same bare connection, which splits the SDK's time into SQL and Python.

``--plan`` prints the SQL the repository generates and its plan (``EXPLAIN QUERY PLAN`` on
SQLite, ``EXPLAIN ANALYZE`` on PostgreSQL) next to the hand-written query's plan. The target
(bench/RESULTS.md) is at most 50 ms on SQLite.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import psycopg
from sqlalchemy import Engine, Table, event, insert, text
from sqlalchemy.orm import Session

import keel
from _stores import postgres_store, sqlite_store
from keel.settings import Settings
from keel.store import RunRepository, make_engine, parse_filter, parse_order_by
from keel.store._schema import LatestMetricRow, MetricRow, ParamRow, RunRow
from keel.types import new_id
from keel.workspace import Workspace

TARGET_SQLITE_MS = 50.0
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FILTER = "metrics.m3 > 0.5 and params.p1 = 'v1'"
ORDER = "metrics.m7 DESC"
PAGE = 100
PARAMS = 20
METRICS = 20

#: The filter and order by hand, in the SDK's semantics (missing m7 last, newest first on ties).
#: Of the forms tried (EXISTS, JOINs, IN), IN-subqueries was the fastest on both stores.
QUERY = """
SELECT r.id, r.project_id, r.experiment_id, r.parent_run_id, r.name, r.status, r.user,
       r.start_time, r.end_time, r.lifecycle, r.code_version
FROM runs r
LEFT JOIN latest_metrics o ON o.run_id = r.id AND o.key = 'm7'
WHERE r.project_id = {mark} AND r.lifecycle = 'active'
  AND r.id IN (SELECT run_id FROM latest_metrics WHERE key = 'm3' AND value > 0.5)
  AND r.id IN (SELECT run_id FROM params WHERE key = 'p1' AND value = 'v1')
ORDER BY o.value DESC NULLS LAST, r.start_time DESC, r.id
LIMIT {limit}
"""
PAGE_QUERIES = (
    "SELECT run_id, key, value FROM params WHERE run_id IN ({ids})",
    "SELECT run_id, key, value FROM run_tags WHERE run_id IN ({ids})",
    "SELECT run_id, key, value, step, timestamp FROM latest_metrics WHERE run_id IN ({ids})",
)


def _table(row: Any) -> Table:
    return cast(Table, row.__table__)


def _load(engine: Engine, ws: Workspace, runs: int, seed: int) -> None:
    """Bulk-insert the runs, params and metrics with SQLAlchemy Core, in one transaction."""
    rng = random.Random(seed)
    experiment = ws.experiments.create("search-bench").id
    project = ws.ctx.project_id
    start = 1_700_000_000_000
    run_rows: list[dict[str, Any]] = []
    param_rows: list[dict[str, Any]] = []
    metric_rows: list[dict[str, Any]] = []
    for i in range(runs):
        run_id = new_id()
        run_rows.append(
            {
                "id": run_id,
                "project_id": project,
                "experiment_id": experiment,
                "parent_run_id": None,
                "name": f"run-{i}",
                "status": "FINISHED",
                "user": "user:bench",
                "start_time": start + i * 1000,
                "end_time": start + i * 1000 + 500,
                "lifecycle": "active",
                "code_version": None,
                "environment": None,
                "row_version": 1,
            }
        )
        for j in range(PARAMS):
            value = f"v{(i + j) % 10}"
            param_rows.append({"run_id": run_id, "key": f"p{j}", "value": value, "value_num": None})
        for j in range(METRICS):
            metric_rows.append(
                {
                    "run_id": run_id,
                    "key": f"m{j}",
                    "value": rng.random(),
                    "step": 0,
                    "timestamp": start + i * 1000 + j,
                }
            )
    with engine.begin() as conn:
        conn.execute(insert(_table(RunRow)), run_rows)
        conn.execute(insert(_table(ParamRow)), param_rows)
        conn.execute(insert(_table(MetricRow)), metric_rows)
        conn.execute(insert(_table(LatestMetricRow)), metric_rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def _timed_ms(action: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        action()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def _sdk(ws: Workspace, expected: int) -> Callable[[], object]:
    def once() -> object:
        page = ws.runs.search(FILTER, order_by=ORDER, max_results=PAGE)
        assert len(page.runs) == expected
        return page

    return once


def _floor(cursor_factory: Callable[[], Any], mark: str, project: str) -> tuple[Any, Any]:
    """(query alone, query + page load) on a bare DB-API connection."""
    query = QUERY.format(mark=mark, limit=PAGE + 1)

    def query_only() -> list[Any]:
        cursor = cursor_factory()
        cursor.execute(query, (project,))
        return list(cursor.fetchall())

    def with_page() -> object:
        rows = query_only()[:PAGE]
        ids = [row[0] for row in rows]
        marks = ", ".join([mark] * len(ids))
        cursor = cursor_factory()
        loaded = []
        for sql in PAGE_QUERIES:
            cursor.execute(sql.format(ids=marks), ids)
            loaded.append(cursor.fetchall())
        return rows, loaded

    return query_only, with_page


def _generated_sql(url: str, project: str) -> tuple[str, Any]:
    """The SQL and parameters the repository emits for the benchmark's search."""
    engine = make_engine(url)
    seen: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    try:
        with Session(engine) as session:
            RunRepository(session, project).search(
                where=parse_filter(FILTER),
                order_by=parse_order_by(ORDER),
                experiment_ids=None,
                include_deleted=False,
                limit=PAGE + 1,
                offset=0,
            )
    finally:
        engine.dispose()
    return next((sql, params) for sql, params in seen if "FROM runs" in sql)


def _print_plans(backend: str, url: str, project: str) -> None:
    sql, params = _generated_sql(url, project)
    print(f"\n--- {backend}: SQL generated by RunRepository.search ---\n{sql}\n{params}")
    if backend == "sqlite":
        path = url.split(":///", 1)[1]
        with closing(sqlite3.connect(path)) as conn:
            for title, statement, args in (
                ("generated", sql, params),
                ("hand-written", QUERY.format(mark="?", limit=PAGE + 1), (project,)),
            ):
                print(f"--- {backend}: EXPLAIN QUERY PLAN, {title} ---")
                for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", args):
                    print(f"  {row[3]}")
    else:
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            for title, statement, args in (
                ("generated", sql, params),
                ("hand-written", QUERY.format(mark="%s", limit=PAGE + 1), (project,)),
            ):
                print(f"--- {backend}: EXPLAIN ANALYZE, {title} ---")
                for row in conn.execute(f"EXPLAIN ANALYZE {statement}", args):
                    print(f"  {row[0]}")


def _bench(backend: str, url: str, home: Path, args: argparse.Namespace) -> list[str]:
    ws = keel.connect(settings=Settings(home=home, db_url=url), principal="user:bench")
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        _load(engine, ws, args.runs, seed=7)
        loaded = time.perf_counter() - started
        project = ws.ctx.project_id
        sdk_page = ws.runs.search(FILTER, order_by=ORDER, max_results=PAGE)
        sdk_ms = _timed_ms(_sdk(ws, PAGE), args.repeats)
        generated, params = _generated_sql(url, project)
        if backend == "sqlite":
            conn: Any = sqlite3.connect(url.split(":///", 1)[1])
            mark = "?"
        else:
            conn = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
            mark = "%s"
        with closing(conn):
            query_only, with_page = _floor(conn.cursor, mark, project)
            hand_ids = [row[0] for row in query_only()]
            assert hand_ids[:PAGE] == [run.id for run in sdk_page.runs], "floor != SDK page"
            query_ms = _timed_ms(query_only, args.repeats)
            page_ms = _timed_ms(with_page, args.repeats)
            generated_ms = _timed_ms(
                lambda: conn.cursor().execute(generated, params).fetchall(), args.repeats
            )
        if args.plan:
            _print_plans(backend, url, project)
    finally:
        engine.dispose()
        ws.close()
    matches = args.runs // 20
    rows = [
        (f"SDK ws.runs.search (100 of ~{matches:,} matches)", sdk_ms),
        ("floor: hand-written SQL + page load", page_ms),
        ("  of which: the hand-written query alone", query_ms),
        ("  for comparison: the SDK's generated query alone", generated_ms),
    ]
    lines = [
        f"{backend:9} setup: {args.runs:,} runs x {PARAMS} params x {METRICS} metrics, loaded "
        f"with Core in {loaded:.1f} s"
    ]
    lines += [f"{backend:9} {label:50}{ms:8.1f} ms" for label, ms in rows]
    lines[1] += f"   = {sdk_ms / page_ms:.1f}x floor"
    if backend == "sqlite":
        verdict = "met" if sdk_ms <= TARGET_SQLITE_MS else "NOT met"
        lines.append(f"{backend:9} target <= {TARGET_SQLITE_MS:.0f} ms on SQLite: {verdict}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument(
        "--backend", action="append", choices=["sqlite", "postgres"], help="default: both"
    )
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--plan", action="store_true", help="print the SQL and query plans")
    args = parser.parse_args()
    print(f'search "{FILTER}" order by "{ORDER}", page {PAGE}, median of {args.repeats} (warm)')
    for backend in args.backend or ["sqlite", "postgres"]:
        store = sqlite_store() if backend == "sqlite" else postgres_store(args.pg_admin_url)
        with store as (url, home):
            for line in _bench(backend, url, home, args):
                print(line, flush=True)


if __name__ == "__main__":
    main()
