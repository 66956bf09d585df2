"""Pure helpers over frames: Parquet parts, per-column statistics, dtypes, and version diffs."""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keel.data._model import ColumnChange, Part
from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DTYPES",
    "encode_part",
    "frame_stats",
    "manifest_digest",
    "merge_stats",
    "parse_dtype",
    "schema_of",
    "stats_changes",
]

#: The dtype names users write in schema overrides and casts.
DTYPES = (
    "bool",
    "date",
    "datetime",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "string",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
)


def parse_dtype(name: str) -> pl.DataType:
    """``"int64"``, ``"string"``, ``"datetime"`` … as a Polars dtype."""
    import polars as pl

    table: dict[str, Any] = {
        "bool": pl.Boolean,
        "date": pl.Date,
        "datetime": pl.Datetime("us"),
        "float32": pl.Float32,
        "float64": pl.Float64,
        "int8": pl.Int8,
        "int16": pl.Int16,
        "int32": pl.Int32,
        "int64": pl.Int64,
        "string": pl.String,
        "uint8": pl.UInt8,
        "uint16": pl.UInt16,
        "uint32": pl.UInt32,
        "uint64": pl.UInt64,
    }
    key = str(name).strip().lower()
    key = {"str": "string", "utf8": "string", "float": "float64", "int": "int64"}.get(key, key)
    if key not in table:
        raise InvalidInputError(
            f"Unknown type {name!r}: use one of {', '.join(DTYPES)}.", dtype=str(name)[:40]
        )
    dtype: pl.DataType = table[key]() if isinstance(table[key], type) else table[key]
    return dtype


def schema_of(frame: pl.DataFrame) -> list[tuple[str, str]]:
    return [(name, str(dtype)) for name, dtype in frame.schema.items()]


def _scalar(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str):
        return value
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def frame_stats(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Mergeable statistics per column: count, nulls, min, max, and sum/sum of squares."""
    import polars as pl

    if frame.width == 0:
        return {}
    exprs: list[pl.Expr] = []
    numeric: list[str] = []
    ordered: list[str] = []
    for name, dtype in frame.schema.items():
        exprs.append(pl.col(name).null_count().alias(f"{name}\x00nulls"))
        if dtype.is_numeric() and dtype != pl.Boolean:
            numeric.append(name)
            column = pl.col(name).cast(pl.Float64)
            exprs += [
                column.sum().alias(f"{name}\x00sum"),
                (column * column).sum().alias(f"{name}\x00sumsq"),
            ]
        if dtype.is_numeric() or dtype.is_temporal() or dtype == pl.String:
            ordered.append(name)
            exprs += [
                pl.col(name).min().alias(f"{name}\x00min"),
                pl.col(name).max().alias(f"{name}\x00max"),
            ]
    row = frame.select(exprs).row(0, named=True)
    stats: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        entry: dict[str, Any] = {"count": frame.height, "nulls": int(row[f"{name}\x00nulls"])}
        if name in ordered:
            entry["min"] = _scalar(row[f"{name}\x00min"])
            entry["max"] = _scalar(row[f"{name}\x00max"])
        if name in numeric:
            entry["sum"] = _scalar(row[f"{name}\x00sum"])
            entry["sumsq"] = _scalar(row[f"{name}\x00sumsq"])
        stats[name] = entry
    return stats


def merge_stats(parts: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Combine per-part statistics into a version's, adding ``mean`` and ``std``."""
    merged: dict[str, dict[str, Any]] = {}
    for stats in parts:
        for name, entry in stats.items():
            into = merged.setdefault(name, {"count": 0, "nulls": 0})
            into["count"] += int(entry.get("count", 0))
            into["nulls"] += int(entry.get("nulls", 0))
            for key, pick in (("min", min), ("max", max)):
                if key in entry and entry[key] is not None:
                    old = into.get(key)
                    into[key] = entry[key] if old is None else pick(old, entry[key])
            for key in ("sum", "sumsq"):
                if key in entry:
                    if entry[key] is None or into.get(key, 0.0) is None:
                        into[key] = None
                    else:
                        into[key] = into.get(key, 0.0) + float(entry[key])
    for entry in merged.values():
        valid = entry["count"] - entry["nulls"]
        total, squares = entry.pop("sum", None), entry.pop("sumsq", None)
        if total is not None and squares is not None and valid > 0:
            mean = total / valid
            entry["mean"] = mean
            entry["std"] = math.sqrt(max(squares / valid - mean * mean, 0.0))
    return merged


def encode_part(frame: pl.DataFrame) -> tuple[bytes, Part]:
    """Write ``frame`` as a zstd Parquet part; return its bytes and its manifest entry."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", compression_level=1, statistics=False)
    data = buffer.getvalue()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return data, Part(digest=digest, rows=frame.height, size=len(data), stats=frame_stats(frame))


def manifest_digest(schema: Sequence[tuple[str, str]], parts: Sequence[Part], kind: str) -> str:
    """The version digest: SHA-256 of the canonical schema and part digests."""
    body = json.dumps(
        {"kind": kind, "schema": [list(c) for c in schema], "parts": [p.digest for p in parts]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def stats_changes(
    before_schema: Sequence[tuple[str, str]],
    after_schema: Sequence[tuple[str, str]],
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
) -> list[ColumnChange]:
    """Schema changes (added, removed, type) and per-column statistics that changed."""
    old, new = dict(before_schema), dict(after_schema)
    changes: list[ColumnChange] = []
    for name, dtype in new.items():
        if name not in old:
            changes.append(ColumnChange(name, "added", None, dtype))
        elif old[name] != dtype:
            changes.append(ColumnChange(name, "type", old[name], dtype))
    for name, dtype in old.items():
        if name not in new:
            changes.append(ColumnChange(name, "removed", dtype, None))
    for name in new:
        if name in old and dict(before.get(name, {})) != dict(after.get(name, {})):
            changes.append(
                ColumnChange(name, "stats", dict(before.get(name, {})), dict(after.get(name, {})))
            )
    return changes
