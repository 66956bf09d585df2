"""Keel's one error tree, organised by what callers catch.

::

    KeelError
    ├── InvalidInputError (ValueError)        bad arguments, malformed filters
    │   └── FilterSyntaxError                 a search filter or ordering that does not parse
    ├── NotFoundError (LookupError)           an id or name that does not exist in the project
    ├── AlreadyExistsError                    a duplicate name
    ├── ConflictError                         a stale update (optimistic concurrency) or bad state
    ├── PermissionDeniedError (PermissionError)
    │   └── AuthenticationError               no, an expired, revoked or forged credential
    ├── IntegrityError                        a digest, signature or audit link that fails
    ├── ConfigurationError                    settings, keys or files that are missing or wrong
    │   └── SchemaOutdatedError               the metadata store needs ``keel db upgrade``
    ├── MissingDependencyError (ImportError)  an optional extra is not installed
    └── StorageError (OSError)                the metadata or blob store failed underneath us

Every error carries its context as keyword arguments (kept in ``details``) and a bounded
message that says what went wrong, where, and how to fix it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "FilterSyntaxError",
    "IntegrityError",
    "InvalidInputError",
    "KeelError",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "SchemaOutdatedError",
    "StorageError",
]

_MAX_MESSAGE = 2000


def _bounded(text: str) -> str:
    if len(text) <= _MAX_MESSAGE:
        return text
    return text[: _MAX_MESSAGE - 15] + " … (truncated)"


class KeelError(Exception):
    """The root of every error Keel raises on purpose."""

    #: A stable, machine-readable code (used by the CLI's ``--json`` and the REST API).
    code = "KEEL_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        self.message = _bounded(message)
        self.details: dict[str, Any] = details
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class InvalidInputError(KeelError, ValueError):
    """An argument, name, value or definition that Keel cannot accept."""

    code = "INVALID_INPUT"


class FilterSyntaxError(InvalidInputError):
    """A search filter or ordering clause that does not parse."""

    code = "INVALID_FILTER"


class NotFoundError(KeelError, LookupError):
    """An object that does not exist (in the caller's project)."""

    code = "NOT_FOUND"


class AlreadyExistsError(KeelError):
    """An object with the same unique name already exists."""

    code = "ALREADY_EXISTS"


class ConflictError(KeelError):
    """A concurrent or stale update, or an operation not allowed in the object's state."""

    code = "CONFLICT"


class PermissionDeniedError(KeelError, PermissionError):
    """The principal may not perform this action (authorization fails closed)."""

    code = "PERMISSION_DENIED"


class AuthenticationError(PermissionDeniedError):
    """The caller could not be identified: a missing, expired, revoked or forged credential."""

    code = "UNAUTHENTICATED"


class IntegrityError(KeelError):
    """Stored content that does not verify: a digest, a signature, or the audit chain."""

    code = "INTEGRITY"


class ConfigurationError(KeelError):
    """Settings, key material or files that are missing or invalid."""

    code = "CONFIGURATION"


class SchemaOutdatedError(ConfigurationError):
    """The metadata store's schema is older (or newer) than this version of Keel."""

    code = "SCHEMA_OUTDATED"


class MissingDependencyError(KeelError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    code = "MISSING_DEPENDENCY"

    def __init__(self, package: str, *, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the package '{package}', which is not installed. "
            f"Install it with: pip install 'keel-mlops[{extra}]'",
            package=package,
            extra=extra,
        )


class StorageError(KeelError, OSError):
    """The metadata store or blob store failed (I/O, connection, locking)."""

    code = "STORAGE"
