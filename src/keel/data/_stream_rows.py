"""Stream messages to rows, and the messages that cannot be rows to rejects.

Every message of a micro-batch that fits the dataset's columns becomes a row (fields in any
order; a field it lacks is null); one that does not — a field the dataset has no column for, a
value its column's type cannot hold as it is (text that is exactly a number, boolean or ISO date
fills such a column: Redis streams carry only text), a body that is not a JSON object, a field named
like the message-id column — becomes a reject with its message id and the reason, and is
acknowledged with the rest. A bad message is recorded, never silently dropped or changed, and
never blocks the stream (it would come back first on every run).

The first batch of a new dataset fixes its columns: the fields of its messages, in the order
they first appear, each typed from its values (text, integer, float — integers and floats
together are float —, boolean, or nested as Polars reads it; a field null in every message is
text; a field whose values are of several other kinds takes the kind of its first value, and
the messages with other kinds are rejects), unless the caller declares its type. A dataset
that did not come from a stream (no ``_message_id`` column) takes messages without that
column; their ids are still recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import math
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
_FLOAT_EXACT = 2**53  # integers a float holds exactly

#: (position in the batch, the message, its row) of the messages still to place.
_Item = tuple[int, Message, dict[str, Any]]


def message_rows(
    messages: Sequence[Message],
    schema: Mapping[str, pl.DataType] | None,
    *,
    declared: Mapping[str, pl.DataType] | None = None,
) -> tuple[pl.DataFrame, list[Reject]]:
    """The rows of ``messages`` in ``schema`` (None: the first batch, which fixes it), and a
    reject per message that cannot be a row (``line`` is its position in the batch).

    ``declared`` types some fields of a first batch instead of inferring them from its values
    (a price whose first values happen to be whole numbers is still a float column); a
    declared field the batch lacks is still a column."""
    with_id = schema is None or MESSAGE_ID in schema
    rejects: list[Reject] = []
    items: list[_Item] = []
    for position, message in enumerate(messages, 1):
        if message.problem:
            rejects.append(_reject(position, message, message.problem))
        elif with_id and MESSAGE_ID in message.fields:
            reason = (
                f"its field {MESSAGE_ID!r} is reserved for the message id; rename it at the "
                "producer"
            )
            rejects.append(_reject(position, message, reason))
        else:
            row = {MESSAGE_ID: message.id, **message.fields} if with_id else dict(message.fields)
            items.append((position, message, row))
    if schema is None:
        import polars as pl

        schema = {**_infer(items), **(declared or {})}
        if with_id:  # first, as inferred columns have it, even when no message is a row
            schema = {MESSAGE_ID: pl.String(), **schema}
    frame, more = _fit(items, schema)
    return frame, sorted(rejects + more, key=lambda r: r.line)


def _reject(position: int, message: Message, reason: str) -> Reject:
    text = json.dumps({"id": message.id, "fields": message.fields}, default=str)
    return Reject(position, f"message {message.id}: {reason}", text[:_MAX_TEXT])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "nested"


def _infer(items: Sequence[_Item]) -> dict[str, pl.DataType]:
    """The columns a first batch fixes (see the module docstring)."""
    import polars as pl

    values: dict[str, list[Any]] = {}
    for _, _, row in items:
        for name, value in row.items():
            found = values.setdefault(name, [])
            if value is not None:
                found.append(value)
    scalar = {"bool": pl.Boolean(), "int": pl.Int64(), "float": pl.Float64(), "str": pl.String()}
    schema: dict[str, pl.DataType] = {}
    for name, seen in values.items():
        kinds = {_kind(v) for v in seen}
        if not seen:
            schema[name] = pl.String()
        elif kinds == {"int", "float"}:
            schema[name] = pl.Float64()
        else:
            first = _kind(seen[0])
            if first != "nested":
                schema[name] = scalar[first]
            else:
                nested = [v for v in seen if _kind(v) == "nested"]
                try:
                    schema[name] = pl.Series(nested, strict=False).dtype
                except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
                    schema[name] = pl.Series([seen[0]], strict=False).dtype
    return schema


_NOT = object()  # a value the column's type cannot hold as it is


def _convert(value: Any, dtype: pl.DataType) -> Any:
    """``value`` as the column's type holds it, or ``_NOT``: no rounding, no boolean as a
    number, no number as text, an integer in its range. Text reads as a number, boolean or
    date only when it is exactly one (``"3"``, ``"2.5"``, ``"true"``, ``"2024-01-02"``): Redis
    streams carry text only."""
    import polars as pl

    if value is None:
        return None
    if dtype == pl.String:
        return value if isinstance(value, str) else _NOT
    if isinstance(value, str) and dtype != pl.String:
        value = _parsed(value, dtype)
        if value is _NOT:
            return _NOT
    if dtype == pl.Boolean:
        return value if isinstance(value, bool) else _NOT
    if isinstance(value, bool):
        return _NOT
    if dtype.is_integer():
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        low, high = _int_range(dtype)
        return value if isinstance(value, int) and low <= value <= high else _NOT
    if dtype.is_float():
        if isinstance(value, int) and abs(value) > _FLOAT_EXACT:
            return _NOT
        return float(value) if isinstance(value, int | float) else _NOT
    if dtype in (pl.Date, pl.Datetime):
        return value if isinstance(value, dt.date) else _NOT
    try:  # nested and other types: Polars' own conversion, kept only if nothing changed
        same = pl.Series([value], dtype=dtype, strict=True).to_list() == [value]
    except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
        return _NOT
    return value if same else _NOT


def _parsed(text: str, dtype: pl.DataType) -> Any:
    """Text that is exactly a value of ``dtype`` as that value, else ``_NOT``."""
    import polars as pl

    try:
        if dtype == pl.Boolean:
            return {"true": True, "false": False}.get(text.lower(), _NOT)
        if dtype.is_integer():
            number = int(text)
            return number if str(number) == text else _NOT
        if dtype.is_float():
            result = float(text)
            return result if math.isfinite(result) or text.lower() in _NON_FINITE else _NOT
        if dtype == pl.Date:
            return dt.date.fromisoformat(text)
        if dtype == pl.Datetime:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return _NOT
    return text  # a nested type: the text is not one


_NON_FINITE = ("nan", "inf", "-inf", "infinity", "-infinity")


def _int_range(dtype: pl.DataType) -> tuple[int, int]:
    import numpy as np

    info = np.iinfo(str(dtype).lower())
    return int(info.min), int(info.max)


def _fit(
    items: Sequence[_Item], schema: Mapping[str, pl.DataType]
) -> tuple[pl.DataFrame, list[Reject]]:
    """The messages whose fields are columns of ``schema`` and whose values its types hold
    as they are, as rows in its column order; the others as rejects."""
    import polars as pl

    rejects: list[Reject] = []
    rows: list[dict[str, Any]] = []
    for item in items:
        position, message, row = item
        extra = [field for field in row if field not in schema]
        converted = {n: _convert(v, schema[n]) for n, v in row.items() if n in schema}
        wrong = next(((n, row[n]) for n, v in converted.items() if v is _NOT), None)
        if extra:
            names = [c for c in schema if c != MESSAGE_ID]
            reason = f"fields {extra} are not columns of the dataset (its columns: {names})"
            rejects.append(_reject(position, message, reason))
        elif wrong is not None:
            name, value = wrong
            reason = f"field {name!r}: {value!r:.80} is not a {schema[name]}"
            rejects.append(_reject(position, message, reason))
        else:
            rows.append(converted)
    columns = [
        pl.Series(name, [row.get(name) for row in rows], dtype=dtype, strict=False)
        for name, dtype in schema.items()
    ]
    return pl.DataFrame(columns), rejects
