"""Drift of 1M rows x 20 numeric + 2 categorical columns against a 1M-row reference.

Run from the repository root::

    .venv/bin/python bench/bench_drift.py [--rows 1000000] [--repeats 3] [--workers 1]

Builds both frames in memory (seeded; half of the numeric columns shifted), profiles the
reference once (``profile_reference``: quantile bin edges, order statistics, category counts;
timed apart, as a monitor does it once per reference version), then times, in turns,
``compute_drift`` of the window against the profile (PSI, KS with p-value, chi-square,
Jensen-Shannon, Wasserstein per numeric column; PSI, chi-square, Jensen-Shannon per
categorical one) and the floor: the same statistics written as bare NumPy over the same
precomputed edges and sorted reference sample (one ``count_nonzero`` comparison per edge, a
merge of sorted samples for KS/Wasserstein; categories handed over as integer codes, untimed,
and counted with ``bincount``), so the floor is what the arithmetic costs without Keel.
Prints the best time of each and their ratio. Target: ≤ 1 s for the drift step.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import polars as pl

from keel.monitoring import compute_drift, profile_reference
from keel.monitoring._profile import SAMPLE_ROWS

NUMERIC = 20


def frames(rows: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    plans = np.array(["basic", "plus", "pro", "team", "enterprise"])
    cities = np.array([f"city-{i:02d}" for i in range(50)])

    def make(shifted: bool) -> pl.DataFrame:
        columns: dict[str, Any] = {
            f"x{i}": rng.normal(0.1 * i if shifted and i % 2 else 0.0, 1.0, rows)
            for i in range(NUMERIC)
        }
        columns["plan"] = pl.Series(plans[rng.integers(0, 5, rows)]).cast(pl.Categorical)
        columns["city"] = cities[rng.integers(0, 45 if shifted else 50, rows)]
        return pl.DataFrame(columns)

    return make(False), make(True)


def _stats_floor(ref_counts: Any, cur_counts: Any) -> tuple[float, float, float]:
    r = ref_counts / ref_counts.sum()
    c = cur_counts / cur_counts.sum()
    e, a = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    psi = float(np.sum((a - e) * np.log(a / e)))
    table = np.vstack([ref_counts, cur_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    m = (r + c) / 2
    js = math.sqrt(
        max(
            0.0,
            (
                np.sum(r[r > 0] * np.log2(r[r > 0] / m[r > 0]))
                + np.sum(c[c > 0] * np.log2(c[c > 0] / m[c > 0]))
            )
            / 2,
        )
    )
    return psi, chi2, js


def prepare(current: pl.DataFrame) -> dict[str, Any]:
    """The window as NumPy sees it best: float arrays, and categories as integer codes."""
    arrays: dict[str, Any] = {f"x{i}": current[f"x{i}"].to_numpy() for i in range(NUMERIC)}
    for name in ("plan", "city"):
        series = current[name].cast(pl.Categorical)
        distinct = series.unique()
        named = zip(
            distinct.to_physical().to_list(), distinct.cast(pl.String).to_list(), strict=True
        )
        arrays[name] = (series.to_physical().to_numpy(), dict(named))
    return arrays


def floor(profile: Any, arrays: dict[str, Any]) -> dict[str, tuple[float, ...]]:
    """The same statistics as bare NumPy over the profile's edges and sorted sample."""
    out: dict[str, tuple[float, ...]] = {}
    for i in range(NUMERIC):
        name = f"x{i}"
        ref = profile.columns[name]
        values = arrays[name]
        values = values[np.isfinite(values)]
        at_least = np.array([np.count_nonzero(values >= e) for e in ref.edges])
        counts = -np.diff(np.concatenate([[values.size], at_least, [0]]))
        step = math.ceil(values.size / SAMPLE_ROWS)
        sample = np.sort(values[::step])
        n, m = ref.ordered.size, sample.size
        pooled = np.concatenate([ref.ordered, sample])
        order = np.argsort(pooled, kind="stable")
        pooled = pooled[order]
        in_ref = np.cumsum(order < n)
        gap = np.abs(in_ref / n - (np.arange(1, n + m + 1) - in_ref) / m)
        last = np.append(pooled[1:] != pooled[:-1], True)
        ks = float(gap[last].max())
        wasserstein = float(np.sum(gap[:-1] * np.diff(pooled)))
        out[name] = (*_stats_floor(ref.counts, counts), ks, wasserstein)
    for name in ("plan", "city"):
        ref = profile.columns[name]
        codes, names = arrays[name]
        tally = np.bincount(codes)
        counted = {label: int(tally[code]) for code, label in names.items()}
        cur = np.array([counted.get(c, 0) for c in ref.categories], dtype=np.int64)
        out[name] = _stats_floor(ref.counts, cur)
    return out


def best(fn: Any, repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="threads comparing features")
    args = parser.parse_args()
    reference, current = frames(args.rows)
    started = time.perf_counter()
    profile = profile_reference(reference)
    profiled = time.perf_counter() - started
    ours, result = best(lambda: compute_drift(profile, current, workers=args.workers), args.repeats)
    arrays = prepare(current)
    bare, floored = best(lambda: floor(profile, arrays), args.repeats)
    checked = {f.feature: f for f in result.features}
    for name, values in floored.items():  # the two compute the same statistics
        assert abs(checked[name].stats["psi"] - values[0]) < 1e-9, name
        assert abs(checked[name].stats["js"] - values[2]) < 1e-9, name
        if len(values) > 3:
            assert abs(checked[name].stats["ks"] - values[3]) < 1e-9, name
            assert abs(checked[name].stats["wasserstein"] - values[4]) < 1e-6, name
    cells = args.rows * (NUMERIC + 2)
    print(f"rows: {args.rows:,} x {NUMERIC} numeric + 2 categorical ({cells:,} cells)")
    print(f"reference profile (once per reference version): {profiled:.3f} s")
    print(
        f"compute_drift (workers={args.workers}): {ours:.3f} s  target <= 1 s: "
        f"{'met' if ours <= 1.0 else 'NOT met'}"
    )
    print(f"floor, bare NumPy, same statistics: {bare:.3f} s")
    print(f"ratio keel / floor: {ours / bare:.2f}x")
    print(
        f"drifted: {len(result.drifted)} of {len(result.features)} "
        f"(expected the {NUMERIC // 2 - 1} shifted numeric columns with shift >= 0.3 and city)"
    )


if __name__ == "__main__":
    main()
