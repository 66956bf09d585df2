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
- ``filter`` and ``derive`` whose expression combines rows (``AVG(x)``, ``ROW_NUMBER() OVER
  ()``; see ``uses_aggregates``): the first pass holds only the columns the expression names,
  evaluates it over the whole version, and keeps the row numbers a filter keeps or the column a
  derive makes; each part then takes its slice.

Before any pass, each step is tried on a one-row, all-null frame with the columns and types the
steps before it leave (a "probe"), so a missing column or an unsupported type fails with the
same message ``apply_steps`` gives, before anything is read or written.

Every pass reads the parts again from the blob store, so the result equals
``apply_steps`` over the whole version (a test checks it), in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from keel.data._transforms import CleanStep, apply_steps, uses_aggregates

if TYPE_CHECKING:
    import polars as pl

__all__ = ["stream_steps"]

Parts = Callable[[], Iterator["pl.DataFrame"]]


def _probe(schema: pl.Schema, step: CleanStep, index: int) -> pl.Schema:
    """Run ``step`` on one all-null row of ``schema``: raise its column and type errors as
    ``apply_steps`` would, and return the schema it leaves."""
    import polars as pl

    return apply_steps(pl.DataFrame(schema=schema).clear(1), [step], start=index).schema


def _first_schema(parts: Parts) -> pl.Schema | None:
    """The columns and types of the version (from its first part; None when it has none)."""
    for frame in parts():
        return frame.schema
    return None


def _column_values(parts: Parts, resolved: Sequence[CleanStep], column: str) -> pl.Series:
    """One column after ``resolved``, gathered over all parts (the only column held)."""
    import polars as pl

    pieces = [frame.get_column(column) for frame in _run(parts, resolved)]
    return pl.concat(pieces) if pieces else pl.Series(column, [], dtype=pl.Float64)


def _aggregates(
    parts: Parts, resolved: Sequence[CleanStep], step: CleanStep, index: int
) -> dict[str, Any]:
    """``mean``, ``min`` or ``max`` of each column of a ``fill_null`` after ``resolved`` (None
    when it has no values), in one pass of constant memory. A mean is a float over the
    physical values (days for a date), as Polars computes it.

    Polars refuses some of these (the mean of a string) only when a column has both values and
    nulls, so one value of each column is kept, and where there are nulls the step is tried on
    that value and a null: it raises the error the whole frame would.
    """
    import polars as pl

    how, columns = step.args["strategy"], step.args["columns"]
    totals = dict.fromkeys(columns, 0.0)
    counts = dict.fromkeys(columns, 0)
    best: dict[str, Any] = dict.fromkeys(columns)
    nulls = dict.fromkeys(columns, 0)
    samples: dict[str, pl.Series] = {}
    for frame in _run(parts, resolved):
        for column in columns:
            series = frame.get_column(column)
            nulls[column] += series.null_count()
            valid = series.drop_nulls()
            if not valid.len():
                continue
            samples.setdefault(column, valid.head(1))
            if how == "mean":
                if series.dtype.is_numeric() or series.dtype.is_temporal():
                    totals[column] += float(valid.to_physical().cast(pl.Float64).sum())
                    counts[column] += valid.len()
                continue
            try:
                value = valid.min() if how == "min" else valid.max()
            except pl.exceptions.PolarsError:
                continue  # a type without an order: the check below raises Polars' error
            pick = min if how == "min" else max
            best[column] = value if best[column] is None else pick(best[column], value)
    for column, sample in samples.items():
        if nulls[column]:
            pair = pl.concat([sample, pl.Series(column, [None], dtype=sample.dtype)])
            single = CleanStep(step.op, {**step.args, "columns": [column]})
            apply_steps(pair.to_frame(), [single], start=index)
    if how == "mean":
        return {c: totals[c] / counts[c] if counts[c] else None for c in columns}
    return best


def _fill_value(value: Any, how: str, dtype: pl.DataType) -> pl.Expr:
    """The literal a whole-frame ``fill_null`` would fill with: a mean cast to the column's
    type (truncated, as Polars does), a min or max in that type, a median in the type Polars
    gives a median (Float64 for integers, so the column becomes Float64 as it would)."""
    import polars as pl

    if how == "mean":
        physical = pl.Series([], dtype=dtype).to_physical().dtype
        return pl.lit(value, dtype=pl.Float64).cast(physical).cast(dtype)
    if how == "median":
        median = pl.DataFrame(schema={"c": dtype}).select(pl.col("c").median()).schema["c"]
        return pl.lit(value, dtype=median)
    return pl.lit(value, dtype=dtype)


