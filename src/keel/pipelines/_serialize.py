"""Step outputs as bytes in safe formats only: JSON, raw bytes, NumPy ``.npy``, Parquet, Arrow.

Nothing here unpickles. An output of another type needs a serializer registered with
:func:`register_serializer` (for example skops for scikit-learn models, which keel.training
registers); otherwise the step fails with a message saying so.

Every artifact starts with a one-line header ``KEEL-ARTIFACT/1 <format>\\n``, so loading
never guesses.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keel.errors import IntegrityError, InvalidInputError

__all__ = [
    "Serializer",
    "UnstorableError",
    "check_returnable",
    "dumps",
    "loads",
    "register_serializer",
]

_MAGIC = b"KEEL-ARTIFACT/1 "
_TUPLE = "__keel_tuple__"
_FLOAT = "__keel_float__"
#: Wraps a dict that has a key of its own named like a marker, so it stays a dict.
_DICT = "__keel_dict__"
_MARKERS = frozenset({_TUPLE, _FLOAT, _DICT})


class UnstorableError(InvalidInputError):
    """A step output that no safe format takes (the step fails for good: no retry)."""


@dataclass(frozen=True, slots=True)
class Serializer:
    """A safe format: whether it takes a value, and how to write and read it."""

    format: str
    accepts: Callable[[Any], bool]
    dump: Callable[[Any], bytes]
    load: Callable[[bytes], Any]


def _module(value: Any) -> str:
    return type(value).__module__.split(".", 1)[0]


def _is_json(value: Any, depth: int = 0) -> bool:
    if depth > 100:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False


def _encode(value: Any) -> Any:
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        encoded = {k: _encode(v) for k, v in value.items()}
        return {_DICT: encoded} if _MARKERS.intersection(encoded) else encoded
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT: repr(value)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            if _TUPLE in value:
                return tuple(_decode(item) for item in value[_TUPLE])
            if _FLOAT in value:
                return float(value[_FLOAT])
            if _DICT in value:
                return {k: _decode(v) for k, v in value[_DICT].items()}
        return {k: _decode(v) for k, v in value.items()}
    return value


def _json_dump(value: Any) -> bytes:
    return json.dumps(_encode(value), sort_keys=True, separators=(",", ":")).encode()


def _json_load(data: bytes) -> Any:
    return _decode(json.loads(data))


def _npy_dump(value: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=False)
    return buffer.getvalue()


def _npy_load(data: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def _is_npy(value: Any) -> bool:
    return (
        _module(value) == "numpy"
        and type(value).__name__ == "ndarray"
        and not value.dtype.hasobject
    )


def _pandas_dump(value: Any) -> bytes:
    buffer = io.BytesIO()
    value.to_parquet(buffer)
    return buffer.getvalue()


def _pandas_load(data: bytes) -> Any:
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    return pd.read_parquet(io.BytesIO(data))


def _polars_dump(value: Any) -> bytes:
    buffer = io.BytesIO()
    value.write_parquet(buffer)
    return buffer.getvalue()


def _polars_load(data: bytes) -> Any:
    import polars as pl

    return pl.read_parquet(io.BytesIO(data))


def _arrow_dump(value: Any) -> bytes:
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, value.schema) as writer:
        writer.write_table(value)
    return bytes(sink.getvalue().to_pybytes())


def _arrow_load(data: bytes) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _is_dataset_ref(value: Any) -> bool:
    return callable(getattr(value, "__keel_dataset_version__", None))


def _dataset_dump(value: Any) -> bytes:
    ref = dict(value.__keel_dataset_version__())
    return json.dumps(
        {"dataset": ref.get("dataset"), "version": ref.get("version"), "id": ref.get("id")},
        sort_keys=True,
    ).encode()


def _dataset_load(data: bytes) -> Any:
    from keel.pipelines._model import DatasetInput

    ref = json.loads(data)
    return DatasetInput(str(ref["dataset"]), int(ref["version"]), ref.get("id"))


_BUILTIN = [
    Serializer("dataset-version", _is_dataset_ref, _dataset_dump, _dataset_load),
    Serializer("json", _is_json, _json_dump, _json_load),
    Serializer("bytes", lambda v: isinstance(v, bytes | bytearray), bytes, bytes),
    Serializer("npy", _is_npy, _npy_dump, _npy_load),
    Serializer(
        "pandas-parquet",
        lambda v: _module(v) == "pandas" and type(v).__name__ == "DataFrame",
        _pandas_dump,
        _pandas_load,
    ),
    Serializer(
        "polars-parquet",
        lambda v: _module(v) == "polars" and type(v).__name__ == "DataFrame",
        _polars_dump,
        _polars_load,
    ),
    Serializer(
        "arrow-ipc",
        lambda v: _module(v) == "pyarrow" and type(v).__name__ == "Table",
        _arrow_dump,
        _arrow_load,
    ),
]
_registered: list[Serializer] = []
_lock = threading.Lock()


def register_serializer(serializer: Serializer) -> None:
    """Add a safe format, tried before the built-in ones (a format name may be replaced).

    Raises:
        InvalidInputError: If the format name is not a short token.
    """
    name = serializer.format
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInputError(
            f"Serializer format {name!r:.80} must be 1-64 letters, digits, '-', '_' or '.'."
        )
    with _lock:
        _registered[:] = [s for s in _registered if s.format != name]
        _registered.insert(0, serializer)


def _all() -> list[Serializer]:
    with _lock:
        return [*_registered, *_BUILTIN]


def _unstorable(value: Any, *, what: str, extra: str = "") -> UnstorableError:
    return UnstorableError(
        f"{what} is a {type(value).__module__}.{type(value).__qualname__}, which Keel cannot "
        "store in a safe format (JSON values, bytes, NumPy arrays, pandas/polars DataFrames, "
        f"Arrow tables){extra}. Return one of those, or register a serializer for the type "
        "with keel.pipelines.register_serializer (Keel never pickles artifacts)."
    )


def dumps(value: Any, *, what: str) -> bytes:
    """``value`` as a self-describing artifact in the first safe format that accepts it.

    Raises:
        UnstorableError: If no safe format accepts the value (``what`` names it).
    """
    for serializer in _all():
        if serializer.accepts(value):
            return _MAGIC + serializer.format.encode() + b"\n" + serializer.dump(value)
    raise _unstorable(value, what=what)


def check_returnable(value: Any, *, what: str) -> None:
    """In a worker process: refuse a value that can neither be stored nor sent back.

    A value a safe format takes here is fine; so is one that pickles (the runner's process
    may have a serializer registered for its type). Anything else fails now, naming it,
    rather than as the executor's pickling error.

    Raises:
        UnstorableError: If no safe format takes the value and it cannot be sent back.
    """
    if any(serializer.accepts(value) for serializer in _all()):
        return
    import pickle

    try:  # only serialised here, to see whether it can travel; nothing is unpickled
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise _unstorable(
            value,
            what=what,
            extra=f", and it cannot be sent back from the worker process either ({exc})"[:300],
        ) from None


def loads(data: bytes, *, what: str) -> Any:
    """The value of an artifact written by :func:`dumps`.

    Raises:
        IntegrityError: If the header is missing or names a format nobody registered.
    """
    if not data.startswith(_MAGIC) or b"\n" not in data[:200]:
        raise IntegrityError(f"{what} is not a Keel artifact (no header); it cannot be read.")
    header, _, payload = data.partition(b"\n")
    name = header[len(_MAGIC) :].decode(errors="replace")
    for serializer in _all():
        if serializer.format == name:
            try:
                return serializer.load(payload)
            except Exception as exc:  # the bytes verified, so the format cannot read them
                raise IntegrityError(
                    f"{what} is stored in the format '{name}' but does not read back "
                    f"({type(exc).__name__}: {str(exc)[:200]}); it is recomputed when a run "
                    "needs it."
                ) from exc
    raise IntegrityError(
        f"{what} is stored in the format '{name}', which no serializer here reads. Register "
        "it with keel.pipelines.register_serializer before loading."
    )
