"""Checks of what users log: metric, param and tag keys, values, steps, artifact paths."""

from __future__ import annotations

import math
import numbers
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from keel.errors import InvalidInputError

__all__ = [
    "MAX_PARAM_VALUE",
    "MAX_TAG_VALUE",
    "check_artifact_path",
    "check_key",
    "check_metric_value",
    "check_step",
    "check_timestamp",
    "stringify_params",
]

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
_KEY = re.compile(r"^[A-Za-z0-9_\-. /:]+$")


def check_key(key: object, *, what: str) -> str:
    """A metric, param or tag key: 1-250 of letters, digits, ``_ - . / :`` and spaces."""
    if not isinstance(key, str):
        raise InvalidInputError(
            f"A {what} key must be a string, got {type(key).__name__} ({key!r:.40}).", what=what
        )
    if not key or len(key) > MAX_KEY or not _KEY.fullmatch(key) or key.startswith("/"):
        raise InvalidInputError(
            f"Invalid {what} key {key[:60]!r}: use 1-{MAX_KEY} letters, digits, spaces and "
            "'_', '-', '.', '/', ':' (not starting with '/').",
            what=what,
        )
    if ".." in key.split("/"):
        raise InvalidInputError(f"Invalid {what} key {key[:60]!r}: '..' is not allowed.")
    return key


def check_metric_value(key: str, value: object) -> float:
    """A metric value as float; bools and non-numbers are refused, NaN and ±inf kept."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(
            f"Metric '{key}' has value {value!r:.60} of type {type(value).__name__}; a metric "
            "value must be a number (int or float). Log text as a tag or param instead.",
            key=key,
        )
    return float(value)


def check_step(key: str, step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        raise InvalidInputError(
            f"Metric '{key}' has step {step!r:.40}; a step must be an integer.", key=key
        )
    if not -(2**63) <= step < 2**63:
        raise InvalidInputError(f"Metric '{key}' has step {step}, outside the 64-bit range.")
    return step


def check_timestamp(key: str, timestamp: object) -> int:
    """A metric timestamp: integer milliseconds since the epoch."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Integral):
        raise InvalidInputError(
            f"Metric '{key}' has timestamp {timestamp!r:.40}; a timestamp is an integer count "
            "of milliseconds since the Unix epoch (keel.clock.now_millis()).",
            key=key,
        )
    value = int(timestamp)
    if not 0 <= value < 2**63:
        raise InvalidInputError(f"Metric '{key}' has timestamp {value}, outside the valid range.")
    return value


def stringify_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as strings (they are recorded as text, like MLflow), keys and sizes checked."""
    out: dict[str, str] = {}
    for key, value in params.items():
        check_key(key, what="param")
        if isinstance(value, float) and math.isnan(value):
            text = "nan"
        else:
            text = value if isinstance(value, str) else str(value)
        if len(text) > MAX_PARAM_VALUE:
            raise InvalidInputError(
                f"Param '{key}' is {len(text)} characters long; the limit is "
                f"{MAX_PARAM_VALUE}. Log long values as an artifact instead.",
                key=key,
            )
        out[key] = text
    return out


def check_artifact_path(path: object) -> str:
    """A relative, normalised artifact path with no ``..``, absolute part, or backslash."""
    if not isinstance(path, str) or not path or len(path) > 1024:
        raise InvalidInputError(
            f"Artifact path {path!r:.80} must be a non-empty string of at most 1024 characters."
        )
    if "\\" in path or "\x00" in path or path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise InvalidInputError(
            f"Artifact path {path[:80]!r} must be relative and use '/' separators."
        )
    normal = posixpath.normpath(path)
    if normal.startswith("..") or normal in (".", "") or ".." in normal.split("/"):
        raise InvalidInputError(
            f"Artifact path {path[:80]!r} leaves the run's artifact folder; use a relative "
            "path without '..'."
        )
    return normal
