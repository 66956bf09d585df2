"""Pure helpers over frames: Parquet parts, per-column statistics, dtypes, and version diffs."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keel.data._frames import refuse_objects
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
    "without_personal_values",
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
    """Mergeable statistics per column: count, nulls, min, max, and sum/sum of squares.

    Text columns get the least and greatest length (in characters) of their values, not the
    values: a version's metadata must not hold personal data (an email column's least value
    is an email), which erasure could not reach, and a lexical minimum says little anyway.
    """
    import polars as pl

    if frame.width == 0:
        return {}
    exprs: list[pl.Expr] = []
    numeric: list[str] = []
    ordered: list[str] = []
    text: list[str] = []
    casts: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        exprs.append(pl.col(name).null_count().alias(f"{name}\x00nulls"))
        if dtype.is_numeric() and dtype != pl.Boolean:
            numeric.append(name)
            # cast once (up front), not once for the sum and twice for the squares
            casts.append(pl.col(name).cast(pl.Float64).alias(f"{name}\x00float"))
            column = pl.col(f"{name}\x00float")
            exprs += [
                column.sum().alias(f"{name}\x00sum"),
                (column * column).sum().alias(f"{name}\x00sumsq"),
            ]
        if dtype.is_numeric() or dtype.is_temporal():
            ordered.append(name)
            exprs += [
                pl.col(name).min().alias(f"{name}\x00min"),
                pl.col(name).max().alias(f"{name}\x00max"),
            ]
        elif dtype == pl.String:
            text.append(name)
            length = pl.col(name).str.len_chars()
            exprs += [
                length.min().alias(f"{name}\x00min_length"),
                length.max().alias(f"{name}\x00max_length"),
            ]
    source = frame.hstack(frame.select(casts)) if casts else frame
    row = source.select(exprs).row(0, named=True)
    stats: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        entry: dict[str, Any] = {"count": frame.height, "nulls": int(row[f"{name}\x00nulls"])}
        if name in ordered:
            entry["min"] = _scalar(row[f"{name}\x00min"])
            entry["max"] = _scalar(row[f"{name}\x00max"])
        if name in text:
            entry["min_length"] = _scalar(row[f"{name}\x00min_length"])
            entry["max_length"] = _scalar(row[f"{name}\x00max_length"])
        if name in numeric:
            entry["sum"] = _scalar(row[f"{name}\x00sum"])
            entry["sumsq"] = _scalar(row[f"{name}\x00sumsq"])
        stats[name] = entry
    return stats


#: Statistics merged across parts by taking the least or the greatest.
_EXTREMES = (("min", min), ("max", max), ("min_length", min), ("max_length", max))


def merge_stats(
    parts: Iterable[Mapping[str, Mapping[str, Any]]], *, text: Collection[str] = ()
) -> dict[str, dict[str, Any]]:
    """Combine per-part statistics into a version's, adding ``mean`` and ``std``.

    ``text`` names the text columns: parts written before text statistics became lengths
    hold their values' ``min`` and ``max`` (which may be personal data): those are dropped,
    and so are the lengths when such a part had values (they would cover only the others).
    """
    merged: dict[str, dict[str, Any]] = {}
    unmeasured: set[str] = set()
    unsummed: set[str] = set()  # a part with values but no sum (withheld): no mean
    for stats in parts:
        for name, entry in stats.items():
            if "sum" not in entry and entry.get("count", 0) > entry.get("nulls", 0):
                unsummed.add(name)
            if name in text:
                entry = {k: v for k, v in entry.items() if k not in ("min", "max")}
                if "min_length" not in entry and entry.get("count", 0) > entry.get("nulls", 0):
                    unmeasured.add(name)
            into = merged.setdefault(name, {"count": 0, "nulls": 0})
            into["count"] += int(entry.get("count", 0))
            into["nulls"] += int(entry.get("nulls", 0))
            for key, pick in _EXTREMES:
                if key in entry and entry[key] is not None:
                    old = into.get(key)
                    into[key] = entry[key] if old is None else pick(old, entry[key])
            for key in ("sum", "sumsq"):
                if key in entry:
                    if entry[key] is None or into.get(key, 0.0) is None:
                        into[key] = None
                    else:
                        into[key] = into.get(key, 0.0) + float(entry[key])
    for name in unmeasured & merged.keys():
        merged[name].pop("min_length", None)
        merged[name].pop("max_length", None)
    for name in unsummed & merged.keys():
        merged[name].pop("sum", None)
        merged[name].pop("sumsq", None)
    for entry in merged.values():
        valid = entry["count"] - entry["nulls"]
        total, squares = entry.pop("sum", None), entry.pop("sumsq", None)
        if total is not None and squares is not None and valid > 0:
            mean = total / valid
            entry["mean"] = mean
            entry["std"] = math.sqrt(max(squares / valid - mean * mean, 0.0))
    return merged


#: Statistics that are, or give away, one row's value (the least or greatest value; the mean
#: of a single row): withheld for columns that hold personal data. Parts also lose the sums
#: that a version's mean is merged from.
_VALUE_STATS = ("min", "max", "mean", "std")
#: Levels whose columns keep no row's value in metadata even without a category (a salary
#: column an override made ``restricted``).
_WITHHELD_LEVELS = ("confidential", "restricted")
_PART_VALUE_STATS = ("min", "max", "sum", "sumsq")


def without_personal_values(
    manifest: Mapping[str, Any], classification: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``manifest`` without the statistics that are a row's value, for every column its
    ``classification`` labels with a personal-data category or as confidential or restricted
    (in the version's and in each part's statistics).

    A version's metadata outlives erasure of its rows and is shown to anyone who may read the
    dataset's description, so a date-of-birth or an integer phone column must not keep its
    least and greatest value there; counts, nulls and text lengths stay.
    """
    labels = (classification or {}).get("columns") or {}
    personal = {
        str(name)
        for name, label in labels.items()
        if isinstance(label, Mapping)
        and (label.get("categories") or label.get("sensitivity") in _WITHHELD_LEVELS)
    }
    result = dict(manifest)
    if not personal:
        return result
    result["stats"] = _withheld(manifest.get("stats") or {}, personal, _VALUE_STATS)
    result["parts"] = [
        {**part, "stats": _withheld(part.get("stats") or {}, personal, _PART_VALUE_STATS)}
        for part in manifest.get("parts", [])
    ]
    return result


