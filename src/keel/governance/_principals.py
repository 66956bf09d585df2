"""Principal names (``user:NAME``, ``service:NAME``): a pure check, no database code, so the
project-file validation can use it without loading the store."""

from __future__ import annotations

import re

from keel.errors import InvalidInputError

__all__ = ["check_principal_name"]

_PRINCIPAL = re.compile(r"^(user|service):[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,199}$")


def check_principal_name(name: object) -> str:
    """``user:<name>`` or ``service:<name>`` with a plain name (letters, digits, ``_.@+-``)."""
    if not isinstance(name, str) or not _PRINCIPAL.match(name):
        shown = str(name)[:60]
        raise InvalidInputError(
            f"Invalid principal {shown!r}: write user:NAME or service:NAME, NAME being 1-200 "
            "letters, digits, '_', '.', '@', '+' or '-'.",
            principal=shown,
        )
    return name
