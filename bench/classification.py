"""Classification of a 1M-row x 20-column table on a 10,000-row sample (target: <= 2 s).

Run from the repository root::

    .venv/bin/python bench/classification.py [--rows 1000000] [--sample 10000] [--repeats 3]

Builds a seeded table in memory with 12 personal-data columns (email, UAE and international
phones, Emirates IDs, IBANs, payment cards, IPv4 and IPv6, dates of birth, first and full
names) and 8 others (numbers, categories, free text), then times ``classify_frame`` and, as
its floor, the bare work it cannot avoid: drawing the same sample and running one plain
Polars ``str.contains`` per text column and pattern (no checksums, no name dictionary).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from keel.data._classify import classify_frame
from keel.data._detectors import luhn_valid

PATTERNS = [
    r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$",
    r"^(?:\+|00)[1-9]\d{7,14}$",
    r"^784-?\d{4}-?\d{7}-?\d$",
    r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$",
    r"^\d{12,19}$",
    r"^(\d{1,3}\.){3}\d{1,3}$",
    r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$",
    r"^[^\d@]{2,80}$",
]


def _check_digit(body: pl.Series) -> pl.Series:
    """Append the Luhn check digit to each body (vectorised by trying the ten digits)."""
    out = pl.Series([None] * body.len(), dtype=pl.String)
    from keel.data._detectors import luhn_valid_many

    for digit in "0123456789":
        candidate = body + digit
        ok = pl.Series(luhn_valid_many(candidate))
        out = pl.select(pl.when(ok & out.is_null()).then(candidate).otherwise(out)).to_series()
    return out


def make_frame(rows: int) -> pl.DataFrame:
    rng = np.random.default_rng(0)

    def digits(n: int) -> pl.Series:
        return pl.Series(rng.integers(0, 10**n, rows)).cast(pl.String).str.zfill(n)

    first = np.array(["Mohammed", "Fatima", "Aisha", "Omar", "Priya", "John", "Sara", "Ravi"])
    last = np.array(["Al Nuaimi", "Khan", "Smith", "Patel", "Haddad", "Santos"])
    words = np.array(["paid", "late", "call back", "ok", "n/a", "review", "closed"])
    firsts = pl.Series(first[rng.integers(0, first.size, rows)])
    frame = pl.DataFrame(
        {
            "email": "user"
            + pl.Series(rng.integers(0, 10**9, rows)).cast(pl.String)
            + "@example.ae",
            "mobile": "+97150" + digits(7),
            "phone_intl": "+4420" + digits(8),
            "emirates_id": _check_digit("7841990" + digits(7)),
            "iban": pl.Series(["AE070331234567890123456"] * rows),
            "card": _check_digit("411111" + digits(9)),
            "ip": pl.Series(rng.integers(1, 255, rows)).cast(pl.String) + ".10.0.1",
            "ipv6": "2001:db8::" + pl.Series(rng.integers(1, 9999, rows)).cast(pl.String),
            "date_of_birth": pl.Series(
                np.datetime64("1960-01-01") + rng.integers(0, 15_000, rows).astype("m8[D]")
            ),
            "first_name": firsts,
            "customer_name": firsts + " " + pl.Series(last[rng.integers(0, last.size, rows)]),
            "contact": "user" + pl.Series(rng.integers(0, 10**6, rows)).cast(pl.String) + "@x.io",
            "amount": rng.gamma(2.0, 50.0, rows),
            "age": rng.integers(18, 90, rows),
            "score": rng.random(rows),
            "segment": pl.Series(np.array(["a", "b", "c"])[rng.integers(0, 3, rows)]),
            "country": pl.Series(np.array(["AE", "SA", "IN"])[rng.integers(0, 3, rows)]),
            "notes": pl.Series(words[rng.integers(0, words.size, rows)]),
            "order_id": pl.Series(rng.integers(0, 10**9, rows)),
            "flag": rng.random(rows) > 0.5,
        }
    )
    assert frame.width == 20
    assert luhn_valid(frame["card"][0])
    assert luhn_valid(frame["emirates_id"][0])
    return frame


def floor(frame: pl.DataFrame, sample: int, seed: int) -> int:
    rows = frame.sample(sample, seed=seed) if frame.height > sample else frame
    hits = 0
    for name, dtype in rows.schema.items():
        if dtype == pl.String:
            column = rows.get_column(name).drop_nulls()
            hits += sum(int(column.str.contains(p).sum()) for p in PATTERNS)
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    frame = make_frame(args.rows)
    print(
        f"table: {frame.height:,} rows x {frame.width} columns, "
        f"{frame.estimated_size() / 2**20:,.0f} MiB, built in {time.perf_counter() - start:.1f}s"
    )
    keel_times, floor_times = [], []
    labels = None
    for repeat in range(args.repeats):
        start = time.perf_counter()
        labels = classify_frame(frame, sample_size=args.sample, seed=repeat)
        keel_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        floor(frame, args.sample, repeat)
        floor_times.append(time.perf_counter() - start)
    assert labels is not None
    found = {name: c.detector for name, c in labels.columns.items() if c.categories}
    print(f"personal data found in {len(found)} columns: {found}")
    assert len(found) == 12, found
    best, best_floor = min(keel_times), min(floor_times)
    print(f"classify_frame (sample {args.sample:,} rows): {best:6.3f} s  (target <= 2 s)")
    print(f"floor: sample + bare regex per column:     {best_floor:6.3f} s")
    print(f"ratio: {best / best_floor:.2f}x the floor")


if __name__ == "__main__":
    main()
