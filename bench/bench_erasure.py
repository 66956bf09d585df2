"""Subject index and erasure: how long the first lookup (it builds the index) and an erasure take.

Run: ``.venv/bin/python bench/bench_erasure.py [--rows 1000000] [--subjects 100000]``

The dataset has ``--rows`` rows in parts of 250,000 rows, ``--subjects`` distinct subject ids.
Printed figures:

* index build (first ``locate``): reading every part's subject column, keyed-hashing each
  distinct id and inserting the index rows; its floor is the bare work without the store
  (Parquet column read + ``value_counts`` + one HMAC per distinct id);
* a second ``locate`` (index already built): the lookup alone;
* ``erase`` of one subject: rewrite of the tagged version (all rows minus the subject's),
  crypto-shredding of the parts that held the subject, and the audited bookkeeping; its
  floor is reading and re-encoding the version once (what any rewrite must do).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import os
import time

import polars as pl

from _stores import sqlite_store
from keel.settings import Settings
from keel.workspace import connect

PART_ROWS = 250_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=100_000)
    args = parser.parse_args()
    frame = pl.DataFrame(
        {
            "customer": [f"user{i % args.subjects}@example.org" for i in range(args.rows)],
            "amount": [float(i % 997) for i in range(args.rows)],
        }
    )
    with sqlite_store() as (url, home):
        ws = connect(settings=Settings(home=home, db_url=url), principal="user:bench")
        ws.datasets.ingest("orders", frame, part_rows=PART_ROWS)
        ws.compliance.declare(
            "orders", purpose="p", lawful_basis="contract", subject_column="customer"
        )

        start = time.perf_counter()
        found = ws.compliance.locate("user7@example.org")
        build = time.perf_counter() - start
        start = time.perf_counter()
        ws.compliance.locate("user7@example.org")
        lookup = time.perf_counter() - start

        version = ws.datasets.version("orders")
        secret = os.urandom(32)
        start = time.perf_counter()
        for part in version.parts:
            data = ws.blobs.get_bytes(part.digest, scope=ws.ctx.project_id)
            counts = pl.read_parquet(io.BytesIO(data), columns=["customer"])["customer"]
            keyed = hmac.new(secret, b"keel-subject/1\x00", hashlib.sha256)
            for value, _n in counts.value_counts().iter_rows():
                mac = keyed.copy()
                mac.update(str(value).encode())
                mac.hexdigest()
        index_floor = time.perf_counter() - start

        start = time.perf_counter()
        report = ws.compliance.erase("user7@example.org")
        erase = time.perf_counter() - start
        start = time.perf_counter()
        whole = ws.datasets.read("orders", report.versions[0].replaced_by)
        buffer = io.BytesIO()
        whole.write_parquet(buffer, compression="zstd", compression_level=1)
        erase_floor = time.perf_counter() - start
        ws.close()

    print(f"rows {args.rows:,}, distinct subjects {args.subjects:,}, parts {len(version.parts)}")
    removed = report.versions[0].rows_removed
    print(f"versions holding the subject: {len(found)}; rows removed {removed}")
    print(
        f"index build (first locate): {build:.2f} s   floor {index_floor:.2f} s "
        f"({build / index_floor:.1f}x)"
    )
    print(f"locate with the index built: {lookup * 1000:.1f} ms")
    print(
        f"erase one subject:          {erase:.2f} s   floor {erase_floor:.2f} s "
        f"({erase / erase_floor:.1f}x); parts {report.parts}"
    )


if __name__ == "__main__":
    main()
