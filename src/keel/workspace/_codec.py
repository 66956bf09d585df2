"""JSON encoding of the services' values, shared by the REST server and the remote SDK.

Values are frozen dataclasses; they travel as JSON objects of their fields (or of their own
``to_dict()``), datetimes as ISO-8601, and NaN and infinities as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"``. :func:`from_jsonable` rebuilds the same dataclass from its
type hints, so the SDK returns exactly the types local mode returns.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

__all__ = ["from_jsonable", "to_jsonable"]

T = TypeVar("T")
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (dicts, lists, str, int, float, bool, None)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(item) for item in items]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return to_jsonable(to_dict())
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def from_jsonable(kind: type[T], data: Any) -> T:
    """Rebuild a value of type ``kind`` (a dataclass, or a list/dict of them) from JSON."""
    return typing.cast(T, _convert(kind, data))


def _decoders() -> dict[type, Any]:
    """Values whose ``to_dict()`` is not their fields: how to read them back."""
    if not _DECODERS:
        from keel.data import DatasetVersion
        from keel.serving import Deployment, DeploymentRevision, DeploymentState

        def dataset_version(data: Any) -> DatasetVersion:
            fields = {**data, "schema": [[c["name"], c["dtype"]] for c in data["schema"]]}
            return typing.cast(DatasetVersion, _fields(DatasetVersion, fields))

        def deployment(data: Any) -> Deployment:
            state = DeploymentState.from_dict(data)
            return typing.cast(Deployment, _fields(Deployment, {**data, "state": state}))

        def revision(data: Any) -> DeploymentRevision:
            state = DeploymentState.from_dict(data)
            return typing.cast(
                DeploymentRevision, _fields(DeploymentRevision, {**data, "state": state})
            )

        _DECODERS.update(
            {
                DatasetVersion: dataset_version,
                Deployment: deployment,
                DeploymentRevision: revision,
            }
        )
    return _DECODERS


_DECODERS: dict[type, Any] = {}


def _fields(kind: Any, data: Any) -> Any:
    """A dataclass from the JSON of its fields (values already of their type pass through)."""
    hints = typing.get_type_hints(kind)
    values = {}
    for f in dataclasses.fields(kind):
        if not f.init or f.name not in data:
            continue
        value = data[f.name]
        hint = hints[f.name]
        passes = hint is not Any and isinstance(hint, type) and isinstance(value, hint)
        values[f.name] = value if passes else _convert(hint, value)
    return kind(**values)


def _convert(kind: Any, data: Any) -> Any:
    if data is None or kind is Any:
        return data
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        for option in options:
            try:
                return _convert(option, data)
            except (TypeError, ValueError):
                continue
        return data
    if origin is tuple and (args := typing.get_args(kind)) and Ellipsis not in args:
        if len(args) != len(data):  # a fixed-length tuple such as tuple[int, float]
            raise TypeError(f"expected {len(args)} items, got {len(data)}")
        return tuple(_convert(item, element) for item, element in zip(args, data, strict=True))
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(kind)
        item = args[0] if args else Any
        converted = [_convert(item, element) for element in data]
        return converted if origin is list else origin(converted)
    if origin is dict:
        _key, item = typing.get_args(kind) or (str, Any)
        return {key: _convert(item, element) for key, element in data.items()}
    if kind is float:
        if isinstance(data, str):
            return _SPECIAL[data] if data in _SPECIAL else float(data)
        return float(data)
    if kind is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise TypeError(f"expected an integer, got {data!r:.40}")
        return data
    if kind is datetime:
        return datetime.fromisoformat(data)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(data)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        parse = getattr(kind, "from_jsonable", None) or _decoders().get(kind)
        if callable(parse):
            return parse(data)
        if isinstance(data, str):
            raise TypeError(f"expected an object for {kind.__name__}")
        return _fields(kind, data)
    return data
