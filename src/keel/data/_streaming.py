"""Cleansing steps applied part by part, so a transform holds one part at a time.

Row-local steps (``filter``, ``derive``, ``cast``, ``rename``, ``drop_columns``, ``drop_nulls``,
``fill_null`` with a value or ``zero``, ``clip`` with fixed bounds) run on each part as it is
read. The steps that need more than one part are turned into row-local ones, or carry a small
state from part to part:

- ``fill_null`` with ``mean``, ``min`` or ``max``: a first pass over the parts (through the
  steps before it) computes the value in constant memory; then it fills like a value.
- ``fill_null`` with ``median`` and ``clip`` with ``quantiles``: the first pass holds that one
  column (not the rows), computes the median or the quantiles, then it is row-local.
- ``fill_null`` with ``forward``: the last non-null value of each column is carried into the
  next part. ``backward``: a first pass records each part's first non-null value, and a part's
  trailing nulls take the first value of the parts after it.
- ``drop_duplicates``: the keys seen so far are kept (the ``subset`` columns' distinct values,
  or the whole distinct rows when there is no subset), and each part keeps its rows whose key
  is new. Memory grows with the number of distinct keys, not with the version's width.

Every pass reads the parts again from the blob store, so the result equals
``apply_steps`` over the whole version (a test checks it), in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from keel.data._transforms import CleanStep, apply_steps

if TYPE_CHECKING:
    import polars as pl

__all__ = ["stream_steps"]

Parts = Callable[[], Iterator["pl.DataFrame"]]


def _column_values(parts: Parts, steps: Sequence[CleanStep], column: str) -> pl.Series:
    """One column after ``steps``, gathered over all parts (the only column held)."""
    import polars as pl

    pieces = [frame.get_column(column) for frame in stream_steps(parts, steps) if column in frame]
    if not pieces:
        return pl.Series(column, [], dtype=pl.Float64)
    return pl.concat(pieces)


def _aggregate(parts: Parts, steps: Sequence[CleanStep], column: str, how: str) -> Any:
    """``mean``, ``min`` or ``max`` of a column after ``steps``, in constant memory."""
    import polars as pl

    total, count, best = 0.0, 0, None
    for frame in stream_steps(parts, steps):
        if column not in frame.columns:
            continue
        series = frame.get_column(column)
        if how == "mean":
            valid = series.drop_nulls()
            if valid.len():
                total += float(valid.cast(pl.Float64).sum())
                count += valid.len()
        else:
            value = series.min() if how == "min" else series.max()
            if value is not None:
                pick = min if how == "min" else max
                best = value if best is None else pick(best, value)
    if how == "mean":
        return None if count == 0 else total / count
    return best


def _resolve(parts: Parts, steps: Sequence[CleanStep]) -> list[CleanStep]:
    """Replace steps that need a global value by row-local ones (see the module doc)."""
    resolved: list[CleanStep] = []
    for step in steps:
        a = step.args
        if step.op == "fill_null" and a.get("strategy") in ("mean", "min", "max", "median"):
            values: dict[str, Any] = {}
            for column in a["columns"]:
                if a["strategy"] == "median":
                    values[column] = _column_values(parts, resolved, column).median()
                else:
                    values[column] = _aggregate(parts, resolved, column, a["strategy"])
            resolved.append(CleanStep("_fill_values", {"values": values}))
        elif step.op == "clip" and a.get("quantiles") is not None:
            column = _column_values(parts, resolved, a["column"])
            low, high = a["quantiles"]
            bounds = {"lower": column.quantile(low), "upper": column.quantile(high)}
            resolved.append(CleanStep("clip", {"column": a["column"], **bounds}))
        elif step.op == "fill_null" and a.get("strategy") == "backward":
            firsts = _first_values(parts, resolved, a["columns"])
            resolved.append(CleanStep("_fill_backward", {"columns": a["columns"], "next": firsts}))
        else:
            resolved.append(step)
    return resolved


def _first_values(
    parts: Parts, steps: Sequence[CleanStep], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """For each part (after ``steps``), the first non-null value of each column in the parts
    after it (what a backward fill brings into its trailing nulls)."""
    import polars as pl

    per_part: list[dict[str, Any]] = []
    for frame in stream_steps(parts, steps):
        present = [c for c in columns if c in frame.columns]
        row = frame.select(pl.col(present).drop_nulls().first()).row(0, named=True)
        per_part.append(row if frame.height else dict.fromkeys(present))
    following: list[dict[str, Any]] = []
    upcoming: dict[str, Any] = {}
    for row in reversed(per_part):
        following.append(dict(upcoming))
        for column, value in row.items():
            if value is not None:
                upcoming[column] = value
    following.reverse()
    return following


def stream_steps(parts: Parts, steps: Sequence[CleanStep]) -> Iterator[pl.DataFrame]:
    """Apply ``steps`` to the frames ``parts()`` yields, one frame at a time.

    ``parts`` is called once per pass (a global step needs a first pass); it must yield the
    same frames each time.
    """
    import polars as pl

    resolved = _resolve(parts, steps)
    seen: dict[int, pl.DataFrame] = {}
    carried: dict[int, dict[str, Any]] = {}
    for number, frame in enumerate(parts()):
        for index, step in enumerate(resolved):
            a = step.args
            if step.op == "_fill_values":
                frame = frame.with_columns(
                    pl.col(c).fill_null(v) for c, v in a["values"].items() if v is not None
                )
            elif step.op == "_fill_backward":
                frame = frame.with_columns(pl.col(a["columns"]).fill_null(strategy="backward"))
                later = {c: v for c, v in a["next"][number].items() if v is not None}
                frame = frame.with_columns(pl.col(c).fill_null(v) for c, v in later.items())
            elif step.op == "fill_null" and a.get("strategy") == "forward":
                frame = apply_steps(frame, [step], start=index)
                previous = carried.get(index, {})
                frame = frame.with_columns(pl.col(c).fill_null(v) for c, v in previous.items())
                if frame.height:
                    last = frame.select(pl.col(a["columns"]).drop_nulls().last()).row(0, named=True)
                    carried[index] = {
                        **previous,
                        **{c: v for c, v in last.items() if v is not None},
                    }
            elif step.op == "drop_duplicates":
                frame = apply_steps(frame, [step], start=index)
                keys = list(a.get("subset") or frame.columns)
                before = seen.get(index)
                if before is not None and frame.height:
                    frame = frame.join(
                        before, on=keys, how="anti", nulls_equal=True, maintain_order="left"
                    )
                known = frame.select(keys)
                seen[index] = known if before is None else pl.concat([before, known])
            else:
                frame = apply_steps(frame, [step], start=index)
        yield frame
