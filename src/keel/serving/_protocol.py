"""The Open Inference Protocol V2 (JSON) and the plain ``/predict`` body, parsed and validated.

Every function raises ``RequestError`` with the HTTP status and a message that names the
field, what was expected and what arrived; nothing here ever lets a bad body become a 500.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "MAX_DEPTH",
    "MAX_ID",
    "MAX_ROWS",
    "V2_NUMERIC",
    "RequestError",
    "Signature",
    "check_outputs",
    "dumps",
    "output_datatype",
    "parse_json",
    "parse_predict",
    "parse_v2",
    "v2_datatype",
]

MAX_DEPTH = 32
MAX_ROWS = 10_000
#: the longest request ``id`` accepted (it is echoed and logged with every row)
MAX_ID = 1024
V2_NUMERIC = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
_NUMBER = (int, float)


class RequestError(Exception):
    """A request the server refuses, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_V2_OF = {np_name: v2 for v2, np_name in V2_NUMERIC.items()}


def v2_datatype(dtype: str) -> str:
    """The V2 datatype name of a numpy dtype name (``BYTES`` for strings and objects)."""
    return _V2_OF.get(dtype, "BYTES")


def output_datatype(dtype: Any) -> str:
    """The datatype a response declares for an output of numpy ``dtype``.

    Floats are FP64 whatever the model computed in: JSON numbers are doubles and ``tolist``
    widens FP16/FP32 values exactly, so metadata can promise one type for every runtime.
    """
    return "FP64" if dtype.kind == "f" else v2_datatype(dtype.name)


@dataclass(frozen=True, slots=True)
class Signature:
    """What a served model accepts: feature names and the numpy dtype it computes in."""

    features: tuple[str, ...]
    dtype: str

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None, *, dtype: str) -> Signature:
        if not stored or not stored.get("inputs"):
            raise RequestError(
                500, "The model version has no stored signature; register it with a sample."
            )
        return cls(tuple(str(i["name"]) for i in stored["inputs"]), dtype)

    @property
    def width(self) -> int:
        return len(self.features)


def _json_codec() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    """orjson when it is installed (about 3x faster on small bodies), else the stdlib."""
    try:
        import orjson
    except ImportError:
        return (
            lambda b: json.loads(b, parse_constant=_no_constant),
            lambda v: json.dumps(v, separators=(",", ":")).encode("utf-8"),
        )
    return orjson.loads, orjson.dumps


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_loads, dumps = _json_codec()


def parse_json(body: bytes) -> Any:
    """Decode a JSON body, refusing malformed text and nesting deeper than MAX_DEPTH."""
    if not body:
        raise RequestError(400, "The request body is empty; send a JSON object.")
    try:
        value = _loads(body)
    except RecursionError:
        raise RequestError(400, f"The JSON body nests deeper than {MAX_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        if "recursion" in str(exc).lower() or "depth limit" in str(exc):
            raise RequestError(
                400, f"The JSON body nests deeper than {MAX_DEPTH} levels."
            ) from None
        raise RequestError(400, _not_json(body, exc)) from None
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:  # cheap: only then walk the value
        _check_depth(value)
    return value


def _not_json(body: bytes, exc: Exception) -> str:
    """Say why a body is not JSON; NaN and Infinity (Python's json.dumps default) by name."""
    message = str(exc)
    pos = getattr(exc, "pos", None)
    literal = message.split()[0] if message.endswith(" is not a JSON number") else None
    if literal is None and isinstance(pos, int):
        text = body.decode("utf-8", "replace")
        literal = next((w for w in ("NaN", "Infinity") if text.startswith(w, pos)), None)
    if literal is None:
        return f"The request body is not valid JSON: {message}."
    return (
        f"The request body is not valid JSON: {literal.lstrip('-')} is not a JSON number "
        "(Python's json.dumps writes NaN and Infinity unless allow_nan=False). Send finite "
        "numbers, or leave out the rows that hold none."
    )


def _check_depth(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise RequestError(400, f"The JSON body nests deeper than {MAX_DEPTH} levels.")
        if isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, list | dict))
        elif isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, list | dict))


def _flatten(data: Any, shape: list[int], where: str) -> list[Any]:
    """The elements of ``data`` in row-major order: flat as sent, or nested exactly as ``shape``.

    The protocol allows the natural multi-dimensional form or the flat one; nesting that does
    not follow the shape (ragged rows, columns sent as rows) is refused, never flattened.
    """
    if not isinstance(data, list):
        raise RequestError(400, f"{where}: 'data' must be a JSON array.")
    if all(type(v) in _NUMBER or type(v) is bool for v in data):
        return data
    if not any(isinstance(v, list) for v in data):
        return data  # flat; its elements are checked against the datatype next
    level: list[Any] = [data]
    for depth, size in enumerate(shape, start=1):
        inner: list[Any] = []
        for item in level:
            if not isinstance(item, list):
                _misnested(where, f"a value at depth {depth} is {_show(item)}, not an array")
            if len(item) != size:
                _misnested(
                    where,
                    f"an array at depth {depth} holds {len(item)} "
                    f"element{'' if len(item) == 1 else 's'}; shape {shape} needs {size}",
                )
            inner.extend(item)
        level = inner
    if any(isinstance(v, list) for v in level):
        _misnested(where, f"'data' is nested deeper than shape {shape}")
    return level


