"""Hyperparameter search throughput: 50 trials on the process executor vs serially.

Run from the repository root::

    .venv/bin/python bench/hpo.py [--trials 50] [--workers 2] [--repeats 5]

What is timed: ``keel.training.search`` of a small model (scikit-learn gradient boosting,
150 trees of depth 2, on breast_cancer: 341 training rows, 114 validation rows) over 50 TPE
trials, each trial a tracked child run in a temporary SQLite store (the real path: ask, child
run created, trial fitted and evaluated with its learning curve, told, curve and metrics
logged, run ended). The search space holds only parameters that do not change a trial's cost
(learning rate, subsample, max_features) that change its cost little, so both modes do
about the same work.

- **serial**: the in-process executor with one worker (the serial rate, the floor the target
  is set against);
- **parallel**: the process executor with ``--workers`` processes. Its pool is started and
  warmed (one task per worker imports scikit-learn) before the clock starts; the start-up is
  printed separately.

The figure is trials per second over the trial loop (``SearchResult.seconds``); the ratio is
parallel / serial. Target (issue 4): >= 1.7x on 2 cores. Modes alternate within each repeat;
medians are printed, with the load average.

Hardware floor: in each repeat, a bare ``ProcessPoolExecutor`` runs a pure-Python CPU loop
serially and on ``--workers`` processes; its speed-up is what the machine offers at that
moment (2x on an idle 2-core machine). On a shared Linux machine with scheduler autogroups,
every process of one session shares one group's CPU share, so under other sessions' load the
bare speed-up itself drops towards 1x; ``efficiency`` = Keel's speed-up / the bare speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 1.7
SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
    "subsample": {"type": "float", "low": 0.5, "high": 1.0},
    "max_features": {"type": "categorical", "choices": [0.5, 0.75, 1.0]},
}


def _warm() -> int:
    import sklearn.ensemble  # noqa: F401  (import in the worker, as a first trial would)

    return os.getpid()


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def _bare_speedup(workers: int, tasks: int = 6, size: int = 3_000_000) -> float:
    """The speed-up a bare process pool gets on pure CPU work right now."""
    import concurrent.futures
    import multiprocessing

    started = time.perf_counter()
    for _ in range(tasks):
        _burn(size)
    serial = time.perf_counter() - started
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(_burn, [10] * workers))
        started = time.perf_counter()
        list(pool.map(_burn, [size] * tasks))
        parallel = time.perf_counter() - started
    return serial / parallel


def _run(mode: str, trials: int, workers: int) -> tuple[float, float]:
    from sklearn.ensemble import GradientBoostingClassifier

    from keel.pipelines import get_executor
    from keel.settings import Settings
    from keel.training import load_builtin, search
    from keel.workspace import connect

    data = load_builtin("breast_cancer")
    with tempfile.TemporaryDirectory(prefix="keel-bench-hpo-") as home:
        ws = connect(settings=Settings(home=Path(home)), principal="user:bench")
        startup = 0.0
        if mode == "serial":
            executor = get_executor("inprocess", max_workers=1)
        else:
            started = time.perf_counter()
            executor = get_executor("process", max_workers=workers)
            pids = {executor.submit(_warm).result() for _ in range(workers * 4)}
            startup = time.perf_counter() - started
            assert len(pids) >= 1
        try:
            result = search(
                ws,
                GradientBoostingClassifier(n_estimators=150, max_depth=2),
                data,
                SPACE,
                metric="valid.auc",
                n_trials=trials,
                executor=executor,
                pruning=False,
                seed=0,
                experiment=f"bench-{mode}",
            )
        finally:
            executor.shutdown()
            ws.close()
        assert len(result.trials) == trials
        return trials / result.seconds, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    serial: list[float] = []
    parallel: list[float] = []
    startups: list[float] = []
    loads: list[float] = []
    bare: list[float] = []
    for repeat in range(args.repeats):
        loads.append(os.getloadavg()[0])
        bare.append(_bare_speedup(args.workers))
        rate, _ = _run("serial", args.trials, args.workers)
        serial.append(rate)
        rate, startup = _run("parallel", args.trials, args.workers)
        parallel.append(rate)
        startups.append(startup)
        print(
            f"repeat {repeat + 1}: serial {serial[-1]:.2f} trials/s, parallel "
            f"{parallel[-1]:.2f} trials/s ({parallel[-1] / serial[-1]:.2f}x); bare pool "
            f"{bare[-1]:.2f}x; load average {loads[-1]:.1f}"
        )
    ratios = [p / s for p, s in zip(parallel, serial, strict=True)]
    print(f"cores: {os.cpu_count()}, trials: {args.trials}, workers: {args.workers}")
    print(f"serial (floor): {statistics.median(serial):.2f} trials/s")
    print(
        f"process executor: {statistics.median(parallel):.2f} trials/s "
        f"(pool start-up and warm-up {statistics.median(startups):.2f} s, not in the rate)"
    )
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio >= TARGET else "misses"
    print(
        f"speed-up: {ratio:.2f}x (best {max(ratios):.2f}x) — {verdict} the target "
        f">= {TARGET}x; median load average {statistics.median(loads):.1f}"
    )
    efficiency = statistics.median(r / b for r, b in zip(ratios, bare, strict=True))
    print(
        f"hardware floor: a bare process pool on pure CPU work got "
        f"{statistics.median(bare):.2f}x (best {max(bare):.2f}x); Keel's efficiency against it "
        f"{efficiency:.2f}"
    )


if __name__ == "__main__":
    main()