def _withheld(
    stats: Mapping[str, Mapping[str, Any]], columns: Collection[str], dropped: Collection[str]
) -> dict[str, dict[str, Any]]:
    return {
        name: {k: v for k, v in entry.items() if not (name in columns and k in dropped)}
        for name, entry in stats.items()
    }


#: Parquet encodings by Arrow type, chosen per column: integers and dates/times as deltas,
#: floats split by byte stream; every other column (text, booleans, nested…) dictionary-encoded
#: with a small dictionary page, so a column of many distinct values falls back to plain early.
#: Cheaper to write than dictionary + plain everywhere (Polars' writer: ~30% less CPU on the
#: bench/csv_ingest.py parts) for parts of about the same size once compressed.
_DICTIONARY_PAGE_BYTES = 64 * 1024
_ZSTD_LEVEL = 1
_ROW_GROUP_ROWS = 1 << 20
_PARALLEL_ROWS = 50_000


def _encodings(schema: Any) -> tuple[dict[str, str], list[str]]:
    """``column_encoding`` and ``use_dictionary`` for the pyarrow writer, from an Arrow schema."""
    import pyarrow as pa  # type: ignore[import-untyped]

    encodings: dict[str, str] = {}
    dictionary: list[str] = []
    for field in schema:
        kind = field.type
        if "." in field.name:
            # pyarrow names columns by dotted path: "a.b" would also name field b of a
            # struct column a, which may be of another type. Such columns keep the default.
            dictionary.append(field.name)
        elif (
            pa.types.is_integer(kind)
            or pa.types.is_date(kind)
            or pa.types.is_timestamp(kind)
            or pa.types.is_time(kind)
            or pa.types.is_duration(kind)
        ):
            encodings[field.name] = "DELTA_BINARY_PACKED"
        elif pa.types.is_float32(kind) or pa.types.is_float64(kind):
            encodings[field.name] = "BYTE_STREAM_SPLIT"
        else:
            dictionary.append(field.name)
    return encodings, dictionary


