"""Byte responses for downloads, with a header-safe file name."""

from __future__ import annotations

import re

from starlette.responses import Response

__all__ = ["download"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def download(data: bytes, name: str) -> Response:
    """``data`` as an attachment; the file name keeps only characters safe in a header."""
    base = _UNSAFE.sub("_", name.rsplit("/", 1)[-1])[:100] or "artifact"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{base}"'},
    )
