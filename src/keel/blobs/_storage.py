"""The storage root: the one place ``keel.blobs`` touches fsspec (imported on first use).

Every write goes to a temporary object under ``<root>/_tmp/`` and is then moved to its final
name, so a crash never leaves a partial file under a final name. The only local-filesystem
branch is durability: on a local disk the temporary file is fsynced and renamed with
``os.replace`` and the destination folder fsynced; elsewhere (S3, GCS, memory) the
filesystem's own ``mv`` publishes the object.

Many small local writes can share that durability work (:func:`durable_batch`): inside the
block, temporary files are written without an fsync each and their renames are held back; at
the end of the block every temporary file is fsynced (writeback of many files at once costs a
fraction of one fsync per file), then renamed, then each destination folder fsynced once. The
order "content durable, then name published" is kept, so a crash still never leaves a final
name whose content is missing.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from keel.errors import ConfigurationError, MissingDependencyError, StorageError

__all__ = [
    "HeldWrites",
    "StorageRoot",
    "TempWriter",
    "durable_batch",
    "fsync_dir",
    "held_batch",
    "outside_batch",
]

BytesLike = bytes | bytearray | memoryview
TMP_DIR = "_tmp"
_WRITEBACK_BYTES = 8 << 20
_FADVISE = getattr(os, "posix_fadvise", None)
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)
_SYNC_THREADS = 4


@dataclass
class _Batch:
    """Local writes whose fsync and rename wait for the end of a :func:`durable_batch`."""

    temps: list[str] = field(default_factory=list)
    pending: set[str] = field(default_factory=set)
    renames: list[tuple[StorageRoot, str, str]] = field(default_factory=list)
    #: a blob's temporary file -> the final name of the dedicated key it is sealed under
    #: (a blob that is not published, its final name being taken, takes its key with it)
    companions: dict[str, str] = field(default_factory=dict)


_BATCH: ContextVar[_Batch | None] = ContextVar("keel_blob_batch", default=None)


@contextlib.contextmanager
def durable_batch() -> Iterator[None]:
    """Publish the local writes made in this block (this thread) together, at its end.

    Nothing written in the block is visible under its final name before the block ends; if
    the block raises, its temporary files are removed and nothing is published. A nested
    block joins the outer one.
    """
    if _BATCH.get() is not None:
        yield
        return
    batch = _Batch()
    token = _BATCH.set(batch)
    try:
        yield
    except BaseException:
        for temp in batch.temps:
            with contextlib.suppress(OSError):
                os.remove(temp)
        raise
    finally:
        _BATCH.reset(token)
    _publish(batch)


@contextlib.contextmanager
def outside_batch() -> Iterator[None]:
    """Writes in this block are durable and published at once, even inside a batch (for a
    scope's shared data key, which later blobs of the batch and of other batches need)."""
    token = _BATCH.set(None)
    try:
        yield
    finally:
        _BATCH.reset(token)


class HeldWrites:
    """The writes of a finished :func:`held_batch`: written, not yet durable nor published.

    Exactly one of :meth:`publish` (from any thread: fsync, rename, fsync folders) or
    :meth:`discard` (remove the temporary files) should follow.
    """

    def __init__(self, batch: _Batch) -> None:
        self._batch = batch

    def __len__(self) -> int:
        return len(self._batch.renames)

    def publish(self) -> None:
        """Make the writes durable and publish them under their final names."""
        batch, self._batch = self._batch, _Batch()
        _publish(batch)

    def discard(self) -> None:
        """Remove the temporary files; nothing is published."""
        batch, self._batch = self._batch, _Batch()
        for temp in batch.temps:
            with contextlib.suppress(OSError):
                os.remove(temp)


@contextlib.contextmanager
def held_batch() -> Iterator[HeldWrites]:
    """Like :func:`durable_batch`, but the writes are handed back instead of published.

    A writer can then go on with its next batch while another thread publishes this one
    (:meth:`HeldWrites.publish`). If the block raises, its temporary files are removed. It
    cannot be nested in another batch.
    """
    if _BATCH.get() is not None:
        raise RuntimeError("held_batch() cannot be nested in another durable batch.")
    batch = _Batch()
    held = HeldWrites(batch)
    token = _BATCH.set(batch)
    try:
        yield held
    except BaseException:
        held.discard()
        raise
    finally:
        _BATCH.reset(token)


def _fsync_path(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _publish(batch: _Batch) -> None:
    if not batch.renames:
        return
    # data keys first, made durable, then the blobs they encrypt: a crash must never leave
    # a published blob whose key did not reach the disk
    keys = [r for r in batch.renames if "/_keys/" in r[2]]
    blobs: list[tuple[StorageRoot, str, str]] = []
    taken: set[str] = set()
    unwanted: set[str] = set()  # dedicated keys of blobs that are not published
    for root, temp, final in batch.renames:
        if "/_keys/" in final:
            continue
        if final in taken or os.path.exists(final):  # stored already: this copy is dropped
            root.discard(temp)
            if temp in batch.companions:
                unwanted.add(batch.companions[temp])
            continue
        taken.add(final)
        blobs.append((root, temp, final))
    for root, temp, final in keys:
        if final in unwanted:
            root.discard(temp)
    keys = [r for r in keys if r[2] not in unwanted]
    ordered = keys + blobs
    try:  # only the files still to be renamed: the others may be gone already
        _run_all(_fsync_path, [temp for _, temp, _ in ordered])
    except OSError as exc:
        for root, temp, _ in ordered:
            root.discard(temp)
        raise batch.renames[0][0]._failed("flush", ordered[0][1], exc) from exc
    folders: set[str] = set()
    for index, (root, temp, final) in enumerate(ordered):
        if index == len(keys) and folders:
            _run_all(fsync_dir, sorted(folders))
            folders = set()
        parent = final.rsplit("/", 1)[0]
        try:
            if os.path.exists(final):  # written meanwhile by another process
                root.discard(temp)
                if index >= len(keys) and temp in batch.companions:
                    with contextlib.suppress(OSError):  # its key, published: not needed
                        os.remove(batch.companions[temp])
                continue
            if not os.path.isdir(parent):  # new folders: their own entries must be durable too
                folders.update(root._ancestors(parent))
            os.makedirs(parent, exist_ok=True)
            os.replace(temp, final)
        except OSError as exc:
            for other_root, other, _ in ordered[index:]:
                other_root.discard(other)
            raise root._failed("publish", final, exc) from exc
        folders.add(parent)
    _run_all(fsync_dir, sorted(folders))


def _run_all(function: Callable[[str], None], paths: list[str]) -> None:
    """Call ``function`` on every path, several at a time: concurrent fsyncs share the
    file system's journal commits instead of waiting for one each."""
    if len(paths) <= 1:
        for path in paths:
            function(path)
        return
    with ThreadPoolExecutor(max_workers=_SYNC_THREADS) as pool:
        list(pool.map(function, paths))


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

    @property
    def is_local(self) -> bool:
        """Whether the root is a local folder (resolves the URL)."""
        return self._fs()[2]

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
        fs, _, is_local = self._fs()
        try:
            if is_local:  # a stat, without fsspec's info() around it
                return os.path.exists(path)
            return bool(fs.exists(path))
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

    def write_temp(self, chunks: Iterable[BytesLike]) -> str:
        """Write ``chunks`` to a new temporary file, durably, and return its path.

        The temporary file is removed if writing fails, including when ``chunks`` raises (its
        exception propagates unchanged; storage failures become :class:`StorageError`).
        """
        writer = self.open_temp()
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.close()

    def open_temp(self) -> TempWriter:
        """Create a new temporary file to be written piece by piece (see :class:`TempWriter`).

        Raises:
            StorageError: If the file cannot be created.
        """
        fs, _, is_local = self._fs()
        temp = self.path(TMP_DIR, f"{uuid.uuid4().hex}.tmp")
        try:
            if is_local:  # a bare descriptor: os.write of each piece, no buffer copy
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
                try:
                    return TempWriter(self, temp, os.open(temp, flags, 0o666))
                except FileNotFoundError:
                    os.makedirs(self.path(TMP_DIR), exist_ok=True)
                    return TempWriter(self, temp, os.open(temp, flags, 0o666))
            fs.makedirs(self.path(TMP_DIR), exist_ok=True)
            return TempWriter(self, temp, fs.open(temp, "wb"))
        except OSError as exc:
            raise self._failed("create", temp, exc) from exc

    def withdraw(self, final: str) -> bool:
        """Drop a write to ``final`` still held back by this thread's :func:`durable_batch`.

        Returns:
            True if such a write was pending (its temporary file is removed and it will not
            be published), False otherwise.
        """
        batch = _BATCH.get()
        if batch is None:
            return False
        for index, (root, temp, name) in enumerate(batch.renames):
            if root is self and name == final:
                del batch.renames[index]
                batch.pending.discard(temp)
                batch.temps.remove(temp)
                batch.companions.pop(temp, None)
                self.discard(temp)
                return True
        return False

    def commit(self, temp: str, final: str, *, key: str | None = None) -> bool:
        """Move a temporary file to its final name, unless that name already exists.

        ``key`` is the final name of the dedicated data key the file is sealed under, when
        that key is written in the same batch: if the file is not published (its final name
        exists by then), neither is its key.

        Returns:
            True if ``final`` was created, False if it existed (the temporary is dropped; the
            caller drops the dedicated key it made for it). Inside a :func:`durable_batch`
            the move waits for the end of the batch, and the answer is True: at the end an
            existing final name is kept, and this file and its ``key`` are dropped.
        """
        fs, _, is_local = self._fs()
        batch = _BATCH.get() if is_local else None
        if batch is not None and temp in batch.pending:
            batch.renames.append((self, temp, final))
            if key is not None:
                batch.companions[temp] = key
            return True
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
        for ancestor in self._ancestors(folder):
            fsync_dir(ancestor)

    def _ancestors(self, folder: str) -> list[str]:
        """The folders above ``folder`` up to the root, nearest first."""
        root = self._fs()[1]
        found: list[str] = []
        while folder != root and folder.startswith(root + "/"):
            folder = folder.rsplit("/", 1)[0]
            found.append(folder)
        return found

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

    def stale_names(self, folder: str, older_than_seconds: float) -> list[str]:
        """The names of the entries of ``folder`` not modified for ``older_than_seconds``."""
        fs = self._fs()[0]
        cutoff = time.time() - older_than_seconds
        stale: list[str] = []
        for name in self.list_names(folder):
            path = f"{folder}/{name}"
            try:
                if fs.modified(path).timestamp() < cutoff:
                    stale.append(name)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._failed("check", path, exc) from exc
        return stale


class TempWriter:
    """A temporary file of a :class:`StorageRoot` written piece by piece.

    :meth:`close` makes it durable (on a local disk: an fsync, or at the end of the thread's
    :func:`durable_batch`) and returns its path, for :meth:`StorageRoot.commit`; :meth:`abort`
    removes it. Storage failures raise :class:`StorageError` and remove the file.
    """

    def __init__(self, root: StorageRoot, path: str, target: int | Any) -> None:
        self._root = root
        self.path = path
        self._target = target  # a descriptor (local) or an fsspec file object
        self._open = True
        self._size = 0
        self._kicked = 0  # bytes whose writeback was started (see _start_writeback)

    def write(self, data: BytesLike) -> None:
        """Append ``data`` (any bytes-like object; written without a copy on a local disk)."""
        try:
            if isinstance(self._target, int):
                view = memoryview(data).cast("B")
                while view:
                    done = os.write(self._target, view)
                    self._size += done
                    view = view[done:]
                if self._size - self._kicked >= _WRITEBACK_BYTES:
                    self._start_writeback()
            else:
                self._target.write(data)
        except OSError as exc:
            self.abort()
            raise self._root._failed("write", self.path, exc) from exc

    def _start_writeback(self) -> None:
        """Start writing the bytes written so far to the disk, without waiting: the fsync at
        the end of a :func:`durable_batch` then finds most of them there already, and the
        disk works while the next files are written (Linux: POSIX_FADV_DONTNEED starts the
        writeback of dirty pages; clean ones are dropped, as a blob is seldom read at once)."""
        if _FADVISE is not None and self._size > self._kicked:
            with contextlib.suppress(OSError):
                _FADVISE(self._target, self._kicked, self._size - self._kicked, _DONTNEED)
            self._kicked = self._size

    def close(self) -> str:
        """Finish the file, durably, and return its path."""
        batch = _BATCH.get() if isinstance(self._target, int) else None
        self._open = False
        try:
            if isinstance(self._target, int):
                try:
                    if batch is None:
                        os.fsync(self._target)
                    else:  # fsynced with the batch; meanwhile the disk can start
                        self._start_writeback()
                finally:
                    os.close(self._target)
            else:
                self._target.close()
        except OSError as exc:
            self.abort()
            raise self._root._failed("flush", self.path, exc) from exc
        if batch is not None:
            batch.temps.append(self.path)
            batch.pending.add(self.path)
        return self.path

    def abort(self) -> None:
        """Close and remove the file (best effort; for a write that failed or is not wanted)."""
        if self._open:
            self._open = False
            with contextlib.suppress(OSError, ValueError):
                if isinstance(self._target, int):
                    os.close(self._target)
                else:
                    self._target.close()
        self._root.discard(self.path)


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