def _misnested(where: str, detail: str) -> None:
    raise RequestError(
        400,
        f"{where}: {detail}. Nest 'data' exactly as the shape, or send it flat in row-major order.",
    )


def _show(value: Any) -> str:
    return json.dumps(value)[:40]


def _position(index: int, shape: Sequence[int]) -> list[int]:
    """The row-major index ``index`` as coordinates in ``shape``."""
    coordinates = []
    for size in reversed(shape):
        index, rest = divmod(index, size) if size else (index, 0)
        coordinates.append(rest)
    return coordinates[::-1]


_NOTHING = object()


def _array(
    values: Sequence[Any],
    datatype: str,
    dtype: str,
    locate: Callable[[int], str],
    *,
    kind: str | None = None,
) -> NDArray[Any]:
    """``values`` read as ``datatype``, converted to the model's ``dtype`` (one dimension).

    Integers must fit their datatype and convert exactly; floats are rounded to the model's
    precision but must stay within its range. ``locate(i)`` names element ``i`` in messages,
    ``kind`` what an element must be. Only a refusal walks the values a second time.
    """
    import numpy as np

    if datatype == "BOOL":
        bad = next((v for v in values if type(v) is not bool), _NOTHING)
    else:
        bad = next((v for v in values if type(v) not in _NUMBER), _NOTHING)
    if bad is not _NOTHING:
        at = next(i for i, v in enumerate(values) if v is bad)
        if kind is None:
            kind = f"{datatype} value" + (" (true or false)" if datatype == "BOOL" else "")
        raise RequestError(400, f"{locate(at)}: {_show(bad)} is not a {kind}.")
    np_name = V2_NUMERIC[datatype]
    low = high = 0
    if datatype[0] in "IU" and values:  # INT8..INT64, UINT8..UINT64
        low, high = _integer_bounds(values, datatype, np_name, locate)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked just below
        declared = np.asarray(values, dtype=np_name)
        array = declared.astype(dtype, copy=False)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            _refuse_non_finite(values, declared, array, datatype, locate)
        if (low or high) and max(-low, high) > 2 ** (np.finfo(array.dtype).nmant + 1):
            _refuse_inexact(values, array, locate)
    return array


def _integer_bounds(
    values: Sequence[Any], datatype: str, np_name: str, locate: Callable[[int], str]
) -> tuple[int, int]:
    import numpy as np

    info = np.iinfo(np_name)
    span = f"an integer from {info.min} to {info.max}"
    bad = next((v for v in values if type(v) is not int), _NOTHING)
    if bad is not _NOTHING:
        at = next(i for i, v in enumerate(values) if v is bad)
        raise RequestError(400, f"{locate(at)}: {_show(bad)} is not a {datatype} value ({span}).")
    low, high = min(values), max(values)
    if low < info.min or high > info.max:
        at = next(i for i, v in enumerate(values) if not info.min <= v <= info.max)
        raise RequestError(
            400,
            f"{locate(at)}: {values[at]} is outside the range of {datatype} "
            f"({info.min} to {info.max}).",
        )
    return int(low), int(high)


def _refuse_non_finite(
    values: Sequence[Any],
    declared: NDArray[Any],
    array: NDArray[Any],
    datatype: str,
    locate: Callable[[int], str],
) -> None:
    import numpy as np

    at = int(np.flatnonzero(~np.isfinite(array))[0])
    value = values[at]
    if not math.isfinite(value):  # only a decoder that accepts NaN literals gets here
        raise RequestError(400, f"{locate(at)}: NaN or infinite values are not accepted.")
    if not np.isfinite(declared[at]):
        limit = float(np.finfo(declared.dtype).max)
        raise RequestError(
            400, f"{locate(at)}: {_show(value)} is outside the range of {datatype} (±{limit:.8g})."
        )
    limit = float(np.finfo(array.dtype).max)
    raise RequestError(
        400,
        f"{locate(at)}: {_show(value)} is beyond the range of this model's {array.dtype} "
        f"inputs (±{limit:.8g}).",
    )