def _resolve(parts: Parts, steps: Sequence[CleanStep]) -> list[CleanStep]:
    """Check every step against the schema the steps before it leave, and replace steps that
    need a global value by row-local ones (see the module doc)."""
    schema = _first_schema(parts)
    resolved: list[CleanStep] = []
    for index, step in enumerate(steps):
        if schema is None:  # no parts: nothing to read, nothing to check against
            resolved.append(step)
            continue
        before = schema
        schema = _probe(before, step, index)
        a = step.args
        if step.op == "fill_null" and a.get("strategy") in ("mean", "min", "max", "median"):
            how = a["strategy"]
            if how == "median":
                values = {c: _column_values(parts, resolved, c).median() for c in a["columns"]}
            else:
                values = _aggregates(parts, resolved, step, index)
            fills = {c: _fill_value(v, how, before[c]) for c, v in values.items()}
            resolved.append(CleanStep("_fill_values", {"values": fills}))
        elif step.op == "clip" and a.get("quantiles") is not None:
            held = _column_values(parts, resolved, a["column"])
            low, high = a["quantiles"]
            bounds = {"lower": held.quantile(low), "upper": held.quantile(high)}
            resolved.append(CleanStep("clip", {"column": a["column"], **bounds}))
        elif step.op == "fill_null" and a.get("strategy") == "backward":
            firsts = _first_values(parts, resolved, a["columns"])
            resolved.append(CleanStep("_fill_backward", {"columns": a["columns"], "next": firsts}))
        elif step.op in ("filter", "derive") and uses_aggregates(a.get("where") or a["expr"]):
            resolved.append(_over_whole_version(parts, resolved, step, index, before))
        else:
            resolved.append(step)
    return resolved


def _over_whole_version(
    parts: Parts, resolved: Sequence[CleanStep], step: CleanStep, index: int, schema: pl.Schema
) -> CleanStep:
    """A ``filter`` or ``derive`` whose expression combines rows, evaluated once over the whole
    version (through ``resolved``) holding only the columns it names plus a row number; the
    result is the row numbers a filter keeps, or the column a derive makes."""
    import polars as pl

    a = step.args
    expr = pl.sql_expr(a.get("where") or a["expr"])
    named = list(dict.fromkeys(expr.meta.root_names()))
    if expr.meta.has_multiple_outputs() or any(c not in schema for c in named):
        named = list(schema)  # a wildcard: hold every column
    row = "__keel_row"
    while row in schema or row == a.get("column"):
        row += "_"
    pieces = [
        frame.select(pl.int_range(pl.len(), dtype=pl.UInt64).alias(row), *named)
        for frame in _run(parts, resolved)
    ]
    held = (
        pl.concat(pieces)
        if pieces
        else pl.DataFrame(schema={row: pl.UInt64, **{c: schema[c] for c in named}})
    )
    held = held.with_columns(pl.int_range(pl.len(), dtype=pl.UInt64).alias(row))
    result = apply_steps(held, [step], start=index)
    if step.op == "filter":
        return CleanStep("_keep_rows", {"rows": result.get_column(row)})
    return CleanStep(
        "_set_column", {"column": a["column"], "values": result.get_column(a["column"])}
    )


def _first_values(
    parts: Parts, resolved: Sequence[CleanStep], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """For each part (after ``resolved``), the first non-null value of each column in the
    parts after it (what a backward fill brings into its trailing nulls)."""
    import polars as pl

    per_part: list[dict[str, Any]] = []
    for frame in _run(parts, resolved):
        row = frame.select(pl.col(columns).drop_nulls().first()).row(0, named=True)
        per_part.append(row if frame.height else dict.fromkeys(columns))
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
    same frames each time. The steps are checked, and their first passes run, before this
    returns, so a bad step fails before anything is written.
    """
    return _run(parts, _resolve(parts, steps))


def _run(parts: Parts, resolved: Sequence[CleanStep]) -> Iterator[pl.DataFrame]:
    """Apply steps already resolved (``_resolve``) part by part, carrying each step's state."""
    import polars as pl

    seen: dict[int, pl.DataFrame] = {}
    carried: dict[int, dict[str, Any]] = {}
    offsets: dict[int, int] = {}  # rows that reached a whole-version step in earlier parts
    for number, frame in enumerate(parts()):
        for index, step in enumerate(resolved):
            a = step.args
            if step.op == "_fill_values":
                frame = frame.with_columns(pl.col(c).fill_null(v) for c, v in a["values"].items())
            elif step.op == "_fill_backward":
                frame = frame.with_columns(pl.col(a["columns"]).fill_null(strategy="backward"))
                later = {c: v for c, v in a["next"][number].items() if v is not None}
                frame = frame.with_columns(pl.col(c).fill_null(v) for c, v in later.items())
            elif step.op in ("_keep_rows", "_set_column"):
                start = offsets.get(index, 0)
                offsets[index] = start + frame.height
                if step.op == "_set_column":
                    values = a["values"].slice(start, frame.height)
                    frame = frame.with_columns(values.alias(a["column"]))
                else:
                    rows: pl.Series = a["rows"]
                    low = rows.search_sorted(start, side="left")
                    high = rows.search_sorted(start + frame.height, side="left")
                    frame = frame[rows.slice(low, high - low) - start]
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
