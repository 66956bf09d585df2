"""Wall time of ``keel quickstart`` (the whole lifecycle with the closed loop), stage by stage.

Run from the repository root::

    .venv/bin/python bench/quickstart.py [--repeats 1]

Each repeat runs ``keel quickstart --json`` in a fresh temporary store (a new process, as a user
would) and prints its wall time and the seconds of each of its 14 stages.

- target: at most 180 s on a 2-core machine (issue 6);
- floor: the stages the lifecycle had before the loop (data, gate, HPO training, champion),
  which the loop cannot make faster; the rest (serving 40,000 loans with logging, four monitor
  runs, 40,000 labels, the labelled data version, retraining on 90,000 rows, the canary, the
  reports) is what closing the loop costs on top.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 180.0
FLOOR_STAGES = (
    "Ingesting the car-loan data as dataset versions",
    "Classifying columns and deriving features",
    "Validating through the gate and publishing",
    "Training",
    "Registering",
)


def _keel() -> list[str]:
    script = Path(sys.executable).with_name("keel")
    if not script.exists():
        raise SystemExit(f"No `keel` console script next to {sys.executable}; pip install -e .")
    return [str(script)]


def run_once() -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="keel-bench-quickstart-") as folder:
        env = {**os.environ, "KEEL_HOME": str(Path(folder) / "home")}
        env.pop("KEEL_DB_URL", None)
        started = time.perf_counter()
        done = subprocess.run(
            [*_keel(), "quickstart", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"keel quickstart failed:\n{done.stderr[-3000:]}")
        summary = json.loads(done.stdout)
        stages = {item["stage"]: float(item["seconds"]) for item in summary["stage_seconds"]}
        print(
            f"quickstart: {seconds:.1f} s wall, loop phase {summary['loop'].get('phase')}, "
            f"{summary['audit']['events']} audit events"
        )
        return seconds, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    results = [run_once() for _ in range(args.repeats)]
    wall = statistics.median(seconds for seconds, _ in results)
    stages = results[len(results) // 2][1]
    print(f"{'stage':<72} {'seconds':>8}")
    for stage, seconds in stages.items():
        print(f"{stage[:72]:<72} {seconds:>8.1f}")
    floor = sum(stages.get(s, 0.0) for s in FLOOR_STAGES)
    print(
        f"\nwall {wall:.1f} s (target <= {TARGET_SECONDS:.0f} s: "
        f"{'ok' if wall <= TARGET_SECONDS else 'OVER'}); floor (data + training stages) "
        f"{floor:.1f} s; the loop and monitoring add {wall - floor:.1f} s "
        f"({(wall - floor) / wall:.0%} of the wall time)"
    )


if __name__ == "__main__":
    main()