def _refuse_inexact(
    values: Sequence[Any], array: NDArray[Any], locate: Callable[[int], str]
) -> None:
    """Integers that the model's float type cannot hold are refused, not silently rounded."""
    for at, (value, held) in enumerate(zip(values, array.tolist(), strict=True)):
        if int(held) != value:
            raise RequestError(
                400,
                f"{locate(at)}: {value} cannot be held exactly by this model's {array.dtype} "
                f"inputs (it would become {int(held)}); send {v2_datatype(array.dtype.name)} "
                "data if that rounding is acceptable.",
            )


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(
            400, f"{where}'parameters' must be an object of name: value pairs, not {_show(value)}."
        )
    return value


def parse_v2(
    body: dict[str, Any] | Any, signature: Signature
) -> tuple[NDArray[Any], str | None, list[str] | None]:
    """The input matrix (rows x features), the request id, and the requested output names.

    Accepts either one tensor of shape ``[N, F]`` (any name) or one tensor per feature, named
    as in the signature, of shape ``[N]`` or ``[N, 1]``.
    """
    import numpy as np

    if not isinstance(body, dict):
        raise RequestError(400, "A V2 inference request must be a JSON object with 'inputs'.")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, "'id' must be a string.")
    if request_id is not None and len(request_id) > MAX_ID:
        raise RequestError(
            400, f"'id' is {len(request_id)} characters long; at most {MAX_ID} are kept."
        )
    if _parameters(body.get("parameters"), "").get("binary_data_output"):
        raise RequestError(400, _BINARY)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(400, "'inputs' must be a non-empty array of tensors.")
    tensors: dict[str, NDArray[Any]] = {}
    for index, tensor in enumerate(inputs):
        name, array = _tensor(index, tensor, signature.dtype)
        if name in tensors:
            raise RequestError(400, f"input '{name[:64]}' is given twice.")
        tensors[name] = array
    outputs = _requested_outputs(body.get("outputs"))
    width = signature.width
    if len(tensors) == 1:
        ((name, array),) = tensors.items()
        if array.ndim == 2 and array.shape[1] == width:
            return _rows(array), request_id, outputs
        if width == 1 and name == signature.features[0] and array.ndim in (1, 2):
            return _rows(array.reshape(-1, 1)), request_id, outputs
        raise RequestError(
            400,
            f"input '{name[:64]}' has shape {list(array.shape)}; this model takes shape "
            f"[-1, {width}] (rows x features {', '.join(signature.features[:5])}"
            f"{', ...' if width > 5 else ''}), or one tensor per feature.",
        )
    missing = [f for f in signature.features if f not in tensors]
    extra = [n for n in tensors if n not in signature.features]
    if missing or extra:
        raise RequestError(
            400,
            f"Inputs do not match the model's features: missing {missing[:10]}, unknown "
            f"{extra[:10]}. Send one tensor per feature, or one [-1, {width}] tensor.",
        )
    columns = []
    rows = None
    for feature in signature.features:
        array = tensors[feature]
        if array.ndim == 2 and array.shape[1] == 1:
            array = array.reshape(-1)
        if array.ndim != 1:
            raise RequestError(400, f"input '{feature}' must have shape [N] or [N, 1].")
        if rows is not None and array.shape[0] != rows:
            raise RequestError(
                400, f"input '{feature}' has {array.shape[0]} rows; the others have {rows}."
            )
        rows = array.shape[0]
        columns.append(array)
    return _rows(np.column_stack(columns)), request_id, outputs


def _tensor(index: int, tensor: Any, dtype: str) -> tuple[str, NDArray[Any]]:
    """One request input: its name and its values in the model's dtype, shaped as sent."""
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        raise RequestError(400, f"{where} must be an object with name, shape, datatype, data.")
    name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    if not isinstance(name, str) or not name:
        raise RequestError(400, f"{where}: 'name' must be a non-empty string.")
    where = f"input '{name[:64]}'"
    if "binary_data_size" in _parameters(tensor.get("parameters"), f"{where}: "):
        raise RequestError(400, _BINARY)
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise RequestError(400, f"{where}: 'shape' must be a list of non-negative integers.")
    if datatype not in V2_NUMERIC:
        raise RequestError(
            400,
            f"{where}: datatype {json.dumps(datatype)[:30]} is not accepted; this model "
            f"takes numeric tensors ({', '.join(V2_NUMERIC)}).",
        )
    if "data" not in tensor:
        raise RequestError(400, f"{where}: 'data' is missing.")
    flat = _flatten(tensor["data"], shape, where)
    expected = math.prod(shape)
    if len(flat) != expected:
        raise RequestError(
            400, f"{where}: shape {shape} needs {expected} elements, but 'data' has {len(flat)}."
        )
    array = _array(
        flat, datatype, dtype, lambda i: f"{where} element {_position(i, shape)}"
    ).reshape(shape)
    return name, array


