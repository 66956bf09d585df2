"""Frames handed to users: a version read back as pandas keeps what it holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = ["to_pandas"]


def to_pandas(frame: pl.DataFrame) -> Any:
    """``frame`` as pandas, integer and boolean columns with nulls as pandas' nullable dtypes
    (``Int64``, ``boolean``…): NumPy's would turn them into float64 (an id above 2**53 changes)
    and object. Columns without nulls keep NumPy dtypes, as Polars gives them."""
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    import polars as pl
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    nullable = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    result = frame.to_pandas()
    for name, dtype in frame.schema.items():
        column = frame.get_column(name)
        if (dtype.is_integer() or dtype.base_type() == pl.Boolean) and column.null_count():
            result[name] = column.to_arrow().to_pandas(types_mapper=nullable.get)
    return result
