"""Parquet, JSON and NDJSON files, from local paths and fsspec URLs; statistics and transforms."""

from __future__ import annotations

import math
from pathlib import Path

import fsspec
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data import apply_steps, parse_transform
from keel.data._parts import frame_stats, merge_stats
from keel.errors import InvalidInputError
from keel.workspace import Workspace


def test_parquet_json_and_ndjson_sources(local_ws: Workspace, tmp_path: Path) -> None:
    frame = pl.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    frame.write_parquet(tmp_path / "f.parquet")
    frame.write_json(tmp_path / "f.json")
    (tmp_path / "f.ndjson").write_text(
        '{"id": 1, "name": "a"}\n{"id": 2, "name": "b"}\nnot json\n[1]\n{"id": 3, "name": "c"}\n',
        encoding="utf-8",
    )
    for name, file in (("p", "f.parquet"), ("j", "f.json"), ("n", "f.ndjson")):
        version = local_ws.datasets.ingest(name, tmp_path / file)
        assert local_ws.datasets.read(name).equals(frame), name
    assert local_ws.datasets.version("n").rejected_rows == 2
    assert local_ws.datasets.rejects("n")["line"].to_list() == [3, 4]
    assert version.source is not None and version.source["kind"] == "ndjson"


def test_any_fsspec_url(local_ws: Workspace) -> None:
    with fsspec.open("memory://keel-test/loans.csv", "w") as handle:
        handle.write("id,amount\n1,2.5\n2,3.5\n")
    version = local_ws.datasets.ingest("mem", "memory://keel-test/loans.csv")
    assert version.row_count == 2 and version.source is not None
    assert version.source["url"] == "memory://keel-test/loans.csv"
    with pytest.raises(InvalidInputError, match="Cannot tell what kind"):
        local_ws.datasets.ingest("x", "memory://keel-test/loans.unknown")


def test_bad_transform_steps_say_which_step_and_why() -> None:
    with pytest.raises(InvalidInputError, match="step 1: each step needs 'op'"):
        parse_transform([{"op": "explode"}])
    with pytest.raises(InvalidInputError, match="step 2: the expression"):
        parse_transform([{"op": "drop_nulls"}, {"op": "filter", "where": "amount >>> 2"}])
    with pytest.raises(InvalidInputError, match="does not parse"):
        parse_transform([{"op": "derive", "column": "x", "expr": "__import__('os').system('id')"}])
    frame = pl.DataFrame({"a": [1, None, 3]})
    with pytest.raises(InvalidInputError, match="no column 'b'"):
        apply_steps(frame, parse_transform([{"op": "cast", "column": "b", "dtype": "int64"}]))
    filled = apply_steps(frame, parse_transform([{"op": "fill_null", "column": "a", "value": 0}]))
    assert filled["a"].to_list() == [1, 0, 3]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=60
    ),
    cut=st.integers(0, 60),
)
def test_merged_part_statistics_equal_whole_frame_statistics(
    values: list[float | None], cut: int
) -> None:
    frame = pl.DataFrame({"x": values}, schema={"x": pl.Float64})
    cut = min(cut, frame.height)
    merged = merge_stats([frame_stats(frame.head(cut)), frame_stats(frame.slice(cut))])
    whole = merge_stats([frame_stats(frame)])
    assert merged["x"]["count"] == whole["x"]["count"] == len(values)
    assert merged["x"]["nulls"] == whole["x"]["nulls"]
    assert merged["x"].get("min") == whole["x"].get("min")
    assert merged["x"].get("max") == whole["x"].get("max")
    present = [v for v in values if v is not None]
    if present:
        assert math.isclose(merged["x"]["mean"], sum(present) / len(present), abs_tol=1e-3)
