"""Identifiers and small value types shared by every layer."""

from __future__ import annotations

import os
import re
import time
from enum import StrEnum
from typing import NewType

from keel.errors import InvalidInputError

__all__ = [
    "AuditEventId",
    "ExperimentId",
    "ModelVersionId",
    "ProjectId",
    "RegisteredModelId",
    "RunId",
    "RunStatus",
    "new_id",
    "validate_name",
]

ProjectId = NewType("ProjectId", str)
ExperimentId = NewType("ExperimentId", str)
RunId = NewType("RunId", str)
RegisteredModelId = NewType("RegisteredModelId", str)
ModelVersionId = NewType("ModelVersionId", str)
AuditEventId = NewType("AuditEventId", str)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """Return a new opaque, sortable, 26-character id (ULID layout: 48-bit ms time + 80 bits).

    Ids made later in time sort after earlier ones; within one millisecond the order is random.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class RunStatus(StrEnum):
    """The lifecycle of a run: RUNNING, then one of the three final states."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_final(self) -> bool:
        return self is not RunStatus.RUNNING


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def validate_name(value: object, *, what: str) -> str:
    """Check a user-chosen name (project, experiment, model, alias) and return it.

    Names start with a letter or digit and use letters, digits, ``_``, ``.`` and ``-``,
    up to 128 characters, so they are safe in URLs, paths and shells.
    """
    if not isinstance(value, str):
        raise InvalidInputError(
            f"The {what} must be a string, got {type(value).__name__}.", field=what
        )
    if not _NAME.fullmatch(value):
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise InvalidInputError(
            f"Invalid {what} {shown!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit.",
            field=what,
            value=shown,
        )
    return value
