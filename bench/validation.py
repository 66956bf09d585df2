"""Validation of 10M rows x 10 columns with 15 checks, against the same checks as bare Polars.

Run from the repository root::

    .venv/bin/python bench/validation.py [--rows 10000000] [--repeats 3]

Builds the frame in memory (seeded), then times, in turns, ``run_suite`` of a 15-check suite
(types, not-null, unique, ranges, allowed values, a regex, row count, freshness, a cross-column
SQL expression) and the floor: the same 15 tests written by hand as one ``select`` of bare
Polars expressions. Prints the best time of each and their ratio; the target is within 2x.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
import polars as pl

from keel.data._checks import parse_suite, run_suite

NOW = datetime(2026, 1, 2, tzinfo=UTC)

SUITE = [
    {"kind": "type", "column": "id", "dtype": "int64"},
    {"kind": "type", "column": "amount", "dtype": "float"},
    {"kind": "not_null", "column": "id"},
    {"kind": "not_null", "column": "amount", "max_fraction": 0.01},
    {"kind": "unique", "column": "id"},
    {"kind": "range", "column": "age", "min": 18, "max": 100},
    {"kind": "range", "column": "amount", "min": 0},
    {"kind": "range", "column": "score", "min": 0, "max": 1, "level": "warning"},
    {"kind": "allowed_values", "column": "country", "values": ["AE", "SA", "FR", "GB", "IN"]},
    {"kind": "allowed_values", "column": "status", "values": [0, 1, 2]},
    {"kind": "regex", "column": "code", "pattern": r"^[A-Z]{2}-\d{4}$"},
    {"kind": "row_count", "min": 1_000},
    {"kind": "freshness", "column": "ts", "max_age": "7d"},
    {"kind": "expression", "expr": "closed >= opened", "name": "closed_after_opened"},
    {"kind": "not_null", "column": "code"},
]


def make_frame(rows: int) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    countries = np.array(["AE", "SA", "FR", "GB", "IN"])
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    opened = rng.integers(0, 1_000_000, rows)
    frame = pl.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "age": rng.integers(18, 101, rows),
            "amount": rng.gamma(2.0, 50.0, rows),
            "score": rng.random(rows),
            "country": countries[rng.integers(0, 5, rows)],
            "status": rng.integers(0, 3, rows),
            "opened": opened,
            "closed": opened + rng.integers(0, 1000, rows),
            "ts": (
                np.datetime64("2026-01-01T00:00:00", "us")
                + rng.integers(0, 86_400, rows).astype("m8[s]")
            ).astype("M8[us]"),
        }
    )
    prefix = pl.Series(letters[rng.integers(0, 26, rows)]) + pl.Series(
        letters[rng.integers(0, 26, rows)]
    )
    number = pl.Series(rng.integers(0, 10_000, rows)).cast(pl.String).str.zfill(4)
    return frame.with_columns(code=prefix + "-" + number)


def bare(frame: pl.DataFrame) -> dict[str, object]:
    """The same 15 tests, by hand: one select of Polars expressions plus the schema checks."""
    c = pl.col
    ok_types = frame.schema["id"] == pl.Int64 and frame.schema["amount"].is_float()
    values = frame.select(
        c("id").is_null().sum().alias("id_nulls"),
        c("amount").is_null().sum().alias("amount_nulls"),
        c("id").is_duplicated().sum().alias("dupes"),
        ((c("age") < 18) | (c("age") > 100)).fill_null(False).sum().alias("age"),
        (c("amount") < 0).fill_null(False).sum().alias("amount"),
        ((c("score") < 0) | (c("score") > 1)).fill_null(False).sum().alias("score"),
        (~c("country").is_in(["AE", "SA", "FR", "GB", "IN"])).fill_null(False).sum().alias("cc"),
        (~c("status").is_in([0, 1, 2])).fill_null(False).sum().alias("status"),
        (~c("code").str.contains(r"^[A-Z]{2}-\d{4}$")).fill_null(False).sum().alias("code"),
        c("ts").max().alias("latest"),
        (~(c("closed") >= c("opened"))).fill_null(False).sum().alias("order"),
        c("code").is_null().sum().alias("code_nulls"),
    ).row(0, named=True)
    return {"types": ok_types, "rows": frame.height >= 1000, **values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    frame = make_frame(args.rows)
    print(
        f"frame: {frame.height:,} rows x {frame.width} columns, "
        f"{frame.estimated_size() / 2**20:,.0f} MiB, built in {time.perf_counter() - start:.1f}s"
    )
    suite = parse_suite(SUITE)
    assert len(suite.checks) == 15
    keel_times, bare_times = [], []
    result = None
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = run_suite(frame, suite, now=NOW)
        keel_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        bare(frame)
        bare_times.append(time.perf_counter() - start)
    assert result is not None
    assert result.passed, [c.message for c in result.errors]
    best_keel, best_bare = min(keel_times), min(bare_times)
    print(
        f"run_suite (15 checks):        {best_keel:6.3f} s  "
        f"({args.rows / best_keel / 1e6:,.1f} M rows/s)"
    )
    print(
        f"floor: bare Polars (same 15): {best_bare:6.3f} s  "
        f"({args.rows / best_bare / 1e6:,.1f} M rows/s)"
    )
    print(f"ratio: {best_keel / best_bare:.2f}x the floor (target <= 2x)")


if __name__ == "__main__":
    main()
