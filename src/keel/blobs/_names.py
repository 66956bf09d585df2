"""Validation of the client-supplied names that become storage paths: scopes and digests.

Security rule 1 (clients never choose storage locations): a scope or digest reaches a path
only after it matched one of these strict patterns, so ``/``, ``..``, ``%2e``, NUL, trailing
newlines and every other surprise are rejected before any I/O.
"""

from __future__ import annotations

import re

from keel.errors import InvalidInputError

__all__ = [
    "DIGEST_PREFIX",
    "digest_hex",
    "is_key_id",
    "validate_digest",
    "validate_scope",
]

DIGEST_PREFIX = "sha256:"

# ``re.fullmatch`` (not ``$``, which also matches before a trailing newline).
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# A scope starts with a letter or digit, so it never collides with ``_tmp`` or ``_keys``.
_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Data key ids are ``keel.types.new_id()`` values: 26 Crockford base32 characters.
_KEY_ID = re.compile(r"[0-9A-Z]{26}")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def validate_digest(value: object) -> str:
    """Check a blob digest and return it.

    Args:
        value: The digest to check, ``sha256:`` followed by 64 lowercase hex digits.

    Returns:
        The digest, unchanged.

    Raises:
        InvalidInputError: If ``value`` is not a string of exactly that form.
    """
    if not isinstance(value, str):
        raise InvalidInputError(
            f"A blob digest must be a string, got {type(value).__name__}.", field="digest"
        )
    if _DIGEST.fullmatch(value) is None:
        raise InvalidInputError(
            f"Invalid blob digest {_shown(value)}: expected 'sha256:' followed by 64 lowercase "
            "hex digits, as returned by BlobStore.put_*.",
            field="digest",
        )
    return value


def validate_scope(value: object) -> str:
    """Check a scope (the project or dataset id that owns a data key) and return it.

    Args:
        value: The scope to check: 1-64 letters, digits, ``-`` or ``_``, starting with a
            letter or digit.

    Returns:
        The scope, unchanged.

    Raises:
        InvalidInputError: If ``value`` is not a string of that form.
    """
    if not isinstance(value, str):
        raise InvalidInputError(
            f"A blob scope must be a string, got {type(value).__name__}.", field="scope"
        )
    if _SCOPE.fullmatch(value) is None:
        raise InvalidInputError(
            f"Invalid blob scope {_shown(value)}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit (a project or dataset id).",
            field="scope",
        )
    return value


def is_key_id(value: str) -> bool:
    """Return whether ``value`` is a well-formed data key id (26 base32 characters)."""
    return _KEY_ID.fullmatch(value) is not None


def digest_hex(digest: str) -> str:
    """Return the 64 hex digits of a validated digest."""
    return digest[len(DIGEST_PREFIX) :]
