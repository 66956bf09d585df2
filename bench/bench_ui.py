"""Web UI speed at MLflow's pain point: many runs, many metrics, long curves, in a real browser.

Run from the repository root::

    .venv/bin/python bench/bench_ui.py [--runs 10000] [--metrics 50] [--steps 10000]
        [--compare 20] [--repeats 7]

Setup (not timed): a fresh SQLite store; one experiment made through the SDK; ``--runs`` runs
with 5 params and ``--metrics`` metrics each, bulk-inserted with SQLAlchemy Core into ``runs``,
``params``, ``metrics`` and ``latest_metrics`` (what logging them would have left); ``--compare``
of those runs also get a ``--steps``-step history of the metric ``curve``. Then ``keel server``'s
app runs in uvicorn on a thread and Debian's Chromium (headless, via playwright) signs in.

Timed, median of ``--repeats`` page loads, from the browser's Navigation Timing:

- **runs page** (``/ui/p/default/runs``, 50 rows, 12 metric columns): time to first byte
  (``responseStart - requestStart``) and fully rendered (``loadEventEnd``: HTML parsed,
  styles and scripts loaded and run). Targets: 200 ms and 1 s.
- **compare** of ``--compare`` runs with their ``--steps``-step curves overlaid: until the
  chart is drawn (the ``keel:charts`` performance mark keel.js sets after uPlot has drawn,
  or ``loadEventEnd`` if later). Target: 1.5 s. The server downsamples each curve to at most
  1,000 points (min/max per bucket), so the page carries ~20,000 points, not 200,000.

Floor: the same runs page fetched by a bare HTTP client (no browser), and ``ws.runs.search``
alone for the 50 rows, which is the service work the page cannot avoid; and the compare page
fetched bare (the server's share of its time; the rest is the browser parsing ~0.5 MB and
uPlot drawing 20 series).
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from dataclasses import replace
from typing import Any

import httpx
from sqlalchemy import insert

from _stores import sqlite_store
from keel.governance import OPERATOR_ROLE
from keel.server import build_services, create_app
from keel.server._serve import listen, uvicorn_server
from keel.settings import Settings
from keel.store import make_engine
from keel.store._schema import LatestMetricRow, MetricRow, ParamRow, RunRow
from keel.types import new_id
from keel.workspace import connect

CHROMIUM = "/usr/bin/chromium"
TARGETS = {"runs_ttfb_ms": 200.0, "runs_rendered_ms": 1000.0, "compare_rendered_ms": 1500.0}


def _load(url: str, project_id: str, experiment_id: str, args: argparse.Namespace) -> list[str]:
    rng = random.Random(7)
    engine = make_engine(url)
    now = int(time.time() * 1000)
    compared: list[str] = []
    with engine.begin() as conn:
        for start in range(0, args.runs, 1000):
            runs, params, metrics = [], [], []
            for i in range(start, min(start + 1000, args.runs)):
                run_id = new_id()
                runs.append(
                    {
                        "id": run_id,
                        "project_id": project_id,
                        "experiment_id": experiment_id,
                        "parent_run_id": None,
                        "name": f"run-{i}",
                        "status": "FINISHED",
                        "user": "user:bench",
                        "start_time": now - i * 1000,
                        "end_time": now - i * 1000 + 500,
                        "lifecycle": "active",
                        "code_version": None,
                        "environment": None,
                        "row_version": 1,
                    }
                )
                for p in range(5):
                    value = f"v{rng.randrange(10)}"
                    params.append(
                        {"run_id": run_id, "key": f"p{p}", "value": value, "value_num": None}
                    )
                for m in range(args.metrics):
                    metrics.append(
                        {
                            "run_id": run_id,
                            "key": f"m{m:02d}",
                            "value": rng.random(),
                            "step": 0,
                            "timestamp": now,
                        }
                    )
                if len(compared) < args.compare:
                    compared.append(run_id)
            conn.execute(insert(RunRow.__table__), runs)  # type: ignore[arg-type]
            conn.execute(insert(ParamRow.__table__), params)  # type: ignore[arg-type]
            conn.execute(insert(MetricRow.__table__), metrics)  # type: ignore[arg-type]
            conn.execute(insert(LatestMetricRow.__table__), metrics)  # type: ignore[arg-type]
        for k, run_id in enumerate(compared):
            curve = [
                {
                    "run_id": run_id,
                    "key": "curve",
                    "value": 1 / (1 + s * (k + 1) / 1000) + rng.random() / 50,
                    "step": s,
                    "timestamp": now + s,
                }
                for s in range(args.steps)
            ]
            conn.execute(insert(MetricRow.__table__), curve)  # type: ignore[arg-type]
            conn.execute(insert(LatestMetricRow.__table__), [curve[-1]])  # type: ignore[arg-type]
    engine.dispose()
    return compared


def _timings(tab: Any, url: str) -> dict[str, float]:
    tab.goto(url, wait_until="load")
    tab.wait_for_function(
        "() => !document.querySelector('div.chart[data-chart]') || "
        "performance.getEntriesByName('keel:charts').length > 0"
    )
    return dict(
        tab.evaluate(
            """() => { const n = performance.getEntriesByType('navigation')[0];
            const c = performance.getEntriesByName('keel:charts');
            return {ttfb: n.responseStart - n.requestStart, load: n.loadEventEnd,
                    charts: c.length ? c[c.length - 1].startTime : 0, bytes: n.transferSize}; }"""
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--compare", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sqlite_store() as (url, home):
        settings = Settings(home=home, db_url=url)
        with connect(settings=settings, principal="user:owner") as ws:
            experiment = ws.experiments.create("bench")
            project_id = ws.ctx.project_id
        began = time.perf_counter()
        compared = _load(url, project_id, experiment.id, args)
        print(
            f"loaded {args.runs:,} runs x {args.metrics} metrics and {args.compare} curves of "
            f"{args.steps:,} steps in {time.perf_counter() - began:.1f} s"
        )
        services = build_services(settings)
        owner = services.projects.context("user:owner", "default")
        operator = replace(owner, principal="user:operator", roles=frozenset({OPERATOR_ROLE}))
        services.projects.grant(owner, "user:reader", "viewer")
        token = services.identity.create_token(
            operator, role="viewer", principal="user:reader", project="default", days=1
        ).secret
        page = services.runs.search(owner, None, max_results=50)
        floor_search = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            services.runs.search(owner, None, max_results=50)
            floor_search.append((time.perf_counter() - t) * 1000)
        assert len(page.runs) == 50
        app = create_app(settings, services=services)
        sock = listen("127.0.0.1", 0)
        server = uvicorn_server(app, settings, log_level="warning")
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                    ],
                )
                tab = browser.new_page(base_url=base, viewport={"width": 1400, "height": 900})
                tab.goto("/ui/login")
                tab.fill("input[name=token]", token)
                tab.click("button[type=submit]")
                tab.wait_for_url("**/experiments")
                cookies = {c["name"]: c["value"] for c in tab.context.cookies()}
                runs_url = "/ui/p/default/runs"
                compare_url = "/ui/p/default/compare?" + "&".join(f"run={r}" for r in compared)
                for _ in range(2):  # warm
                    _timings(tab, runs_url)
                    _timings(tab, compare_url)
                runs = [_timings(tab, runs_url) for _ in range(args.repeats)]
                compare = [_timings(tab, compare_url) for _ in range(args.repeats)]
                browser.close()
            with httpx.Client(base_url=base, cookies=cookies) as client:
                bare, bare_compare = [], []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    assert client.get(runs_url).status_code == 200
                    bare.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    assert client.get(compare_url).status_code == 200
                    bare_compare.append((time.perf_counter() - t) * 1000)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
            services.governor.db.dispose()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    figures = {
        "runs_ttfb_ms": med(runs, "ttfb"),
        "runs_rendered_ms": med(runs, "load"),
        "compare_rendered_ms": statistics.median(max(r["load"], r["charts"]) for r in compare),
    }
    print(
        f"runs page: {med(runs, 'bytes') / 1024:.0f} KiB; compare page: "
        f"{med(compare, 'bytes') / 1024:.0f} KiB"
    )
    for key, value in figures.items():
        verdict = "ok" if value <= TARGETS[key] else "OVER TARGET"
        print(f"{key:>22}: {value:7.1f} ms  (target {TARGETS[key]:.0f} ms) {verdict}")
    print(f"{'floor: bare GET runs':>22}: {statistics.median(bare):7.1f} ms (no browser)")
    print(f"{'floor: runs.search':>22}: {statistics.median(floor_search):7.1f} ms (50 rows)")
    print(f"{'bare GET compare':>22}: {statistics.median(bare_compare):7.1f} ms (server only)")


if __name__ == "__main__":
    main()
