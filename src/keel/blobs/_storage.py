"""The storage root: the one place ``keel.blobs`` touches fsspec (imported on first use).

Every write goes to a temporary object under ``<root>/_tmp/`` and is then moved to its final
name, so a crash never leaves a partial file under a final name. The only local-filesystem
branch is durability: on a local disk the temporary file is fsynced and renamed with
``os.replace`` and the destination folder fsynced; elsewhere (S3, GCS, memory) the
filesystem's own ``mv`` publishes the object.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable
from typing import Any, BinaryIO

from keel.errors import ConfigurationError, MissingDependencyError, StorageError

__all__ = ["StorageRoot", "fsync_dir"]

TMP_DIR = "_tmp"


class StorageRoot:
    """An fsspec folder (``file:///…``, ``s3://bucket/prefix``, ``memory://…``).

    Args:
        url: The fsspec URL of the root. Nothing is resolved or touched until first use.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._resolved: tuple[Any, str, bool] | None = None

    @property
    def url(self) -> str:
        """The URL this root was created with."""
        return self._url

    def _fs(self) -> tuple[Any, str, bool]:
        """Return ``(filesystem, root path, is_local)``, resolving the URL once."""
        if self._resolved is None:
            import fsspec.core
            from fsspec.implementations.local import LocalFileSystem

            try:
                fs, path = fsspec.core.url_to_fs(self._url)
            except ImportError as exc:
                scheme = self._url.partition("://")[0]
                if scheme in ("s3", "s3a"):
                    raise MissingDependencyError(
                        "s3fs", extra="s3", purpose=f"The blob store at {self._url!r}"
                    ) from exc
                raise ConfigurationError(
                    f"The blob store at {self._url!r} needs the fsspec implementation of "
                    f"'{scheme}://', which is not installed: {exc}",
                    url=self._url,
                ) from exc
            except ValueError as exc:
                raise ConfigurationError(
                    f"Cannot open the blob store at {self._url!r}: {exc}. Use a file:// URL, "
                    "a local path, or s3://bucket/prefix (pip install 'keel-mlops[s3]').",
                    url=self._url,
                ) from exc
            self._resolved = (fs, str(path).rstrip("/"), isinstance(fs, LocalFileSystem))
        return self._resolved

    def path(self, *parts: str) -> str:
        """Return the filesystem path of ``parts`` (already validated names) under the root."""
        return "/".join((self._fs()[1], *parts))

    def _failed(self, action: str, path: str, exc: OSError) -> StorageError:
        return StorageError(
            f"The blob store at {self._url!r} could not {action} {path!r}: {exc}. Check that "
            "the location exists, is writable and has free space.",
            url=self._url,
            path=path,
        )

    def exists(self, path: str) -> bool:
        """Return whether a file exists at ``path``."""
        try:
            return bool(self._fs()[0].exists(path))
        except OSError as exc:
            raise self._failed("check", path, exc) from exc

    def open_read(self, path: str) -> BinaryIO:
        """Open ``path`` for reading bytes.

        Raises:
            FileNotFoundError: If nothing is stored at ``path``.
        """
        try:
            handle: BinaryIO = self._fs()[0].open(path, "rb")
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._failed("open", path, exc) from exc
        return handle

    def read_small(self, path: str, *, limit: int) -> bytes | None:
        """Return the content of a small file, or ``None`` if it does not exist.

        Raises:
            StorageError: If the file is larger than ``limit`` bytes or cannot be read.
        """
        try:
            with self._fs()[0].open(path, "rb") as handle:
                data: bytes = handle.read(limit + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._failed("read", path, exc) from exc
        if len(data) > limit:
            raise StorageError(
                f"{path!r} in the blob store at {self._url!r} is larger than {limit} bytes; "
                "it is not a file Keel wrote.",
                url=self._url,
                path=path,
            )
        return data

    def write_temp(self, chunks: Iterable[bytes]) -> str:
        """Write ``chunks`` to a new temporary file, durably, and return its path.

        The temporary file is removed if writing fails, including when ``chunks`` raises (its
        exception propagates unchanged; storage failures become :class:`StorageError`).
        """
        fs, _, is_local = self._fs()
        temp = self.path(TMP_DIR, f"{uuid.uuid4().hex}.tmp")
        try:
            fs.makedirs(self.path(TMP_DIR), exist_ok=True)
            handle = fs.open(temp, "wb")
        except OSError as exc:
            raise self._failed("create", temp, exc) from exc
        try:
            with handle:
                for chunk in chunks:
                    try:
                        handle.write(chunk)
                    except OSError as exc:
                        raise self._failed("write", temp, exc) from exc
                try:
                    if is_local:
                        handle.flush()
                        os.fsync(handle.fileno())
                except OSError as exc:
                    raise self._failed("flush", temp, exc) from exc
        except BaseException:
            self.discard(temp)
            raise
        return temp

    def commit(self, temp: str, final: str) -> bool:
        """Move a temporary file to its final name, unless that name already exists.

        Returns:
            True if ``final`` was created, False if it existed (the temporary is dropped).
        """
        fs, _, is_local = self._fs()
        parent = final.rsplit("/", 1)[0]
        try:
            if fs.exists(final):
                self.discard(temp)
                return False
            if is_local:
                is_new_folder = not os.path.isdir(parent)
                os.makedirs(parent, exist_ok=True)
                os.replace(temp, final)
                fsync_dir(parent)
                if is_new_folder:  # make the new folders' own entries durable too
                    self._fsync_ancestors(parent)
            else:
                fs.makedirs(parent, exist_ok=True)
                fs.mv(temp, final)
        except OSError as exc:
            self.discard(temp)
            raise self._failed("publish", final, exc) from exc
        return True

    def _fsync_ancestors(self, folder: str) -> None:
        root = self._fs()[1]
        while folder != root and folder.startswith(root + "/"):
            folder = folder.rsplit("/", 1)[0]
            fsync_dir(folder)

    def discard(self, temp: str) -> None:
        """Remove a temporary file if it is still there (best effort)."""
        with contextlib.suppress(OSError):
            self._fs()[0].rm_file(temp)

    def remove(self, path: str) -> bool:
        """Remove the file at ``path``; return whether it existed."""
        fs = self._fs()[0]
        try:
            if not fs.exists(path):
                return False
            fs.rm_file(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._failed("remove", path, exc) from exc
        return True

    def remove_tree(self, path: str) -> None:
        """Remove the folder ``path`` and everything under it, if it exists."""
        fs = self._fs()[0]
        try:
            if fs.exists(path):
                fs.rm(path, recursive=True)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._failed("remove", path, exc) from exc

    def list_names(self, path: str) -> list[str]:
        """Return the sorted names (not paths) of the entries of folder ``path``; [] if absent."""
        fs = self._fs()[0]
        try:
            entries = fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise self._failed("list", path, exc) from exc
        own = str(fs._strip_protocol(path)).rstrip("/")
        names = {
            str(entry).rstrip("/").rsplit("/", 1)[-1]
            for entry in entries
            if str(entry).rstrip("/") != own
        }
        return sorted(names)

    def remove_stale_temporaries(self, older_than_seconds: float) -> int:
        """Remove temporary files not modified for ``older_than_seconds``; return how many."""
        fs = self._fs()[0]
        folder = self.path(TMP_DIR)
        cutoff = time.time() - older_than_seconds
        removed = 0
        for name in self.list_names(folder):
            temp = f"{folder}/{name}"
            try:
                if fs.modified(temp).timestamp() >= cutoff:
                    continue
                fs.rm_file(temp)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._failed("remove", temp, exc) from exc
            removed += 1
        return removed


def fsync_dir(path: str) -> None:
    """Make a rename in folder ``path`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
