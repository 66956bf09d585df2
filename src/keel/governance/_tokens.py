"""API tokens' pure core: the format, the hash that is stored, and the role a token grants.

A token reads ``keel_<id>_<secret>``: ``id`` is the token's public, sortable id and ``secret``
is 256 random bits in URL-safe base64. Only SHA-256 of the whole token is stored; it is
compared in constant time. The token is shown once, when it is made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable

from keel.governance._permissions import ROLE_PERMISSIONS, Role
from keel.types import new_id

__all__ = [
    "TOKEN_PREFIX",
    "effective_roles",
    "hash_token",
    "make_token",
    "matches",
    "parse_token",
    "role_covers",
]

TOKEN_PREFIX = "keel_"  # noqa: S105  (a prefix, not a secret)
_TOKEN = re.compile(r"^keel_(?P<id>[0-9A-HJKMNP-TV-Z]{26})_(?P<secret>[A-Za-z0-9_-]{43})$")


def make_token() -> tuple[str, str]:
    """A new ``(token_id, token)``; the token carries 256 random bits."""
    token_id = new_id()
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii").rstrip("=")
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}"


def parse_token(token: str) -> str | None:
    """The id of a well-formed token, or None when it does not have the token format."""
    if len(token) > 128:
        return None
    match = _TOKEN.match(token)
    return None if match is None else match["id"]


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def matches(token: str, stored_hash: str) -> bool:
    """Whether ``token`` hashes to ``stored_hash`` (constant-time comparison)."""
    return hmac.compare_digest(hash_token(token).encode("ascii"), stored_hash.encode("ascii"))


def _permissions(role: str) -> frozenset[object] | None:
    try:
        return frozenset(ROLE_PERMISSIONS[Role(role)])
    except ValueError:
        return None


def role_covers(held: Iterable[str], wanted: str) -> bool:
    """Whether one of the ``held`` roles grants every permission of the ``wanted`` role."""
    need = _permissions(wanted)
    if need is None:
        return False
    for role in held:
        have = _permissions(role)
        if have is not None and need <= have:
            return True
    return False


def effective_roles(token_role: str, held: Iterable[str]) -> frozenset[str]:
    """The roles a token acts with: its own, never more than its principal holds now.

    While the principal still holds a role covering the token's, the token acts with exactly
    its role. If the principal lost that power, the token keeps only the principal's current
    roles that lie within the token's role (often none: it fails closed).
    """
    current = list(held)
    if role_covers(current, token_role):
        return frozenset({token_role})
    granted = _permissions(token_role)
    if granted is None:
        return frozenset()
    narrowed = set()
    for role in current:
        have = _permissions(role)
        if have is not None and have <= granted:
            narrowed.add(role)
    return frozenset(narrowed)
