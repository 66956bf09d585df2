"""Review fixes for transforms run part by part: steps whose expression combines rows see the
whole version, and the steps that need a first pass check columns and types the way the
whole-frame ``apply_steps`` does, giving the same result or the same error."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pytest

from keel.data import apply_steps, parse_transform
from keel.data._streaming import stream_steps
from keel.data._transforms import uses_aggregates
from keel.errors import InvalidInputError
from keel.workspace import Workspace

Spec = Sequence[Mapping[str, Any]]


def _outcome(run: Any) -> tuple[str, Any]:
    try:
        return "ok", run()
    except Exception as exc:  # the comparison is of the error itself
        return "error", (type(exc), str(exc))


def _streamed(frame: pl.DataFrame, spec: Spec, part_rows: int) -> pl.DataFrame:
    parts = [frame.slice(offset, part_rows) for offset in range(0, frame.height, part_rows)]
    return pl.concat(list(stream_steps(lambda: iter(parts), parse_transform(spec))))


def _assert_same(frame: pl.DataFrame, spec: Spec, *, part_rows: int = 2) -> tuple[str, Any]:
    """Run ``spec`` part by part and over the whole frame; both must give the same frame
    (values and types) or the same error."""
    streamed = _outcome(lambda: _streamed(frame, spec, part_rows))
    whole = _outcome(lambda: apply_steps(frame, parse_transform(spec)))
    assert streamed[0] == whole[0], (streamed, whole)
    if whole[0] == "ok":
        assert streamed[1].schema == whole[1].schema
        assert streamed[1].equals(whole[1]), (streamed[1], whole[1])
    else:
        assert streamed[1] == whole[1]
    return whole


# --- 1. aggregates and windows in filter / derive ---------------------------------------------


def test_uses_aggregates_tells_row_combining_expressions_apart() -> None:
    combining = [
        "x > AVG(x)",
        "x / SUM(x)",
        "ROW_NUMBER() OVER ()",
        "lag(x) over (order by y)",
        "count(*) > 2",
        "SOME_UNKNOWN_FUNCTION(x)",  # not known to be row-local: treated as combining
    ]
    row_local = [
        "x + 1 > 2",
        "ABS(x) > 2 AND y IN (1, 2)",
        "CAST(x AS DECIMAL(10, 2))",
        "COALESCE(x, 0) * ROUND(y, 2)",
        "name = 'avg(x) over ()'",  # inside a string literal
        '"sum(" > 1',  # a quoted column name
    ]
    assert [uses_aggregates(e) for e in combining] == [True] * len(combining)
    assert [uses_aggregates(e) for e in row_local] == [False] * len(row_local)


AGGREGATE_SPECS: list[Spec] = [
    [{"op": "filter", "where": "x > AVG(x)"}],
    [{"op": "derive", "column": "n", "expr": "ROW_NUMBER() OVER ()"}],
    [{"op": "derive", "column": "share", "expr": "x / SUM(x)"}],
    [{"op": "derive", "column": "x", "expr": "x - AVG(x)"}],  # replaces a column in place
    [{"op": "derive", "column": "group_total", "expr": "SUM(x) OVER (PARTITION BY g)"}],
    [{"op": "filter", "where": "COUNT(*) > 3"}],  # a scalar predicate keeps every row
    [{"op": "filter", "where": "COUNT(*) > 300"}],  # ... or none
    [  # after state-carrying steps, and twice in a row
        {"op": "drop_duplicates", "subset": ["g", "x"]},
        {"op": "filter", "where": "x >= MIN(x) + 1"},
        {"op": "derive", "column": "rank", "expr": "ROW_NUMBER() OVER ()"},
        {"op": "filter", "where": "rank > MAX(rank) - 3"},
    ],
    [{"op": "filter", "where": "x > AVG(nosuch)"}],  # the same error as the whole frame
]


@pytest.mark.parametrize("spec", AGGREGATE_SPECS)
def test_aggregate_and_window_steps_see_the_whole_version(spec: Spec) -> None:
    frame = pl.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 100.0, 200.0, 2.0, 7.0],
            "g": ["a", "b", "a", "b", "a", "b", "a"],
            "wide": ["w" * 10] * 7,
        }
    )
    _assert_same(frame, spec, part_rows=3)


def test_the_reviewers_two_part_version(local_ws: Workspace) -> None:
    local_ws.datasets.ingest("d", pl.DataFrame({"x": [1.0, 2.0, 3.0]}))
    local_ws.datasets.ingest("d", pl.DataFrame({"x": [100.0, 200.0]}), mode="append")
    assert len(local_ws.datasets.version("d").parts) == 2
    kept = local_ws.datasets.transform("d", [{"op": "filter", "where": "x > AVG(x)"}])
    assert local_ws.datasets.read("d", kept.version)["x"].to_list() == [100.0, 200.0]
    numbered = local_ws.datasets.transform(
        "d",
        [
            {"op": "derive", "column": "n", "expr": "ROW_NUMBER() OVER ()"},
            {"op": "derive", "column": "share", "expr": "x / SUM(x)"},
        ],
        version=2,  # the appended version, not the filtered one
        target="numbered",
    )
    read = local_ws.datasets.read("numbered", numbered.version)
    assert read["n"].to_list() == [1, 2, 3, 4, 5]  # not restarting at the second part
    assert read["share"].to_list() == pytest.approx([x / 306 for x in (1, 2, 3, 100, 200)])


# --- 2. first-pass steps check columns and types ---------------------------------------------


def _holes() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "x": [1, None, 2, None, 2, None],
            "neg": [-1, None, -2, None, -2, None],
            "s": ["a", None, "c", None, "b", None],
            "full": ["a", "b", "c", "d", "e", "f"],  # a string column without nulls
            "b": [True, None, False, None, True, None],
            "f32": pl.Series([1.5, None, 2.25, None, 2.0, None], dtype=pl.Float32),
            "d": [dt.date(2020, 1, 1), None, dt.date(2020, 1, 4), None, None, None],
            "empty": pl.Series([None] * 6, dtype=pl.Int64),
        }
    ).with_columns(
        pl.col("d").cast(pl.Datetime("ms", "UTC")).alias("ts"),
        (pl.col("d") - pl.date(2019, 1, 1)).alias("span"),
    )


FIRST_PASS_SPECS: list[Spec] = [
    # a. a missing column
    [{"op": "fill_null", "columns": ["nosuch"], "strategy": "mean"}],
    [{"op": "fill_null", "columns": ["nosuch"], "strategy": "median"}],
    [{"op": "fill_null", "columns": ["nosuch"], "strategy": "min"}],
    [{"op": "clip", "column": "nosuch", "quantiles": [0.1, 0.9]}],
    [
        {"op": "rename", "mapping": {"x": "y"}},
        {"op": "fill_null", "column": "x", "strategy": "max"},
    ],
    # b. median of a string
    [{"op": "fill_null", "columns": ["s"], "strategy": "median"}],
    # c. backward fill of a missing column
    [{"op": "fill_null", "columns": ["nosuch"], "strategy": "backward"}],
    [{"op": "fill_null", "columns": ["x", "nosuch"], "strategy": "backward"}],
    # d. mean or quantiles of a string; mean of a boolean
    [{"op": "fill_null", "columns": ["s"], "strategy": "mean"}],
    [{"op": "fill_null", "columns": ["x", "s"], "strategy": "mean"}],
    [{"op": "fill_null", "columns": ["b"], "strategy": "mean"}],
    [{"op": "clip", "column": "s", "quantiles": [0.1, 0.9]}],
    [{"op": "clip", "column": "d", "quantiles": [0.1, 0.9]}],  # Polars itself would panic
    # ... a string mean with nothing to fill is a no-op in both
    [{"op": "fill_null", "columns": ["full", "x"], "strategy": "mean"}],
    # e. the filled values keep the types the whole frame gives
    [{"op": "fill_null", "columns": ["x"], "strategy": "mean"}],
    [{"op": "fill_null", "columns": ["neg", "f32", "d"], "strategy": "mean"}],
    [{"op": "fill_null", "columns": ["x", "b", "f32", "empty"], "strategy": "median"}],
    [{"op": "fill_null", "columns": ["x", "s", "b", "d", "empty"], "strategy": "min"}],
    [{"op": "fill_null", "columns": ["x", "s", "b", "d", "empty"], "strategy": "max"}],
    [{"op": "fill_null", "columns": ["empty"], "strategy": "mean"}],
    [{"op": "fill_null", "columns": ["d", "ts", "span"], "strategy": "median"}],
    [{"op": "fill_null", "columns": ["ts", "span"], "strategy": "mean"}],
    [{"op": "fill_null", "columns": ["s", "x"], "strategy": "backward"}],
    [{"op": "clip", "column": "x", "quantiles": [0.2, 0.8]}],
    # the running schema: a column made, or retyped, by an earlier step
    [
        {"op": "derive", "column": "y", "expr": "x * 2"},
        {"op": "fill_null", "columns": ["y"], "strategy": "mean"},
    ],
    [
        {"op": "cast", "column": "x", "dtype": "string"},
        {"op": "fill_null", "columns": ["x"], "strategy": "median"},
    ],
]


@pytest.mark.parametrize("spec", FIRST_PASS_SPECS)
def test_first_pass_steps_equal_the_whole_frame(spec: Spec) -> None:
    _assert_same(_holes(), spec)


def test_the_reviewers_cases_give_clear_errors_and_typed_results() -> None:
    frame = _holes()
    kind, (error, message) = _assert_same(
        frame, [{"op": "fill_null", "columns": ["nosuch"], "strategy": "mean"}]
    )
    assert kind == "error" and error is InvalidInputError
    assert message.startswith("Transform step 1: no column 'nosuch'")
    kind, (error, message) = _assert_same(
        frame, [{"op": "fill_null", "columns": ["s"], "strategy": "mean"}]
    )
    assert error is InvalidInputError and "Transform step 1: fill_null failed" in message
    kind, (error, message) = _assert_same(
        frame, [{"op": "clip", "column": "d", "quantiles": [0.1, 0.9]}]
    )
    assert error is InvalidInputError and "needs a numeric column; 'd' is Date" in message
    kind, filled = _assert_same(frame, [{"op": "fill_null", "columns": ["x"], "strategy": "mean"}])
    assert filled["x"].dtype == pl.Int64
    assert filled["x"].to_list() == [1, 1, 2, 1, 2, 1]  # mean 5/3, truncated as Polars does


def test_a_many_part_version_transform_checks_and_matches(local_ws: Workspace) -> None:
    frame = pl.DataFrame({"x": [1, None, 2, None, 2, None]})
    local_ws.datasets.ingest("d", frame, part_rows=2)
    assert len(local_ws.datasets.version("d").parts) == 3
    for strategy in ("mean", "median", "backward"):
        with pytest.raises(InvalidInputError, match="Transform step 1: no column 'nosuch'"):
            local_ws.datasets.transform(
                "d", [{"op": "fill_null", "columns": ["nosuch"], "strategy": strategy}]
            )
    assert local_ws.datasets.version("d").version == 1  # no empty version was made
    made = local_ws.datasets.transform(
        "d", [{"op": "fill_null", "columns": ["x"], "strategy": "mean"}]
    )
    read = local_ws.datasets.read("d", made.version)
    expected = apply_steps(
        frame, parse_transform([{"op": "fill_null", "columns": ["x"], "strategy": "mean"}])
    )
    assert read.equals(expected) and read["x"].dtype == pl.Int64
