"""Upload staging: a request streams bytes to a server-chosen file, later consumed by id.

Clients never choose where bytes land: the server names every staged file with 128 random
bits under ``<home>/uploads/<project id>/``; an upload id is checked against its format before
it touches a path, and a staged file is only visible from the project that uploaded it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from keel.errors import InvalidInputError, NotFoundError
from keel.server._errors import PayloadTooLargeError

__all__ = ["StagedUpload", "UploadStaging"]

_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
_TTL = 24 * 3600


@dataclass(frozen=True, slots=True)
class StagedUpload:
    id: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return {"upload_id": self.id, "size": self.size, "sha256": self.sha256}


class UploadStaging:
    """Staged uploads under one folder, per project, bounded in size and age."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self._root = root
        self._max = max_bytes

    async def receive(self, project_id: str, chunks: AsyncIterator[bytes]) -> StagedUpload:
        """Stream ``chunks`` to a new staged file; refuse (and delete) it past the limit."""
        folder = self._folder(project_id)
        folder.mkdir(parents=True, exist_ok=True)
        self._sweep(folder)
        upload_id = secrets.token_urlsafe(16)
        target = folder / upload_id
        digest = hashlib.sha256()
        size = 0
        try:
            with open(target, "xb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self._max:
                        raise PayloadTooLargeError(
                            f"The upload is over the limit of {self._max:,} bytes.",
                            limit=self._max,
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return StagedUpload(upload_id, size, digest.hexdigest())

    def path(self, project_id: str, upload_id: str) -> Path:
        """The staged file of ``upload_id`` in the project (NotFoundError if none)."""
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise InvalidInputError(
                "Invalid upload id: pass the upload_id returned by POST .../uploads unchanged."
            )
        found = self._folder(project_id) / upload_id
        if not found.is_file():
            raise NotFoundError(
                f"Upload '{upload_id}' does not exist in this project (staged uploads are kept "
                "for a day and used once). Upload the file again.",
                upload_id=upload_id,
            )
        return found

    def discard(self, project_id: str, upload_id: str) -> None:
        (self._folder(project_id) / upload_id).unlink(missing_ok=True)

    def _folder(self, project_id: str) -> Path:
        if not re.match(r"^[0-9A-Z]{26}$", project_id):
            raise InvalidInputError("Invalid project id.")
        return self._root / project_id

    @staticmethod
    def _sweep(folder: Path) -> None:
        cutoff = time.time() - _TTL
        for entry in folder.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            except OSError:
                continue
