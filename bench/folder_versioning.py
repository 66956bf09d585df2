"""Versioning a folder of files, against reading and hashing the same bytes.

Run from the repository root::

    .venv/bin/python bench/folder_versioning.py [--files 1000] [--size 1048576] [--repeats 1]

A folder of ``--files`` files of ``--size`` random bytes each (default 1,000 x 1 MiB = 1 GiB)
is generated in a temporary folder, then, after the page cache holds it, each repeat measures:

- **floor**: read every file and SHA-256 it (the least any content-addressed store must do).
- **copy floor**: read every file through one reused buffer and ``os.write`` it to a new file
  in a fresh folder, without any fsync, then the same with every file fsynced (four at a
  time, then the folder): what writing the same bytes costs on this disk, before hashing and
  encrypting.
- **first version**: ``ws.datasets.ingest(name, folder)`` into a fresh local store — walk,
  read and hash (files of up to 4 MiB on two threads at once), media type and metadata,
  journal, encrypt (AES-256-GCM) and write every blob, the manifest part, and the version's
  commit.
- **unchanged re-version**: the same call again; files whose size and modification time match
  the previous manifest are not read, so the result is the same version.

With ``--repeats`` above 1 the median and best of each figure are printed at the end; the load
average (other jobs on the machine) is printed beside each repeat, and the CPU seconds (user +
system, all threads) of the floor and of the first version, which move less with the load than
the wall time.

A first line describes the machine (``_machine.py``: SHA-256 and fresh-memory probes). Each
first version is also given against the fsynced copy: on a machine whose disk (or page
cache) takes longer to write the bytes than to read and hash them, no store that keeps the
bytes durably can come within 1.3x of the floor, and that ratio shows what keel adds.

Targets (bench/RESULTS.md): first version within 1.3x of the floor; re-versioning ≤ 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _machine import describe


def _copy(paths: list[Path], target: Path, *, sync: bool) -> float:
    """Copy every file into ``target`` through one reused buffer; return the seconds taken."""
    target.mkdir()
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    created: list[int] = []
    started = time.perf_counter()
    for index, path in enumerate(paths):
        out = os.open(target / f"{index:05d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with open(path, "rb", buffering=0) as handle:
            while got := handle.readinto(buffer):
                os.write(out, view[:got])
        if sync:
            created.append(out)
        else:
            os.close(out)
    if sync:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(os.fsync, created))
        for out in created:
            os.close(out)
        folder = os.open(target, os.O_RDONLY)
        os.fsync(folder)
        os.close(folder)
    return time.perf_counter() - started


def _measure(root: Path, folder: Path, paths: list[Path], files: int, run: int) -> dict[str, float]:
    from keel.settings import Settings
    from keel.workspace import connect

    load = os.getloadavg()[0]
    started, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")
    floor = time.perf_counter() - started
    floor_cpu = time.process_time() - cpu
    copy = _copy(paths, root / f"copy{run}", sync=False)
    shutil.rmtree(root / f"copy{run}")
    copy_sync = _copy(paths, root / f"copys{run}", sync=True)
    shutil.rmtree(root / f"copys{run}")

    with connect(settings=Settings(home=root / f"home{run}"), principal="user:bench") as ws:
        started, cpu = time.perf_counter(), time.process_time()
        first = ws.datasets.ingest("files", folder)
        first_s = time.perf_counter() - started
        first_cpu = time.process_time() - cpu
        started = time.perf_counter()
        again = ws.datasets.ingest("files", folder)
        again_s = time.perf_counter() - started
    assert first.row_count == files
    assert again.id == first.id
    shutil.rmtree(root / f"home{run}")
    return {
        "load": load,
        "floor": floor,
        "floor_cpu": floor_cpu,
        "copy": copy,
        "copy_sync": copy_sync,
        "first": first_s,
        "first_cpu": first_cpu,
        "ratio": first_s / floor,
        "again": again_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.files < 1 or args.size < 0 or args.repeats < 1:
        parser.error("--files and --repeats must be at least 1, --size at least 0")

    print(describe(), flush=True)
    root = Path(tempfile.mkdtemp(prefix="keel-bench-folder-"))
    try:
        folder = root / "files"
        for i in range(args.files):
            sub = folder / f"d{i % 10}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i:05d}.bin").write_bytes(os.urandom(args.size))
        gib = args.files * args.size / 2**30
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
        for path in paths:  # warm the page cache, as the floor and keel both read it
            path.read_bytes()

        runs = []
        for run in range(args.repeats):
            m = _measure(root, folder, paths, args.files, run)
            runs.append(m)
            print(f"run {run + 1} (load {m['load']:.2f})")
            print(
                f"  floor read+sha256      {m['floor']:6.2f} s  {gib / m['floor']:5.2f} GiB/s  "
                f"cpu {m['floor_cpu']:.2f} s"
            )
            print(f"  copy, no fsync         {m['copy']:6.2f} s  {gib / m['copy']:5.2f} GiB/s")
            print(
                f"  copy, fsynced          {m['copy_sync']:6.2f} s  "
                f"{m['copy_sync'] / m['floor']:.2f}x floor (what this disk allows)"
            )
            print(
                f"  keel first version     {m['first']:6.2f} s  {gib / m['first']:5.2f} GiB/s  "
                f"{m['ratio']:.2f}x floor (target <= 1.3x)  cpu {m['first_cpu']:.2f} s  "
                f"{m['first'] / m['copy_sync']:.2f}x copy fsynced"
            )
            print(f"  keel unchanged again   {m['again']:6.2f} s  (target <= 1 s)", flush=True)
        if args.repeats > 1:
            print(f"over {args.repeats} runs: median (best)")
            for m in runs:
                m["over_copy"] = m["first"] / m["copy_sync"]
            names = ("floor", "floor_cpu", "copy", "copy_sync", "first", "first_cpu", "ratio")
            names += ("over_copy",)
            for name in (*names, "again"):
                values = [m[name] for m in runs]
                print(f"  {name:10s} {statistics.median(values):6.2f} ({min(values):.2f})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
