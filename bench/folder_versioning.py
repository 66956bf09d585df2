"""Versioning a folder of files, against reading and hashing the same bytes.

Run from the repository root::

    .venv/bin/python bench/folder_versioning.py [--files 1000] [--size 1048576]

A folder of ``--files`` files of ``--size`` random bytes each (default 1,000 x 1 MiB = 1 GiB)
is generated in a temporary folder, then, after the page cache holds it:

- **floor**: read every file and SHA-256 it (the least any content-addressed store must do).
- **first version**: ``ws.datasets.ingest(name, folder)`` into a fresh local store — walk,
  read, hash, media type and metadata, journal, encrypt (AES-256-GCM) and write every blob, the
  manifest part, and the version's commit.
- **unchanged re-version**: the same call again; files whose size and modification time match
  the previous manifest are not read, so the result is the same version.

Targets (bench/RESULTS.md): first version within 1.3x of the floor; re-versioning ≤ 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1 << 20)
    args = parser.parse_args()

    from keel.settings import Settings
    from keel.workspace import connect

    root = Path(tempfile.mkdtemp(prefix="keel-bench-folder-"))
    try:
        folder = root / "files"
        for i in range(args.files):
            sub = folder / f"d{i % 10}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i:05d}.bin").write_bytes(os.urandom(args.size))
        total = args.files * args.size
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
        for path in paths:  # warm the page cache, as the floor and keel both read it
            path.read_bytes()

        started = time.perf_counter()
        for path in paths:
            with open(path, "rb") as handle:
                hashlib.file_digest(handle, "sha256")
        floor = time.perf_counter() - started

        with connect(settings=Settings(home=root / "home"), principal="user:bench") as ws:
            started = time.perf_counter()
            first = ws.datasets.ingest("files", folder)
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            again = ws.datasets.ingest("files", folder)
            again_s = time.perf_counter() - started
        assert first.row_count == args.files
        assert again.id == first.id
        gib = total / 2**30
        print(f"floor read+sha256      {floor:6.2f} s  {gib / floor:5.2f} GiB/s")
        print(
            f"keel first version     {first_s:6.2f} s  {gib / first_s:5.2f} GiB/s  "
            f"{first_s / floor:.2f}x floor (target <= 1.3x)"
        )
        print(f"keel unchanged again   {again_s:6.2f} s  (target <= 1 s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
