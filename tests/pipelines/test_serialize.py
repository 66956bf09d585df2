"""Artifacts in safe formats only: exact round trips, and refusals that say what to do."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.errors import IntegrityError, InvalidInputError
from keel.pipelines import DatasetInput, Serializer, register_serializer
from keel.pipelines._serialize import dumps, loads

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_json_values_round_trip_exactly_tuples_included(value: object) -> None:
    assert loads(dumps(value, what="x"), what="x") == value


def test_non_finite_floats_and_dataset_references_round_trip() -> None:
    back = loads(dumps([math.inf, -math.inf, math.nan], what="x"), what="x")
    assert back[0] == math.inf and back[1] == -math.inf and math.isnan(back[2])
    ref = DatasetInput("churn", 3, id="DV9")
    assert loads(dumps(ref, what="x"), what="x") == ref


def test_arrays_and_frames_round_trip_without_pickle() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    back = loads(dumps(array, what="a"), what="a")
    assert back.dtype == np.float32 and np.array_equal(back, array)
    with pytest.raises(InvalidInputError, match="never pickles"):
        dumps(np.array([object()], dtype=object), what="Output 'x'")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    pd.testing.assert_frame_equal(loads(dumps(frame, what="f"), what="f"), frame)
    polars_frame = pl.DataFrame({"a": [1, 2], "b": [0.5, None]})
    assert loads(dumps(polars_frame, what="p"), what="p").equals(polars_frame)
    table = pa.table({"a": [1, 2, 3]})
    assert loads(dumps(table, what="t"), what="t").equals(table)


def test_unknown_formats_and_headerless_data_are_refused() -> None:
    with pytest.raises(IntegrityError, match="not a Keel artifact"):
        loads(b"\x80\x04pickle", what="Artifact 'x'")
    with pytest.raises(IntegrityError, match="format 'mystery'"):
        loads(b"KEEL-ARTIFACT/1 mystery\npayload", what="Artifact 'x'")
    with pytest.raises(InvalidInputError, match="register a serializer"):
        dumps({1, 2}, what="Output 's'")


def test_a_registered_serializer_handles_its_type() -> None:
    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    register_serializer(
        Serializer(
            "test-point",
            lambda v: isinstance(v, Point),
            lambda p: f"{p.x},{p.y}".encode(),
            lambda data: Point(*map(int, data.split(b","))),
        )
    )
    back = loads(dumps(Point(3, 4), what="p"), what="p")
    assert (back.x, back.y) == (3, 4)
    with pytest.raises(InvalidInputError, match="1-64 letters"):
        register_serializer(Serializer("bad name!", bool, bytes, bytes))