def _rows(array: NDArray[Any]) -> NDArray[Any]:
    if array.shape[0] == 0:
        raise RequestError(400, "The request holds no rows.")
    if array.shape[0] > MAX_ROWS:
        raise RequestError(413, f"{array.shape[0]} rows is more than the limit of {MAX_ROWS}.")
    return array


def _requested_outputs(outputs: Any) -> list[str] | None:
    """The output names asked for; None (all outputs) when absent or empty, as clients mean."""
    if outputs is None or outputs == []:
        return None
    if not isinstance(outputs, list):
        raise RequestError(400, "'outputs' must be an array of {\"name\": ...} objects.")
    names: list[str] = []
    for index, item in enumerate(outputs):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequestError(400, "Each entry of 'outputs' needs a string 'name'.")
        if _parameters(item.get("parameters"), f"outputs[{index}]: ").get("binary_data"):
            raise RequestError(400, _BINARY)
        if item["name"] in names:
            raise RequestError(400, f"Output '{item['name'][:64]}' is requested twice.")
        names.append(item["name"])
    return names


def check_outputs(wanted: list[str] | None, produced: Sequence[str]) -> list[str]:
    """The outputs to answer with; an unknown name is refused before the model runs."""
    if wanted is None:
        return list(produced)
    unknown = [n for n in wanted if n not in produced]
    if unknown:
        raise RequestError(
            400, f"Unknown outputs {unknown[:5]}; this model returns {', '.join(produced)}."
        )
    return wanted


_BINARY = (
    "The binary tensor data extension is not supported by this server; send JSON tensors "
    "(tritonclient: set_data_from_numpy(..., binary_data=False) and "
    "InferRequestedOutput(name, binary_data=False))."
)


def parse_predict(body: Any, signature: Signature) -> NDArray[Any]:
    """The input matrix of a plain ``/predict`` body: records, columns, or instances.

    ``{"records": [{"f0": 1.0, ...}, ...]}``, ``[{"f0": ...}, ...]``,
    ``{"columns": {"f0": [...], ...}}`` or ``{"instances": [[...], ...]}``.
    """
    import numpy as np

    features = signature.features
    width = len(features)
    if isinstance(body, list):
        body = {"records": body}
    if not isinstance(body, dict):
        raise RequestError(400, _LAYOUTS)
    given = [k for k in ("records", "columns", "instances") if k in body]
    if len(given) > 1:
        raise RequestError(
            400,
            f"The body holds both '{given[0]}' and '{given[1]}'; send exactly one of "
            "'records', 'columns' or 'instances'.",
        )
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list) or not records:
            raise RequestError(400, "'records' must be a non-empty array of objects.")
        if len(records) > MAX_ROWS:
            raise RequestError(413, f"{len(records)} rows is more than the limit of {MAX_ROWS}.")
        values: list[Any] = []
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise RequestError(400, f"records[{i}] must be an object of feature values.")
            missing = [f for f in features if f not in record]
            if missing:
                raise RequestError(400, f"records[{i}] is missing features {missing[:10]}.")
            extra = [k for k in record if k not in features]
            if extra:
                raise RequestError(400, f"records[{i}] has unknown fields {extra[:10]}.")
            values.extend(record[f] for f in features)
        return _array(
            values,
            "FP64",
            signature.dtype,
            lambda i: f"records[{i // width}] feature '{features[i % width]}'",
            kind="number",
        ).reshape(len(records), width)
    if "columns" in body:
        columns = body["columns"]
        if not isinstance(columns, dict):
            raise RequestError(400, "'columns' must be an object of feature -> array.")
        missing = [f for f in features if f not in columns]
        extra = [k for k in columns if k not in features]
        if missing or extra:
            raise RequestError(
                400, f"'columns' is missing {missing[:10]} / has unknown {extra[:10]}."
            )
        lengths = {len(c) if isinstance(c, list) else -1 for c in columns.values()}
        if len(lengths) != 1 or -1 in lengths or 0 in lengths:
            raise RequestError(400, "Every column must be a non-empty array of the same length.")
        cols = [
            _array(columns[f], "FP64", signature.dtype, _column_locator(f), kind="number")
            for f in features
        ]
        return _rows(np.column_stack(cols))
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
            raise RequestError(400, "'instances' must be a non-empty array of arrays.")
        if any(len(r) != width for r in rows):
            raise RequestError(400, f"Every instance must hold {width} values.")
        flat = [v for r in rows for v in r]
        array = _array(
            flat,
            "FP64",
            signature.dtype,
            lambda i: f"instances[{i // width}][{i % width}]",
            kind="number",
        )
        return _rows(array.reshape(len(rows), -1))
    raise RequestError(400, _LAYOUTS)


_LAYOUTS = 'Send {"records": [...]}, {"columns": {...}} or {"instances": [...]}.'


def _column_locator(feature: str) -> Callable[[int], str]:
    return lambda i: f"columns['{feature[:64]}'][{i}]"