def encode_part(frame: pl.DataFrame) -> tuple[bytes | memoryview, Part]:
    """Write ``frame`` as a zstd Parquet part; return its bytes (a read-only view of the
    buffer they were written into, not copied) and its manifest entry.

    The same frame, in the same chunk layout, always gives the same bytes (parts are
    content-addressed: an append reuses its parent's parts); the same rows chunked otherwise
    may be paged differently. Encodings are chosen per column from its type (see
    ``_encodings``). The statistics of a large frame are computed on a second thread while it
    is encoded (both release the GIL). A column of Python objects (Polars' ``Object``, whose
    bytes would be memory addresses) is an ``InvalidInputError`` naming it.
    """
    refuse_objects(frame)
    if frame.height < _PARALLEL_ROWS:
        return _part(_encode(frame), frame_stats(frame), frame.height)
    outcome: dict[str, Any] = {}
    # The thread gets a frame object of its own (sharing the buffers): two threads on one
    # Polars frame can deadlock, one holding the frame's lock and waiting for the GIL while
    # the other holds the GIL and waits for the lock in `to_arrow`.
    own = frame.clone()

    def compute() -> None:
        try:
            outcome["stats"] = frame_stats(own)
        except BaseException as exc:  # raised again in the caller's thread below
            outcome["error"] = exc

    helper = threading.Thread(target=compute, name="keel-part-stats", daemon=True)
    helper.start()
    try:
        data = _encode(frame)
    finally:
        helper.join()
    if "error" in outcome:
        raise outcome["error"]
    return _part(data, outcome["stats"], frame.height)


def _encode(frame: pl.DataFrame) -> bytes | memoryview:
    import pyarrow as pa

    try:
        recorded = frame.head(0).to_arrow().schema
    except pa.ArrowException:  # a type Arrow has no equivalent for (Int128): Polars' writer
        buffer = io.BytesIO()
        frame.write_parquet(
            buffer, compression="zstd", compression_level=_ZSTD_LEVEL, statistics=False
        )
        return buffer.getvalue()
    try:
        return _write(_shared(frame, recorded), recorded)
    except pa.ArrowNotImplementedError:  # string views where the writer cannot take them
        return _write(frame.to_arrow(), recorded)


def _shared(frame: pl.DataFrame, recorded: Any) -> Any:
    """``frame`` as Arrow, its text shared as string views rather than copied.

    Polars' default export (the types ``recorded`` holds: ``large_string`` …) copies every
    string, about a tenth of the cost of encoding a text-heavy part; the views are written as
    the same Parquet values. A column of any other type that
    differs from ``recorded`` (dictionaries and nested types holding views) is exported the
    default way.
    """
    import polars as pl
    import pyarrow as pa

    table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    for index, field in enumerate(table.schema):
        expected = recorded.field(index)
        if field.type == expected.type:
            continue
        if pa.types.is_string_view(field.type) and pa.types.is_large_string(expected.type):
            continue
        if pa.types.is_binary_view(field.type) and pa.types.is_large_binary(expected.type):
            continue
        column = frame.select(field.name).to_arrow().column(0)
        table = table.set_column(index, expected, column)
    return table


def _write(table: Any, recorded: Any) -> bytes | memoryview:
    """Parquet bytes of ``table``, recording ``recorded`` as the Arrow schema readers restore
    (what pyarrow records itself, so a table of views and one of copies give the same bytes).

    The bytes are handed on as a read-only view of pyarrow's buffer (no copy into a Python
    ``bytes``); the view keeps the buffer alive until the part is written.
    """
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    _write_to(sink, table, recorded)
    return memoryview(sink.getvalue()).cast("B")


def _write_to(sink: Any, table: Any, recorded: Any) -> None:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    encodings, dictionary = _encodings(recorded)
    with pq.ParquetWriter(
        sink,
        table.schema,
        compression="zstd",
        compression_level=_ZSTD_LEVEL,
        use_dictionary=dictionary,
        column_encoding=encodings or None,
        dictionary_pagesize_limit=_DICTIONARY_PAGE_BYTES,
        write_statistics=False,
        store_schema=False,
    ) as writer:
        writer.write_table(table, row_group_size=_ROW_GROUP_ROWS)
        schema = base64.b64encode(recorded.serialize().to_pybytes())
        writer.add_key_value_metadata({b"ARROW:schema": schema})


def _part(
    data: bytes | memoryview, stats: dict[str, dict[str, Any]], rows: int
) -> tuple[bytes | memoryview, Part]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return data, Part(digest=digest, rows=rows, size=len(data), stats=stats)


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
