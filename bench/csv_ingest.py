"""CSV ingest into a dataset version, against ``polars.read_csv`` of the same file.

Run from the repository root::

    .venv/bin/python bench/csv_ingest.py [--rows 10000000] [--keep DIR] [--repeats N]

A CSV of ``--rows`` rows (10M rows is about 1 GB: ids, amounts, rates, dates, categories and
short text) is generated locally into a temporary folder. Then, each in a fresh subprocess so
that the peak resident memory belongs to that work alone:

- **floor**: ``polars.read_csv(path)`` — the whole file parsed into one frame, nothing stored.
- **keel**: ``ws.datasets.ingest(name, path)`` into a fresh local store — encoding, delimiter
  and header detection, the file read in 16 MiB chunks (parsed on a reader thread, gathered
  into ~32 MiB batches, the first chunk alone), each batch encoded into a zstd Parquet part
  (pyarrow, encodings chosen per column type, into pyarrow's growing buffer, handed on without
  a copy) while its statistics are computed on a second thread, and hashed once; two parts
  are encoded at a time, each on an encoder thread; then journaled, encrypted (AES-256-GCM, one
  pass, no second hash) and written with one fsync pass per batch (writer thread), then the
  version committed with its statistics, lineage and audit event.

It prints MB/s (10^6 bytes per second of CSV), the CPU seconds (user + system, all threads:
steadier than the wall time on a shared machine) and the peak RSS of each. With
``--repeats N`` the floor and keel run alternately N times each, and the median and best of
each are printed with the load average before every run (the machine is shared); a first line
describes the machine (``_machine.py``: SHA-256 and fresh-memory probes). The target
is at least 150 MB/s for keel with bounded memory (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe

CHILD = r"""
import json, resource, sys, time
phase, path, home = sys.argv[1], sys.argv[2], sys.argv[3]
import polars as pl
if phase == "floor":
    start = time.perf_counter()
    frame = pl.read_csv(path)
    rows = frame.height
    seconds = time.perf_counter() - start
else:
    from keel.settings import Settings
    from keel.workspace import connect
    with connect(settings=Settings(home=home), principal="user:bench") as ws:
        start = time.perf_counter()
        version = ws.datasets.ingest("bench", path)
        seconds = time.perf_counter() - start
        rows = version.row_count
        assert version.rejected_rows == 0
usage = resource.getrusage(resource.RUSAGE_SELF)
with open("/proc/self/status") as status:  # this process's own peak (ru_maxrss keeps the
    peak = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))  # parent's)
print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss": peak,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


def generate(path: Path, rows: int) -> int:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(0)
    chunk = 1_000_000
    cities = np.array(["Dubai", "Abu Dhabi", "Sharjah", "Ajman", "Al Ain", "Fujairah"])
    with open(path, "wb") as out:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            frame = pl.DataFrame(
                {
                    "id": np.arange(start, start + n),
                    "customer": rng.integers(1, 2_000_000, n),
                    "amount": np.round(rng.gamma(2.0, 5000.0, n), 2),
                    "rate": np.round(rng.uniform(0.01, 0.25, n), 6),
                    "term_months": rng.integers(6, 84, n),
                    "score": np.round(rng.normal(650, 80, n), 3),
                    "opened": (np.datetime64("2015-01-01") + rng.integers(0, 3650, n)).astype(
                        "datetime64[D]"
                    ),
                    "city": cities[rng.integers(0, len(cities), n)],
                    "grade": np.array(list("ABCDEFG"))[rng.integers(0, 7, n)],
                    "note": np.char.add("loan-", rng.integers(0, 10**9, n).astype(str)),
                    "branch": np.char.add("branch-", rng.integers(0, 10**5, n).astype(str)),
                }
            )
            frame.write_csv(out, include_header=start == 0)
    return path.stat().st_size


def run(phase: str, path: Path, home: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, phase, str(path), str(home)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _line(size: int, result: dict[str, float]) -> str:
    return (
        f"{size / 1e6 / result['seconds']:8.1f} MB/s  {result['seconds']:6.2f} s  "
        f"cpu {result['cpu']:5.1f} s  peak RSS {result['peak_rss'] / 2**20:7.0f} MiB  "
        f"rows {int(result['rows']):,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="Reuse/keep the CSV here.")
    parser.add_argument("--repeats", type=int, default=1, help="Runs of each (median, best).")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    print(describe(), flush=True)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="keel-bench-csv-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"loans_{args.rows}.csv"
    try:
        if not path.exists():
            started = time.perf_counter()
            size = generate(path, args.rows)
            print(
                f"generated {size / 1e6:,.0f} MB, {args.rows:,} rows in "
                f"{time.perf_counter() - started:.1f} s"
            )
        size = path.stat().st_size
        home = folder / "home"
        results: dict[str, list[dict[str, float]]] = {"floor": [], "keel": []}
        for attempt in range(args.repeats):
            for phase in ("floor", "keel"):
                load = os.getloadavg()[0]
                shutil.rmtree(home, ignore_errors=True)
                result = run(phase, path, folder / "unused" if phase == "floor" else home)
                result["load"] = load
                results[phase].append(result)
                if args.repeats > 1:
                    print(f"  run {attempt + 1} {phase:5s} load {load:4.1f}  {_line(size, result)}")
        for phase, name in (("floor", "floor polars.read_csv"), ("keel", "keel datasets.ingest")):
            ordered = sorted(results[phase], key=lambda r: r["seconds"])
            median, best = ordered[len(ordered) // 2], ordered[0]
            print(f"{name:24s} {_line(size, median)}")
            if args.repeats > 1:
                print(f"{'  best':24s} {_line(size, best)}")
        keel = sorted(results["keel"], key=lambda r: r["seconds"])[args.repeats // 2]
        floor = sorted(results["floor"], key=lambda r: r["seconds"])[args.repeats // 2]
        print(f"keel / floor time: {keel['seconds'] / floor['seconds']:.2f}x (target >= 150 MB/s)")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("POLARS_MAX_THREADS", "2")
    main()
