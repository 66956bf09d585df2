"""Start-up cost of ``import keel`` and ``keel --help``, against a bare interpreter.

Run from the repository root::

    .venv/bin/python bench/startup.py [--repeats 10] [--importtime]

Each figure is the median wall time of ``--repeats`` fresh processes (one more is run first and
not counted, so the files are in the page cache):

- ``python -c "import keel"``: target at most 100 ms;
- ``keel --help`` (the installed console script next to this interpreter): target at most
  300 ms;
- floor: ``python -c pass``, the interpreter's own start-up.

It also prints how many modules ``import keel`` loads and whether any heavy dependency is among
them (STYLE.md: pandas, polars, pyarrow, sqlalchemy, fastapi and ray must not be). With
``--importtime`` it prints the ten slowest imports of each command (``python -X importtime``,
cumulative microseconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_IMPORT_MS = 100.0
TARGET_HELP_MS = 300.0
HEAVY = ("pandas", "polars", "pyarrow", "sqlalchemy", "fastapi", "ray", "numpy")


def _keel_command() -> list[str]:
    script = Path(sys.executable).with_name("keel")
    if not script.exists():
        raise SystemExit(f"No `keel` console script next to {sys.executable}; pip install -e .")
    return [str(script)]


def _median_ms(command: list[str], repeats: int) -> float:
    timings = []
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        if attempt:  # the first run warms the page cache
            timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def _loaded_modules() -> tuple[int, list[str]]:
    probe = (
        "import sys; before = set(sys.modules); import keel; "
        f"heavy = {HEAVY!r}; "
        "print(len(set(sys.modules) - before)); "
        "print(','.join(h for h in heavy if h in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    return int(out[0]), [name for name in out[1].split(",") if name]


def _slowest_imports(command: list[str]) -> list[str]:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    ).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append((int(cumulative), name))
    rows.sort(reverse=True)
    return [f"{cumulative / 1000:8.1f} ms  {name}" for cumulative, name in rows[:10]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--importtime", action="store_true", help="print the slowest imports")
    args = parser.parse_args()

    python = sys.executable
    floor = _median_ms([python, "-c", "pass"], args.repeats)
    imported = _median_ms([python, "-c", "import keel"], args.repeats)
    helped = _median_ms([*_keel_command(), "--help"], args.repeats)
    count, heavy = _loaded_modules()

    print(f"median of {args.repeats} fresh processes each")
    print(f"{'command':22}{'figure':>10}{'floor':>10}{'over floor':>12}{'target':>10}  verdict")
    for name, figure, target in (
        ('python -c "import keel"', imported, TARGET_IMPORT_MS),
        ("keel --help", helped, TARGET_HELP_MS),
    ):
        verdict = "met" if figure <= target else "NOT met"
        print(
            f"{name:22}{figure:8.1f}ms{floor:8.1f}ms{figure - floor:10.1f}ms"
            f"{target:8.0f}ms  {verdict}"
        )
    print(f'floor: python -c pass = {floor:.1f} ms; "import keel" loads {count} modules; ', end="")
    print(f"heavy ones loaded: {', '.join(heavy) if heavy else 'none'}")
    if args.importtime:
        for name, command in (
            ("import keel", [python, "-c", "import keel"]),
            ("keel --help", [*_keel_command(), "--help"]),
        ):
            print(f"\nslowest imports of {name} (cumulative):")
            print("\n".join(_slowest_imports(command)))


if __name__ == "__main__":
    main()
