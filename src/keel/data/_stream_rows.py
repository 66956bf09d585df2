"""Stream messages to rows, and the messages that cannot be rows to rejects.

Every message of a micro-batch that fits the dataset's columns becomes a row (fields in any
order; a field it lacks is null); one that does not — a field the dataset has no column for, a
value its column's type cannot hold without change, a body that is not a JSON object, a field
named like the message-id column — becomes a reject with its message id and the reason, and is
acknowledged with the rest. A bad message is recorded, never silently dropped, and never blocks
the stream (it would come back first on every run).

The first batch of a new dataset fixes its columns: the fields of its messages, with the types
Polars infers (a field that is null in every message is text, and so is one whose values mix
numbers and text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keel.data._model import Reject
from keel.data._streams import Message

if TYPE_CHECKING:
    import polars as pl

__all__ = ["MESSAGE_ID", "message_rows"]

#: The column holding each row's message id (a producer's field of that name is refused).
MESSAGE_ID = "_message_id"
_MAX_TEXT = 200

#: (position in the batch, the message, its row) of the messages still to place.
_Item = tuple[int, Message, dict[str, Any]]


def message_rows(
    messages: Sequence[Message], schema: Mapping[str, pl.DataType] | None
) -> tuple[pl.DataFrame, list[Reject]]:
    """The rows of ``messages`` in ``schema`` (None: the first batch, which fixes it), and a
    reject per message that cannot be a row (``line`` is its position in the batch)."""
    rejects: list[Reject] = []
    items: list[_Item] = []
    for position, message in enumerate(messages, 1):
        if MESSAGE_ID in message.fields:
            rejects.append(
                _reject(
                    position,
                    message,
                    f"its field {MESSAGE_ID!r} is reserved for the message id; rename it at "
                    "the producer",
                )
            )
        else:
            items.append((position, message, {MESSAGE_ID: message.id, **message.fields}))
    frame, more = _first(items) if schema is None else _fit(items, schema)
    return frame, sorted(rejects + more, key=lambda r: r.line)


def _reject(position: int, message: Message, reason: str) -> Reject:
    text = json.dumps({"id": message.id, "fields": message.fields}, default=str)
    return Reject(position, f"message {message.id}: {reason}", text[:_MAX_TEXT])


def _frame(items: Sequence[_Item]) -> pl.DataFrame | None:
    """The rows as a frame with inferred types, or None when a field's values mix types."""
    import polars as pl

    try:
        return pl.from_dicts([row for _, _, row in items], infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
        return None


def _first(items: Sequence[_Item]) -> tuple[pl.DataFrame, list[Reject]]:
    """The first batch: its messages fix the columns (by the first message when a field's
    values mix types, the others then fitted to it)."""
    import polars as pl

    if not items:
        return pl.DataFrame(), []
    frame = _frame(items)
    if frame is None:
        frame = _frame(items[:1])
        if frame is None:
            position, message, _ = items[0]
            rest = _first(items[1:])
            reason = "its fields cannot be read as a row (values of mixed types in a list?)"
            return rest[0], [_reject(position, message, reason), *rest[1]]
        schema = {name: _text_if_null(dtype) for name, dtype in frame.schema.items()}
        return _fit(items, schema)
    return frame.cast({n: pl.String for n, t in frame.schema.items() if t == pl.Null}), []


def _text_if_null(dtype: pl.DataType) -> pl.DataType:
    import polars as pl

    return pl.String() if dtype == pl.Null else dtype


def _fit(
    items: Sequence[_Item], schema: Mapping[str, pl.DataType]
) -> tuple[pl.DataFrame, list[Reject]]:
    """The messages whose fields are columns of ``schema`` and whose values its types hold
    unchanged, as rows in its column order; the others as rejects."""
    import polars as pl

    rejects: list[Reject] = []
    kept: list[_Item] = []
    for item in items:
        extra = [field for field in item[2] if field not in schema]
        if extra:
            names = [c for c in schema if c != MESSAGE_ID]
            reason = f"fields {extra} are not columns of the dataset (its columns: {names})"
            rejects.append(_reject(item[0], item[1], reason))
        else:
            kept.append(item)
    if not kept:
        return pl.DataFrame(schema=dict(schema)), rejects
    raw = _frame(kept)
    if raw is None:  # a field's values mix types: each message on its own
        frames: list[pl.DataFrame] = []
        for item in kept:
            frame, bad = _fit([item], schema) if len(kept) > 1 else _unreadable(item, schema)
            frames.append(frame)
            rejects += bad
        return pl.concat(frames, how="vertical"), rejects
    columns: list[pl.Series] = []
    refused: dict[int, str] = {}  # row index → the first reason
    for name, dtype in schema.items():
        if name not in raw.columns:
            columns.append(pl.Series(name, [None] * raw.height, dtype=dtype))
            continue
        column = raw.get_column(name)
        fitted, lost = _cast(column, dtype)
        for index in lost.arg_true().to_list():
            value = column[index]
            refused.setdefault(index, f"field {name!r}: {value!r} is not a {dtype}")
        columns.append(fitted)
    frame = pl.DataFrame(columns)
    if refused:
        keep = pl.Series([index not in refused for index in range(raw.height)])
        frame = frame.filter(keep)
        rejects += [_reject(kept[i][0], kept[i][1], why) for i, why in refused.items()]
    return frame, rejects


def _unreadable(
    item: _Item, schema: Mapping[str, pl.DataType]
) -> tuple[pl.DataFrame, list[Reject]]:
    import polars as pl

    reason = "its fields cannot be read as a row (values of mixed types in a list?)"
    return pl.DataFrame(schema=dict(schema)), [_reject(item[0], item[1], reason)]


def _cast(column: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """``column`` as ``dtype``, and which of its values that changes (lost or altered: a
    2.75 into an integer column, "abc" into a number, are refused, not truncated or nulled)."""
    import polars as pl

    if column.dtype == dtype:
        return column, pl.Series([False] * column.len())
    try:
        fitted = column.cast(dtype, strict=False)
        back = fitted.cast(column.dtype, strict=False)
        changed = column.is_not_null() & (fitted.is_null() | ~back.eq_missing(column))
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        fitted = pl.Series(column.name, [None] * column.len(), dtype=dtype)
        changed = column.is_not_null()
    return fitted, changed
